"""`load_dataset`: one entry point for transfer-learning data: `load_dataset`.

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

import numpy as np

from kerastransfer.data import splits as sampling
from kerastransfer.data.sources import read_source
from kerastransfer.data.transfer_data import DatasetInfo, TransferData


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
    name, (x_train, y_train), (x_test, y_test), class_names = read_source(source, data_dir)
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
            sampling.subset_classes(x_train, y_train, classes, "train"),
            sampling.subset_classes(x_test, y_test, classes, "test"),
        )
        class_names = tuple(class_names[c] for c in classes)
        num_classes = len(classes)
    rng = np.random.default_rng(seed)
    splits = {}
    if validation_split:
        train_idx, val_idx = sampling.stratified_split(y_train, validation_split, rng)
        splits["validation"] = (x_train[val_idx], y_train[val_idx])
        x_train, y_train = x_train[train_idx], y_train[train_idx]
    if samples_per_class is not None:
        keep = sampling.samples_per_class(y_train, samples_per_class, num_classes, rng)
        x_train, y_train = x_train[keep], y_train[keep]
    splits["train"] = (x_train, y_train)
    splits["test"] = (x_test, y_test)
    info = DatasetInfo(name, num_classes, tuple(class_names), tuple(x_train.shape[1:]))
    return TransferData(
        info, splits, image_shape=image_shape or info.image_shape, resize=resize,
        batch_size=batch_size, seed=seed,
    )


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
