"""Where datasets come from: embedded samples, `.npz` files, image folders, tensorflow-datasets.

`read_source(source, data_dir)` returns `(name, (x_train, y_train), (x_test, y_test), class_names)`
with arrays as stored; `load_dataset` validates and splits them.
"""

import difflib
import importlib.resources
import os
import socket

import numpy as np

from kerastransfer.data.splits import stratified_split

EMBEDDED = ("mnist", "usps", "fashion_mnist")
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

def read_source(source, data_dir):
    source = os.fspath(source)
    if source.startswith("embedded:"):
        key = source.split(":", 1)[1]
        if key not in EMBEDDED:
            raise ValueError(f"Unknown embedded dataset {key!r}. Embedded: {', '.join(EMBEDDED)}.")
        path = importlib.resources.files("kerastransfer.data") / "embedded" / f"{key}.npz"
        with importlib.resources.as_file(path) as p:
            return (source, *_load_npz(p)[:2], ())
    if source.endswith(".npz"):
        return (os.path.basename(source), *_load_npz(source)[:2], ())
    if os.path.isdir(source):
        return _load_folder(source)
    if os.sep in source or source.startswith("."):
        raise FileNotFoundError(f"No .npz file or image folder at {source!r}.")
    return _load_tfds(source, data_dir)


def _load_npz(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"No .npz file at '{path}'.")
    with np.load(path) as f:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
        if missing:
            raise ValueError(
                f"'{path}' lacks the arrays {missing}. An .npz dataset needs x_train, y_train, "
                f"x_test and y_test; it has {f.files}."
            )
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def _load_folder(path, image_size=(224, 224)):
    """Image folders: `path/train/<class>/*` and `path/test/<class>/*`, or `path/<class>/*` (then
    20% of each class, seeded, becomes the test split)."""
    import keras

    def read(folder):
        classes = sorted(
            d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))
        )
        if not classes:
            raise ValueError(f"'{folder}' has no class sub-folders (one folder of images per class).")
        empty = [
            c for c in classes
            if not any(f.lower().endswith(_IMAGE_EXTENSIONS) for f in os.listdir(os.path.join(folder, c)))
        ]
        if empty:
            raise ValueError(f"Class folders {empty} in '{folder}' hold no images.")
        ds = keras.utils.image_dataset_from_directory(
            folder, labels="inferred", class_names=classes, image_size=image_size,
            batch_size=None, shuffle=False, verbose=False,
        )
        xs, ys = zip(*[(x.numpy().astype(np.uint8), y.numpy()) for x, y in ds])
        return classes, np.stack(xs), np.array(ys, np.int64)

    if os.path.isdir(os.path.join(path, "train")) and os.path.isdir(os.path.join(path, "test")):
        classes, x_train, y_train = read(os.path.join(path, "train"))
        test_classes, x_test, y_test = read(os.path.join(path, "test"))
        if test_classes != classes:
            raise ValueError(f"train/ and test/ of '{path}' have different class folders.")
    else:
        classes, x, y = read(path)
        train_idx, test_idx = stratified_split(y, 0.2, np.random.default_rng(0))
        (x_train, y_train), (x_test, y_test) = (x[train_idx], y[train_idx]), (x[test_idx], y[test_idx])
    return os.path.basename(os.path.normpath(path)), (x_train, y_train), (x_test, y_test), tuple(classes)


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
    label = builder.info.features[supervised[1]]
    splits = []
    for split in ("train", "test"):
        try:
            x, y = tfds.as_numpy(builder.as_dataset(split=split, as_supervised=True, batch_size=-1))
        except (KeyError, ValueError) as e:
            raise ValueError(
                f"tensorflow-datasets '{name}' has no usable {split!r} split (its splits: "
                f"{sorted(builder.info.splits)}). Export it to an .npz with x_train/y_train/"
                f"x_test/y_test instead. ({e})"
            ) from None
        splits.append((x, y))
    names = tuple(label.names) if hasattr(label, "names") else ()
    return name, splits[0], splits[1], names
