"""One entry point for transfer-learning data: `load_dataset`.

Sources:
- `"embedded:mnist"`, `"embedded:usps"`, `"embedded:fashion_mnist"`: small real samples shipped in
  the package (see `kerastransfer/embedded/README.md`); they need no network.
- a path to an `.npz` holding `x_train, y_train, x_test, y_test` (images NHWC or NHW);
- a folder of images, one sub-folder per class (or `train/` and `test/` folders of those);
- a tensorflow-datasets name (`mnist`, `svhn_cropped`, `cifar10`, `cifar100`, `fashion_mnist`, ...)
  with an optional `data_dir`. Without a network and without a prepared copy this fails at once
  with a message saying how to point at a local copy.

Splits are held in memory as NumPy arrays (the datasets this toolkit targets fit) and served as
batched, prefetched `tf.data` pipelines of `(float32 images in [0, 255], int64 labels)`. Models do
their own scaling, so served models take raw pixels.

Example:

>>> data = load_dataset("embedded:usps", image_shape=(28, 28, 1), samples_per_class=10)
>>> data.info.num_classes, data.arrays("train")[0].shape
(10, (100, 16, 16, 1))
>>> next(iter(data.train))[0].shape
TensorShape([64, 28, 28, 1])
"""

import dataclasses
import difflib
import importlib.resources
import os
import socket

import numpy as np
import tensorflow as tf

EMBEDDED = ("mnist", "usps", "fashion_mnist")
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset holds: its name, classes, and the shape of its native images."""

    name: str
    num_classes: int
    class_names: tuple
    image_shape: tuple


class TransferData:
    """Train / validation / test splits of one dataset, served as `tf.data` pipelines.

    Attributes:
        info: a `DatasetInfo` (native image shape, classes after any subsetting).
        image_shape: the shape images are converted to (`info.image_shape` unless asked).
        train, validation, test: batched datasets of (images, labels); `validation` is None
            when `validation_split` is 0. `train` is shuffled every epoch.
    """

    def __init__(self, info, splits, *, image_shape, resize="resize", batch_size=64, seed=0):
        self.info = info
        self.image_shape = tuple(image_shape)
        self.resize = resize
        self.batch_size = batch_size
        self.seed = seed
        self._splits = splits

    def arrays(self, split):
        """The raw `(images, labels)` NumPy arrays of a split, images in their native shape."""
        if split not in self._splits:
            raise ValueError(f"Unknown split {split!r}. Expected one of {sorted(self._splits)}.")
        return self._splits[split]

    def dataset(self, split, *, shuffle=False, batch_size=None):
        """A batched, prefetched pipeline of one split, converted to `image_shape`."""
        x, y = self.arrays(split)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            ds = ds.shuffle(len(x), seed=self.seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size or self.batch_size)
        convert = _Converter(self.image_shape, self.resize)
        return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    @property
    def train(self):
        return self.dataset("train", shuffle=True)

    @property
    def validation(self):
        return self.dataset("validation") if "validation" in self._splits else None

    @property
    def test(self):
        return self.dataset("test")

    def __repr__(self):
        sizes = ", ".join(f"{k}={len(v[1])}" for k, v in self._splits.items())
        return f"TransferData({self.info.name}, {self.info.num_classes} classes, {sizes})"


class _Converter:
    """Batch conversion to a model's input spec: channels (gray <-> RGB), then size."""

    def __init__(self, image_shape, resize):
        self.height, self.width, self.channels = image_shape
        self.resize = resize

    def __call__(self, x, y):
        return to_image_shape(x, (self.height, self.width, self.channels), self.resize), y


def to_image_shape(images, image_shape, resize="resize"):
    """A batch of images (any dtype, NHWC) as float32 in [0, 255] of shape `image_shape`:
    channels converted first, then resized (bilinear) or centre padded/cropped (`resize="pad"`)."""
    height, width, channels = image_shape
    x = convert_channels(tf.cast(images, tf.float32), channels)
    if x.shape[1] != height or x.shape[2] != width:
        if resize == "pad":
            x = tf.image.resize_with_crop_or_pad(x, height, width)
        else:
            x = tf.image.resize(x, (height, width))
    return x


def convert_channels(images, channels):
    """Gray -> RGB repeats the channel three times; RGB -> gray uses the ITU-R 601 luma weights
    (`tf.image.rgb_to_grayscale`), as the BPA paper does for MNIST <-> CIFAR."""
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(images)
    if have == 3 and channels == 1:
        return tf.image.rgb_to_grayscale(images)
    raise ValueError(f"Cannot convert images with {have} channels to {channels} channels.")


