"""`load_dataset`: one entry point for transfer-learning data.

Sources:
- `"embedded:mnist"`, `"embedded:usps"`, `"embedded:fashion_mnist"`: small real samples shipped in
  the package (see `kerastransfer/data/embedded/README.md`); they need no network.
- a path to an `.npz` holding `x_train, y_train, x_test, y_test` (images NHWC or NHW);
- a folder of images, one sub-folder per class (or `train/` and `test/` folders of those);
- a tensorflow-datasets name (`mnist`, `svhn_cropped`, `cifar10`, `cifar100`, `fashion_mnist`, ...)
  with an optional `data_dir`. Without a network and without a prepared copy this fails at once
  with a message saying how to point at a local copy.

Every split decision (validation split, samples per class, class subsets) is made on the labels
alone; a split is an index into where its examples live (an array, files, records), and images
are read, decoded and converted to `image_shape` inside batched, prefetched `tf.data` pipelines of
`(float32 images in [0, 255], int64 labels)`: memory does not grow with the dataset. Models do
their own scaling, so served models take raw pixels.

Example:

>>> data = load_dataset("embedded:usps", image_shape=(28, 28, 1), samples_per_class=10)
>>> data.info.num_classes, data.size("train"), data.info.image_shape
(10, 100, (16, 16, 1))
>>> next(iter(data.train))[0].shape
TensorShape([64, 28, 28, 1])
"""

import difflib
import numbers
import os
import warnings

import numpy as np

from kerastransfer.data import splits as sampling
from kerastransfer.data.augmentation import build_augmentation
from kerastransfer.data.convert import check_image_shape, check_resize
from kerastransfer.data.records import ArrayRecords
from kerastransfer.data.sources import read_source
from kerastransfer.data.transfer_data import DatasetInfo, TransferData, check_batch_size


