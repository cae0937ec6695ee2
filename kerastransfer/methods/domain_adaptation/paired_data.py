"""`paired_dataset`: labelled source and unlabelled target images in one `tf.data` pipeline.

Domain adaptation models (`DANModel`, `DANNModel`) train on batches `((x_source, x_target),
y_source)`: a batch of labelled source images beside an equally large batch of target images,
with no target labels anywhere in the pipeline. One epoch is one pass over the source (its last
partial batch is dropped, so both halves always have `batch_size` images); the target side is
shuffled and repeated as often as needed, so the two sets may have any sizes.

Both domains must reach the model at one image shape. A `TransferData` is served at its
`image_shape` (the conversion asked at `load_dataset`); arrays at their own shape. If the two
differ and no `image_shape` is given here, that is an error, never a silent resize. A
`TransferData` is read batch by batch, never a whole split at once, and gives the batches its
split's arrays would.

Example:

>>> from kerastransfer.data import load_dataset
>>> mnist = load_dataset("embedded:mnist", samples_per_class=10)
>>> usps = load_dataset("embedded:usps", image_shape=(28, 28, 1))
>>> ds = paired_dataset(mnist, usps, batch_size=32, drop_target_labels=True)
>>> (x_s, x_t), y_s = next(iter(ds))
>>> tuple(x_s.shape), tuple(x_t.shape), tuple(y_s.shape)
((32, 28, 28, 1), (32, 28, 28, 1), (32,))
"""

import numpy as np
import tensorflow as tf

from kerastransfer.data import TransferData, to_image_shape
from kerastransfer.data.epoch_order import shuffled_indices


