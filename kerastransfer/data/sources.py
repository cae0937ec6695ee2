"""Where datasets come from: embedded samples, `.npz` files, image folders, tensorflow-datasets.

`read_source(source, data_dir)` returns `(name, train, test, class_names)`: for arrays (embedded,
`.npz`) `train` and `test` are `(images, labels)` as stored, which `load_dataset` validates; for
image folders and tensorflow-datasets they are `(records, positions)` indexes (file names and
labels, record positions and labels: no image is decoded here).
"""

import difflib
import importlib.resources
import os
import socket
import warnings
import zipfile

import numpy as np

from kerastransfer.data.image_decoding import IMAGE_EXTENSIONS
from kerastransfer.data.records import DEFAULT_FILE_SHAPE, FileRecords, TfdsRecords
from kerastransfer.data.splits import stratified_split

EMBEDDED = ("mnist", "usps", "fashion_mnist")


def read_source(source, data_dir):
    """`(name, train, test, class_names)`, `train` and `test` each `(records, positions)`."""
    source = os.fspath(source)
    if source.startswith("embedded:"):
        key = source.split(":", 1)[1]
        if key not in EMBEDDED:
            raise ValueError(f"Unknown embedded dataset {key!r}. Embedded: {', '.join(EMBEDDED)}.")
        path = importlib.resources.files("kerastransfer.data") / "embedded" / f"{key}.npz"
        with importlib.resources.as_file(path) as p:
            return (source, *_load_npz(p), ())
    if source.endswith(".npz"):
        return (os.path.basename(source), *_load_npz(source), ())
    if os.path.isdir(source):
        return _load_folder(source)
    if os.sep in source or source.startswith("."):
        raise FileNotFoundError(f"No .npz file or image folder at {source!r}.")
    return _load_tfds(source, data_dir)


def _load_npz(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"No .npz file at '{path}'.")
    try:
        f = np.load(path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"'{path}' is not a readable .npz file (a zip of NumPy arrays written by "
            f"`np.savez`): {e}. Re-create it with np.savez(path, x_train=..., y_train=..., "
            "x_test=..., y_test=...)."
        ) from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(
            f"'{path}' holds a single array, not an .npz archive of x_train, y_train, x_test and "
            "y_test. Save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
        )
    with f:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
        if missing:
            raise ValueError(
                f"'{path}' lacks the arrays {missing}. An .npz dataset needs x_train, y_train, "
                f"x_test and y_test; it has {f.files}."
            )
        arrays = {}
        for key in ("x_train", "y_train", "x_test", "y_test"):
            try:
                arrays[key] = f[key]
            except (ValueError, OSError, zipfile.BadZipFile) as e:
                raise ValueError(
                    f"Cannot read array '{key}' of '{path}': {e}. Store plain numeric arrays "
                    "(no Python objects) with np.savez."
                ) from None
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _load_folder(path):
    """Image folders: `path/train/<class>/*` and `path/test/<class>/*`, or `path/<class>/*` (then
    20% of each class, seeded, becomes the test split). Only the file names are read here."""

    def read(folder):
        classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
        if not classes:
            raise ValueError(
                f"'{folder}' has no class sub-folders (one folder of images per class)."
            )
        files = {c: _files_under(os.path.join(folder, c)) for c in classes}
        images = {c: [f for f in files[c] if f.lower().endswith(IMAGE_EXTENSIONS)] for c in classes}
        empty = [c for c in classes if not images[c]]
        if empty:
            raise ValueError(
                f"Class folders {empty} in '{folder}' hold no images "
                f"({', '.join(IMAGE_EXTENSIONS)})."
            )
        skipped = [f for c in classes for f in files[c] if not f.lower().endswith(IMAGE_EXTENSIONS)]
        if skipped:
            warnings.warn(
                f"Skipping {len(skipped)} files in '{folder}' that are not "
                f"{'/'.join(IMAGE_EXTENSIONS)} images, e.g. {skipped[:3]}. Convert them to PNG "
                "or JPEG to use them.",
                UserWarning,
                stacklevel=5,
            )
        paths = [f for c in classes for f in images[c]]
        labels = np.repeat(np.arange(len(classes)), [len(images[c]) for c in classes])
        return classes, FileRecords(paths, labels)

    split_folders = [
        d for d in ("train", "test", "val", "validation") if os.path.isdir(os.path.join(path, d))
    ]
    if split_folders and split_folders[:2] != ["train", "test"]:
        raise ValueError(
            f"'{path}' has the folders {split_folders}: read as class folders they would become "
            "classes. Use either train/ and test/ (each holding one folder per class), or one "
            "folder per class directly in it (20% of each then becomes the test split)."
        )
    if split_folders[2:]:
        warnings.warn(
            f"'{path}' has {split_folders[2:]} folders, which are not read: the validation split "
            "is drawn from train/ (see `validation_split`). Move those images into train/ to use "
            "them.",
            UserWarning,
            stacklevel=4,
        )
    if split_folders:
        classes, train = read(os.path.join(path, "train"))
        test_classes, test = read(os.path.join(path, "test"))
        if test_classes != classes:
            raise ValueError(
                f"train/ and test/ of '{path}' must hold the same class folders. Only in train/: "
                f"{sorted(set(classes) - set(test_classes))}; only in test/: "
                f"{sorted(set(test_classes) - set(classes))}."
            )
        train, test = (train, np.arange(len(train.labels))), (test, np.arange(len(test.labels)))
    else:
        classes, records = read(path)
        train_idx, test_idx = stratified_split(records.labels, 0.2, np.random.default_rng(0))
        train, test = (records, train_idx), (records, test_idx)
    return os.path.basename(os.path.normpath(path)), train, test, tuple(classes)