def load_dataset(
    data,
    *,
    validation_split=0.1,
    samples_per_class=None,
    classes=None,
    image_shape=None,
    resize="resize",
    batch_size=64,
    seed=0,
    data_dir=None,
    rescale=None,
    augment=None,
    cache=None,
    skip_unreadable=False,
):
    """Load a dataset and split it for transfer learning.

    Args:
        data: "embedded:NAME", an `.npz` path, an image folder, or a tensorflow-datasets name.
        validation_split: fraction of each training class held out (seeded, stratified); 0 for
            none.
        samples_per_class: keep this many training images per class (Gutstein et al. use 1, 5,
            10, 20 and 40), drawn after the validation split.
        classes: keep only these class ids, relabelled 0..k-1 in the order given.
        image_shape: (height, width, channels) the model expects; images are converted
            on the fly (gray <-> RGB, then resized, or padded/cropped if `resize="pad"`).
        resize: "resize" (bilinear) or "pad" (centre pad or crop, e.g. 28x28 -> 32x32).
        batch_size: batch size of the pipelines.
        seed: seed of every random choice here.
        data_dir: tensorflow-datasets data folder.
        rescale: multiply the images by this factor when loading (float32 result), e.g. 255 for
            float images in [0, 1]: the toolkit's models take pixels in [0, 255]. Float images
            whose values all lie in [-1, 1] draw a warning unless `rescale` is given
            (`rescale=1` keeps them as they are).
        augment: training-time augmentation from Keras preprocessing layers (training
            pipeline only): None (none), "auto" (a preset for the kind of data: no flips for
            digits), a preset ("digits", "photos"), or names ("flip,rotation"); see
            `kerastransfer.data.augmentation`.
        cache: None, "memory", or a folder to keep decoded, converted examples in after the
            first epoch (for sets read many times; a folder is refused if it holds another
            dataset's cache).
        skip_unreadable: leave out image files that cannot be read (empty, truncated, not an
            image, vanished) and record them in `data.skipped`, instead of stopping at the first
            one with an error naming it.

    Returns:
        A `TransferData`.

    Raises:
        ValueError: on arguments out of range, unreadable sources, images and labels of
            different lengths, non-finite pixels, labels out of range, a single class, or an
            empty split.
    """
    if (
        isinstance(validation_split, bool)
        or not isinstance(validation_split, numbers.Real)
        or not 0 <= validation_split < 1
    ):
        raise ValueError(
            f"`validation_split` must be a number in [0, 1). Received: {validation_split!r}"
        )
    check_resize(resize)
    batch_size = check_batch_size(batch_size)
    if image_shape is not None:
        image_shape = check_image_shape(image_shape)
    if samples_per_class is not None and (
        isinstance(samples_per_class, bool)
        or not isinstance(samples_per_class, numbers.Integral)
        or samples_per_class < 1
    ):
        raise ValueError(
            "`samples_per_class` must be a positive integer or None. "
            f"Received: {samples_per_class!r}"
        )
    if classes is not None and (
        isinstance(classes, (str, bytes, numbers.Number)) or not hasattr(classes, "__iter__")
    ):
        raise ValueError(
            f"`classes` must be a list of class ids, e.g. [3, 7]. Received: {classes!r}"
        )
    if rescale is not None and (
        isinstance(rescale, bool)
        or not isinstance(rescale, numbers.Real)
        or not np.isfinite(rescale)
        or rescale <= 0
    ):
        raise ValueError(f"`rescale` must be a positive number or None. Received: {rescale!r}")
    if cache is not None and cache != "memory" and not isinstance(cache, (str, os.PathLike)):
        raise ValueError(f'`cache` must be None, "memory" or a folder path. Received: {cache!r}')
    augmentation = build_augmentation(augment, seed=seed, dataset_name=os.fspath(data))
    name, train, test, class_names = read_source(data, data_dir)
    if not hasattr(train[0], "pipeline"):  # arrays: validated here, then indexed
        x_train, x_test = _as_nhwc(train[0], "x_train", name), _as_nhwc(test[0], "x_test", name)
        _check_lengths(x_train, train[1], "train", name)
        _check_lengths(x_test, test[1], "test", name)
        if rescale is None:
            _warn_unless_pixels(name, x_train=x_train, x_test=x_test)
        train = (ArrayRecords(x_train, _check_labels(train[1], None, "y_train", name), rescale),)
        test = (ArrayRecords(x_test, _check_labels(test[1], None, "y_test", name), rescale),)
        train, test = (*train, np.arange(len(x_train))), (*test, np.arange(len(x_test)))
    (train_records, train_pos), (test_records, test_pos) = train, test
    y_train = _check_labels(train_records.labels[train_pos], None, "y_train", name)
    y_test = _check_labels(test_records.labels[test_pos], None, "y_test", name)
    num_classes = len(class_names) if class_names else int(max(y_train.max(), y_test.max())) + 1
    y_train = _check_labels(y_train, num_classes, "y_train", name)
    y_test = _check_labels(y_test, num_classes, "y_test", name)
    if num_classes < 2 or len(np.unique(y_train)) < 2:
        raise ValueError(
            f"The training images of '{name}' hold a single class "
            f"({np.unique(y_train).tolist()}): a classifier needs at least two. Check y_train."
        )
    if not class_names:
        class_names = tuple(str(i) for i in range(num_classes))
    if classes is not None:
        classes = _class_ids(list(classes), class_names)
        classes = [int(c) for c in classes]
        bad = [c for c in classes if not 0 <= c < num_classes]
        if bad:
            raise ValueError(
                f"`classes` {bad} are out of range: the dataset has classes 0..{num_classes - 1}."
            )
        if len(set(classes)) != len(classes) or len(classes) < 2:
            raise ValueError(
                f"`classes` must name at least two distinct classes. Received: {classes}"
            )
        relabelled = {}  # a folder without train/ and test/ has one records for both splits
        train_records, test_records = (
            relabelled.setdefault(id(r), sampling.relabel(r, classes))
            for r in (train_records, test_records)
        )
        train_pos = sampling.subset_classes(train_pos, y_train, classes, "train")
        test_pos = sampling.subset_classes(test_pos, y_test, classes, "test")
        y_train = train_records.labels[train_pos]
        class_names = tuple(class_names[c] for c in classes)
        num_classes = len(classes)
    rng = np.random.default_rng(seed)
    splits = {}
    if validation_split:
        train_idx, val_idx = sampling.stratified_split(y_train, validation_split, rng)
        splits["validation"] = (train_records, train_pos[val_idx])
        train_pos, y_train = train_pos[train_idx], y_train[train_idx]
    if samples_per_class is not None:
        keep = sampling.samples_per_class(y_train, samples_per_class, num_classes, rng)
        train_pos = train_pos[keep]
    splits["train"] = (train_records, train_pos)
    splits["test"] = (test_records, test_pos)
    info = DatasetInfo(name, num_classes, tuple(class_names), train_records.native_shape)
    return TransferData(
        info,
        splits,
        image_shape=image_shape or info.image_shape,
        resize=resize,
        batch_size=batch_size,
        seed=seed,
        augment=augmentation,
        cache=cache,
        skip_unreadable=skip_unreadable,
    )