def paired_dataset(
    source_data,
    target_data,
    *,
    batch_size=None,
    image_shape=None,
    resize="resize",
    split="train",
    drop_target_labels=False,
    shuffle=True,
    seed=0,
):
    """Batches `((x_source, x_target), y_source)` from a labelled source and a target set.

    Args:
        source_data: the labelled source domain: a `TransferData`, or `(images, labels)`
            arrays.
        target_data: the target domain: images as an array; or a `TransferData` /
            `(images, labels)` pair, whose labels are discarded only if
            `drop_target_labels=True`.
        batch_size: images per domain in a batch (default: the source `TransferData`'s, or 64).
        image_shape: (height, width, channels) to convert both domains to (channels, then size).
            Default: each domain's own shape, which must then agree.
        resize: "resize" (bilinear) or "pad" (centre pad/crop), used with `image_shape`.
        split: the split of `TransferData` inputs to read (default "train").
        drop_target_labels: discard the labels of a labelled target. Without it a labelled
            target is an error, so labels cannot slip into unsupervised training by accident.
        shuffle: reshuffle both domains every epoch (seeded).
        seed: shuffling seed.

    Returns:
        A `tf.data.Dataset` of `((x_source, x_target), y_source)`, images float32 in [0, 255].
    """
    source, shape_s, resize_s = _source_spec(source_data, split)
    target, shape_t, resize_t = _target_spec(target_data, split, drop_target_labels)
    if isinstance(source, TransferData) and isinstance(target, TransferData):
        _check_label_spaces(source, target)
    if image_shape is not None:
        image_shape = tuple(int(d) for d in image_shape)
        if len(image_shape) != 3 or image_shape[2] not in (1, 3):
            raise ValueError(
                f"`image_shape` must be (height, width, 1 or 3). Received: {image_shape}"
            )
        shape_s = shape_t = image_shape
        resize_s = resize_t = resize
    elif shape_s != shape_t:
        raise ValueError(
            f"Source images are {shape_s} and target images {shape_t}: a model takes one shape. "
            f"Pass `image_shape={shape_s}` to convert both (channels, then {resize!r}), or load "
            "both with `load_dataset(..., image_shape=...)`."
        )
    if batch_size is None:
        batch_size = source.batch_size if isinstance(source, TransferData) else 64
    batch_size = int(batch_size)
    if batch_size < 2:
        raise ValueError(f"`batch_size` must be at least 2. Received: {batch_size}")
    for what, data in (("source", source), ("target", target)):
        n = _size(data, split)
        if n < batch_size:
            raise ValueError(
                f"The {what} set has {n} images, fewer than one batch of {batch_size}. "
                "Lower `batch_size`."
            )
    # Each domain is shuffled (seeded), the target repeated, both batched; a `TransferData`
    # reads only the examples of each batch, converted in its pipeline, arrays are converted
    # batch by batch after the zip.
    common = dict(split=split, batch_size=batch_size, shuffle=shuffle)
    source_ds, convert_s = _batches(source, shape_s, resize_s, seed=seed, **common)
    target_ds, convert_t = _batches(
        target, shape_t, resize_t, seed=seed + 1, is_target=True, **common
    )

    def convert(source_batch, x_target):
        # Every batch is full: say so in the static shapes (models trace on them).
        x_source, y_source = source_batch
        x_source = tf.ensure_shape(convert_s(x_source), (batch_size, *shape_s))
        x_target = tf.ensure_shape(convert_t(x_target), (batch_size, *shape_t))
        return (x_source, x_target), tf.ensure_shape(y_source, (batch_size,))

    paired = tf.data.Dataset.zip((source_ds, target_ds))
    return paired.map(convert, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _size(data, split):
    return data.size(split) if isinstance(data, TransferData) else len(data[0])


def _batches(data, shape, resize, *, split, batch_size, shuffle, seed, is_target=False):
    """Full batches of one domain and the conversion still to apply to their images: the
    source's `(images, labels)` shuffled and batched, or (`is_target`) the target's images alone,
    shuffled, repeated and batched.

    `data` is a `TransferData`, `(images, labels)` arrays or `(images, None)`. Target batches
    span the reshuffles, as `shuffle().repeat().batch()` does. A `TransferData`'s split is
    repeated from outside its pipeline, so its read-ahead never starts the next reshuffle: a
    reshuffle is drawn only when a batch reaches it, and the target orders each epoch of `fit`
    sees do not depend on how far a pipeline read ahead. It is declared endless, so that the
    paired dataset keeps the source's known number of batches (`fit` trains differently on a
    dataset of unknown length).
    """
    if isinstance(data, TransferData):
        ds = data.dataset(
            split,
            shuffle=shuffle,
            seed=seed,
            batch_size=batch_size,
            drop_remainder=not is_target,
            with_labels=not is_target,
            image_shape=shape,
            resize=resize,
        )
        if is_target:
            ds = ds.repeat().rebatch(batch_size, drop_remainder=True)
            ds = ds.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
        return ds, _identity
    x, y = data
    examples = x if y is None else (x, y)
    if shuffle:
        examples = tf.nest.map_structure(tf.constant, examples)
        ds = shuffled_indices(len(x), seed).map(
            lambda i: tf.nest.map_structure(lambda t: tf.gather(t, i), examples)
        )
    else:
        ds = tf.data.Dataset.from_tensor_slices(examples)
    if is_target:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds, lambda images: to_image_shape(images, shape, resize)


def _identity(images):
    return images


def _source_spec(source, split):
    """`(source, shape, resize)`: the `TransferData`, or its `(images, labels)` arrays checked."""
    if isinstance(source, TransferData):
        source.size(split)  # an unknown split: raise now
        return source, tuple(source.image_shape), source.resize
    if isinstance(source, (tuple, list)) and len(source) == 2:
        x, y = (np.asarray(a) for a in source)
        x = _images(x, "source")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(
                f"Source labels must be class ids, shape ({len(x)},). Received shape {y.shape}."
            )
        return (x, y.astype("int64")), tuple(x.shape[1:]), "resize"
    raise TypeError(
        "`source_data` must be a TransferData or an (images, labels) pair of arrays. Received: "
        f"{type(source).__name__}"
    )


def _target_spec(target, split, drop_target_labels):
    """`(target, shape, resize)`: the `TransferData` (its labels are never read), or `(images,
    None)`."""
    labelled = isinstance(target, TransferData) or (
        isinstance(target, (tuple, list)) and len(target) == 2
    )
    if labelled and not drop_target_labels:
        raise ValueError(
            "`target_data` carries labels, but unsupervised domain adaptation must not see target "
            "labels. Pass `drop_target_labels=True` to discard them (they are never read), or "
            "pass the target images alone."
        )
    if isinstance(target, TransferData):
        target.size(split)  # an unknown split: raise now
        return target, tuple(target.image_shape), target.resize
    if labelled:
        target = target[0]
    if isinstance(target, tf.data.Dataset):
        raise TypeError("`target_data` must be arrays or a TransferData, not a tf.data.Dataset.")
    x = _images(np.asarray(target), "target")
    return (x, None), tuple(x.shape[1:]), "resize"


def _check_label_spaces(source, target):
    """The methods built on these batches (DAN, DANN, CDAN, MCC) adapt one classifier between
    two domains of the same classes: two `TransferData` of different class counts are refused
    (the count is the sets' metadata; no target label is read)."""
    s, t = source.info.num_classes, target.info.num_classes
    if s != t:
        raise ValueError(
            f"The source '{source.info.name}' has {s} classes and the target "
            f"'{target.info.name}' has {t}: DAN, DANN, CDAN and MCC assume both domains share "
            "one label space. Load both with the same classes (`load_dataset(..., "
            "classes=[...])`)."
        )


def _images(x, what):
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            f"{what} images must be shaped (N, H, W), (N, H, W, 1) or (N, H, W, 3). Received "
            f"shape {x.shape}."
        )
    return x