def _files_under(folder):
    """Paths of the non-hidden files under `folder`, in the order Keras's
    `image_dataset_from_directory` indexes them (sub-folders by name, files by name)."""
    return [
        os.path.join(root, f)
        for root, _, names in sorted(os.walk(folder), key=lambda walked: walked[0])
        for f in sorted(names)
        if not f.startswith(".")
    ]


def _network_available(host="storage.googleapis.com", timeout=3.0):
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_tfds(name, data_dir):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        close = list(dict.fromkeys(difflib.get_close_matches(name, tfds.list_builders(), n=5)))[:3]
        raise ValueError(
            f"Unknown dataset {name!r}: not an embedded name, an .npz path, an image folder or a "
            "tensorflow-datasets name." + (f" Did you mean {', '.join(close)}?" if close else "")
        ) from None
    if not builder.is_prepared():
        if not _network_available():
            raise RuntimeError(
                f"tensorflow-datasets '{name}' is not prepared in {builder.data_dir} and this "
                "machine has no network to download it. Prepare it where there is a network "
                f"(`tfds build {name} --data_dir DIR`), copy DIR here and pass data_dir=DIR, or "
                "export it to an .npz with x_train/y_train/x_test/y_test and load that path."
            )
        builder.download_and_prepare()
    supervised = builder.info.supervised_keys
    if not supervised:
        raise ValueError(f"tensorflow-datasets '{name}' has no (image, label) supervised keys.")
    image_key, label_key = supervised
    label = builder.info.features[label_key]
    shape = tuple(builder.info.features[image_key].shape)
    native = shape if None not in shape and len(shape) == 3 else DEFAULT_FILE_SHAPE
    splits = []
    for split in ("train", "test"):
        try:
            records = builder.as_dataset(
                split=split,
                shuffle_files=False,
                decoders={image_key: tfds.decode.SkipDecoding()},
            )
        except (KeyError, ValueError) as e:
            raise ValueError(
                f"tensorflow-datasets '{name}' has no usable {split!r} split (its splits: "
                f"{sorted(builder.info.splits)}). Export it to an .npz with x_train/y_train/"
                f"x_test/y_test instead. ({e})"
            ) from None
        batches = records.map(lambda example: example[label_key]).batch(4096)
        labels = np.concatenate([np.asarray(b) for b in tfds.as_numpy(batches)] or [[]])
        recs = TfdsRecords(builder, split, image_key, label_key, labels, native)
        splits.append((recs, np.arange(len(labels))))
    names = tuple(label.names) if hasattr(label, "names") else ()
    return name, splits[0], splits[1], names