def _as_nhwc(x, what, source):
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(
            f"{what} of '{source}' must hold numeric pixels (uint8 or float). "
            f"Received dtype {x.dtype}."
        )
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        hint = ""
        if x.ndim == 4 and x.shape[-1] == 4:
            hint = " Drop the alpha channel: x[..., :3]."
        elif x.ndim == 4 and x.shape[1] in (1, 3):
            hint = " Channels first? Transpose to channels last: x.transpose(0, 2, 3, 1)."
        raise ValueError(
            f"{what} of '{source}' must be images shaped (N, H, W), (N, H, W, 1) or "
            f"(N, H, W, 3). Received shape {x.shape}.{hint}"
        )
    if len(x) == 0:
        raise ValueError(
            f"{what} of '{source}' is empty (shape {x.shape}): there is nothing to "
            f"{'train' if what == 'x_train' else 'evaluate'} on."
        )
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.all(np.isfinite(x.reshape(len(x), -1)), axis=1))
        raise ValueError(
            f"{what} of '{source}' holds NaN or infinite pixels in {len(bad)} images (first "
            f"indices: {bad[:5].tolist()}). Fix or drop those images."
        )
    return x


def _check_lengths(x, y, split, source):
    n = len(np.asarray(y).reshape(-1)) if np.ndim(y) <= 1 else len(y)
    if len(x) != n:
        raise ValueError(
            f"x_{split} and y_{split} of '{source}' must have one label per image. Received "
            f"{len(x)} images and {n} labels."
        )


def _class_ids(classes, class_names):
    """`classes` as integer ids; class names (e.g. image folder names) are looked up."""
    if class_names and all(isinstance(c, str) for c in classes):
        unknown = [c for c in classes if c not in class_names]
        if unknown:
            close = {c: difflib.get_close_matches(c, class_names, n=2) for c in unknown}
            raise ValueError(
                f"`classes` names {unknown} are not classes of the dataset"
                + "".join(f"; for {c!r} did you mean {m}?" for c, m in close.items() if m)
                + f". Its classes: {list(class_names)[:30]}"
            )
        return [list(class_names).index(c) for c in classes]
    if not all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in classes):
        raise ValueError(
            "`classes` must be a list of integer class ids, e.g. [3, 7] (or class names, for "
            f"datasets that have them). Received: {classes!r}"
        )
    return classes


def _warn_unless_pixels(source, **arrays):
    high = max(float(v.max()) for v in arrays.values())
    if high > 255:
        warnings.warn(
            f"The images of '{source}' have pixel values up to {high:g}, above 255 (16-bit "
            "images?), but the toolkit's models take pixels in [0, 255]. Scale them, e.g. "
            "`rescale=255 / 65535` for 16-bit images.",
            UserWarning,
            stacklevel=3,
        )
        return
    floats = {k: v for k, v in arrays.items() if np.issubdtype(v.dtype, np.floating)}
    if floats and all(float(np.abs(v).max()) <= 1.0 for v in floats.values()):
        low = min(float(v.min()) for v in floats.values())
        high = max(float(v.max()) for v in floats.values())
        warnings.warn(
            f"The images of '{source}' are floats in [{low:g}, {high:g}], but the toolkit's models "
            "take pixels in [0, 255] (they scale their inputs themselves). Pass `rescale=255` to "
            "load_dataset (or multiply the images by 255); pass `rescale=1` if [0, 1] is meant.",
            UserWarning,
            stacklevel=3,
        )


def _check_labels(y, num_classes, what, source):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        hint = " One-hot labels? Pass y.argmax(-1)." if y.ndim == 2 else ""
        raise ValueError(
            f"{what} of '{source}' must be integer class ids, shape (N,). Received shape "
            f"{y.shape}.{hint}"
        )
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ValueError(
            f"{what} of '{source}' must hold integer class ids. Received dtype {y.dtype}."
        )
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
        raise ValueError(
            f"{what} of '{source}' must hold integer class ids. Received dtype {y.dtype} "
            "with fractions (or NaN)."
        )
    y = y.astype(np.int64)
    upper = np.iinfo(np.int64).max if num_classes is None else num_classes
    bad = y[(y < 0) | (y >= upper)]
    if bad.size:
        expected = "class ids from 0" if num_classes is None else f"0..{num_classes - 1}"
        raise ValueError(
            f"{what} of '{source}' has labels out of range: {sorted(set(bad.tolist()))[:10]}; "
            f"expected {expected}."
        )
    return y