def load_dataset(
    source,
    *,
    validation_split=0.1,
    samples_per_class=None,
    classes=None,
    image_shape=None,
    resize="resize",
    batch_size=64,
    seed=0,
    data_dir=None,
):
    """Load a dataset and split it for transfer learning.

    Args:
        source: "embedded:NAME", an `.npz` path, an image folder, or a tensorflow-datasets name.
        validation_split: fraction of each training class held out (seeded, stratified); 0 for
            none.
        samples_per_class: keep this many training images per class (seed 002 uses 1, 5, 10, 20
            and 40), drawn after the validation split.
        classes: keep only these class ids, relabelled 0..k-1 in the order given.
        image_shape: (height, width, channels) the model expects; images are converted
            on the fly (gray <-> RGB, then resized, or padded/cropped if `resize="pad"`).
        resize: "resize" (bilinear) or "pad" (centre pad or crop, e.g. 28x28 -> 32x32).
        batch_size: batch size of the pipelines.
        seed: seed of every random choice here.
        data_dir: tensorflow-datasets data folder.

    Returns:
        A `TransferData`.
    """
    if not 0 <= validation_split < 1:
        raise ValueError(f"`validation_split` must be in [0, 1). Received: {validation_split}")
    if resize not in ("resize", "pad"):
        raise ValueError(f"`resize` must be 'resize' or 'pad'. Received: {resize!r}")
    name, (x_train, y_train), (x_test, y_test), class_names = _load_source(source, data_dir)
    x_train, x_test = _as_nhwc(x_train, "x_train"), _as_nhwc(x_test, "x_test")
    num_classes = len(class_names) if class_names else int(max(y_train.max(), y_test.max())) + 1
    y_train = _check_labels(y_train, num_classes, "y_train")
    y_test = _check_labels(y_test, num_classes, "y_test")
    if not class_names:
        class_names = tuple(str(i) for i in range(num_classes))
    if classes is not None:
        classes = [int(c) for c in classes]
        bad = [c for c in classes if not 0 <= c < num_classes]
        if bad:
            raise ValueError(f"`classes` {bad} are out of range: the dataset has classes 0..{num_classes - 1}.")
        if len(set(classes)) != len(classes) or len(classes) < 2:
            raise ValueError(f"`classes` must name at least two distinct classes. Received: {classes}")
        (x_train, y_train), (x_test, y_test) = (
            _subset(x_train, y_train, classes, "train"),
            _subset(x_test, y_test, classes, "test"),
        )
        class_names = tuple(class_names[c] for c in classes)
        num_classes = len(classes)
    rng = np.random.default_rng(seed)
    splits = {}
    if validation_split:
        train_idx, val_idx = _stratified_split(y_train, validation_split, rng)
        splits["validation"] = (x_train[val_idx], y_train[val_idx])
        x_train, y_train = x_train[train_idx], y_train[train_idx]
    if samples_per_class is not None:
        keep = _per_class(y_train, samples_per_class, num_classes, rng)
        x_train, y_train = x_train[keep], y_train[keep]
    splits["train"] = (x_train, y_train)
    splits["test"] = (x_test, y_test)
    info = DatasetInfo(name, num_classes, tuple(class_names), tuple(x_train.shape[1:]))
    return TransferData(
        info, splits, image_shape=image_shape or info.image_shape, resize=resize,
        batch_size=batch_size, seed=seed,
    )


def _load_source(source, data_dir):
    source = os.fspath(source)
    if source.startswith("embedded:"):
        key = source.split(":", 1)[1]
        if key not in EMBEDDED:
            raise ValueError(f"Unknown embedded dataset {key!r}. Embedded: {', '.join(EMBEDDED)}.")
        path = importlib.resources.files("kerastransfer") / "embedded" / f"{key}.npz"
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


def _as_nhwc(x, what):
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            f"{what} must be images shaped (N, H, W), (N, H, W, 1) or (N, H, W, 3). "
            f"Received shape {x.shape}."
        )
    if len(x) == 0:
        raise ValueError(f"{what} is empty.")
    return x


def _check_labels(y, num_classes, what):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{what} must be integer class ids, shape (N,). Received shape {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.mod(y, 1) == 0):
            raise ValueError(f"{what} must hold integer class ids. Received dtype {y.dtype} with fractions.")
    y = y.astype(np.int64)
    bad = y[(y < 0) | (y >= num_classes)]
    if bad.size:
        raise ValueError(
            f"{what} has labels out of range: {sorted(set(bad.tolist()))[:10]}; expected 0.."
            f"{num_classes - 1}."
        )
    return y


def _subset(x, y, classes, split):
    counts = {c: int(np.sum(y == c)) for c in classes}
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise ValueError(
            f"Classes {empty} have no {split} images: subsetting would leave them empty. "
            "Choose classes present in both splits."
        )
    keep = np.isin(y, classes)
    relabel = np.zeros(max(classes) + 1, np.int64)
    relabel[classes] = np.arange(len(classes))
    return x[keep], relabel[y[keep]]


def _stratified_split(y, fraction, rng):
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = int(round(len(idx) * fraction))
        if n_val == 0 or n_val == len(idx):
            raise ValueError(
                f"Class {c} has {len(idx)} training images: too few for validation_split="
                f"{fraction}. Use a larger dataset or validation_split=0."
            )
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _per_class(y, n, num_classes, rng):
    if n < 1:
        raise ValueError(f"`samples_per_class` must be at least 1. Received: {n}")
    keep = []
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        if len(idx) < n:
            raise ValueError(
                f"Class {c} has {len(idx)} training images, fewer than samples_per_class={n}."
            )
        keep.append(rng.choice(idx, n, replace=False))
    return np.sort(np.concatenate(keep))


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
        train_idx, test_idx = _stratified_split(y, 0.2, np.random.default_rng(0))
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
