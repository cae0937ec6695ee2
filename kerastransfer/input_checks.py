"""Checks of the data a model is given, in Python, before TensorFlow runs a graph on it.

A wrong image size, labels out of range or a dataset without labels otherwise fail deep inside a
traced function ("in user code: ..."), or as a runtime error of TensorFlow's graph that does not
say which argument is wrong, or (labels out of range in `tf.one_hot`) not at all. These functions
raise a `ValueError` naming the argument, what it must be and the fix, as Keras does:

- `check_images(model, shape, what)`: the shape of a batch of images against the model's input.
- `check_labels(labels, num_classes, what)`: class ids in `0..C-1` (or one-hot rows of C).
- `split_spec(dataset, what)`: the `(x, y)` element specs of a batched `tf.data.Dataset`.
- `check_dataset(model, dataset, what, num_classes=...)`: the element spec of a batched dataset
  (labels present, image shape); no batch is read.
- `check_fit_data(model, x, y, num_classes=..., ...)`: `fit`'s / `evaluate`'s data.
- `assert_labels_in_range(y, num_classes)` in a step and `readable_step_errors(num_classes)`
  around `fit`: labels of batches no Python check reads, re-raised as one line.

Example:

>>> from kerastransfer.models import small_cnn
>>> model = small_cnn((28, 28, 1), 10, filters=(4, 6), dense=8)
>>> check_labels(np.array([0, 3, 10]), 10, "`y`")
Traceback (most recent call last):
...
ValueError: `y` must be class ids in 0..9 (the model has 10 output classes). Received: labels \
[10] out of range. Remap the labels to 0..9, or give the model a head of as many classes as the \
data has.
>>> check_images(model, (8, 32, 32, 1), "`x`")
Traceback (most recent call last):
...
ValueError: `x` must be of shape (28, 28, 1), the input of model 'primary'. Received: images \
of shape (32, 32, 1). Resize them to the model's input (`kerastransfer.data.to_image_shape(x, \
(28, 28, 1))`, or `load_dataset(..., image_shape=(28, 28, 1))`), or build the model for this size.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf


def output_classes(model):
    """C of a model with one output of class scores `(batch, C)`, else None."""
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) != 1 or len(outputs[0].shape) != 2 or outputs[0].shape[-1] is None:
        return None
    return int(outputs[0].shape[-1])


def _input_shape(model):
    try:
        inputs = model.inputs or []
    except AttributeError:  # a subclassed model: its `input_shape`, where it has one
        inputs = []
    if len(inputs) == 1:
        return tuple(inputs[0].shape[1:])
    try:
        shape = model.input_shape
    except AttributeError:
        return None
    if isinstance(shape, tuple) and shape and not isinstance(shape[0], (tuple, list)):
        return tuple(shape[1:])
    return None


def _fmt(shape):
    return str(tuple(None if d is None else int(d) for d in shape))


def check_images(model, shape, what="`x`"):
    """Raises where a batch of `shape` (batch first) does not fit the single input of `model`.

    Dimensions unknown on either side are not compared; a model with several inputs is not
    checked.
    """
    expected = _input_shape(model)
    if expected is None or shape is None:
        return
    shape = tuple(shape)
    if len(shape) == len(expected):  # one item, not a batch
        raise ValueError(
            f"{what} must be a batch of shape (batch, {_fmt(expected)[1:]}; "
            f"received one item of shape {_fmt(shape)}. Batch it (`dataset.batch(32)`, or "
            "`x[None]` for one image)."
        )
    received = shape[1:]
    if len(received) == len(expected) and all(
        a is None or b is None or int(a) == int(b) for a, b in zip(received, expected)
    ):
        return
    fix = "build the model for this size"
    if len(expected) == 3:
        fix = (
            f"Resize them to the model's input (`kerastransfer.data.to_image_shape(x, "
            f"{_fmt(expected)})`, or `load_dataset(..., image_shape={_fmt(expected)})`), or {fix}"
        )
        kind = "images"
    else:
        fix, kind = f"Reshape them, or {fix}", "inputs"
    raise ValueError(
        f"{what} must be of shape {_fmt(expected)}, the input of model '{model.name}'. "
        f"Received: {kind} of shape {_fmt(received)}. {fix}."
    )


def check_finite(x, what="`x`"):
    """Raises where the NumPy array `x` holds NaN or infinite values (a model trained on them
    reports a NaN loss and learns nothing, silently)."""
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating) or x.ndim < 1:
        return
    rows = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if rows.any():
        first = np.flatnonzero(rows)[:5].tolist()
        raise ValueError(
            f"{what} must be finite. Received: NaN or infinite values in {int(rows.sum())} "
            f"samples (first: {first}). Drop or repair those samples."
        )


def check_label_shape(shape, num_classes, what="`y`"):
    """Raises unless `shape` (batch first) is that of class ids `(batch,)`, `(batch, 1)` or
    of one-hot rows `(batch, C)`."""
    shape = tuple(shape)
    if len(shape) == 1 or (len(shape) == 2 and shape[-1] in (1, None, num_classes)):
        return
    raise ValueError(
        f"{what} must be class ids of shape (batch,) or one-hot rows of shape (batch, "
        f"{num_classes}) (the model has {num_classes} output classes). Received: shape "
        f"{_fmt(shape)}. Pass one class id per image."
    )


def check_labels(labels, num_classes, what="`y`"):
    """Raises unless `labels` are class ids in `0..num_classes-1` (or one-hot rows of C).

    A model of one output unit (a sigmoid) is not checked: its labels are 0 or 1.
    """
    if num_classes is None or num_classes < 2:
        return
    y = np.asarray(labels)
    if y.ndim == 0:
        raise ValueError(f"{what} must be a batch of class ids. Received: the scalar {y!r}.")
    check_label_shape(y.shape, num_classes, what)
    if y.ndim == 2 and y.shape[-1] == num_classes:
        return  # one-hot rows (or soft targets)
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise ValueError(f"{what} must be integer class ids. Received: dtype {y.dtype}.")
    if np.issubdtype(y.dtype, np.floating) and not np.all(np.isfinite(y) & (y == np.round(y))):
        bad = y[~(np.isfinite(y) & (y == np.round(y)))]
        raise ValueError(
            f"{what} must be whole class ids in 0..{num_classes - 1}. Received: labels "
            f"{sorted(set(bad.ravel().tolist()))[:10]}. Pass integer class ids."
        )
    bad = y[(y < 0) | (y >= num_classes)]
    if bad.size:
        values = sorted({int(v) for v in bad.ravel()})[:10]
        raise ValueError(
            f"{what} must be class ids in 0..{num_classes - 1} (the model has {num_classes} "
            f"output classes). Received: labels {values} out of range. Remap the labels to "
            f"0..{num_classes - 1}, or give the model a head of as many classes as the data has."
        )


def split_spec(dataset, what="the dataset"):
    """`(x_spec, y_spec)` of a dataset of `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`;
    `y_spec` is None when it yields no labels."""
    spec = dataset.element_spec
    if isinstance(spec, (tuple, list)):
        if not 1 <= len(spec) <= 3:
            raise ValueError(
                f"{what} must yield (x, y) or (x, y, sample_weight) batches. Received: "
                f"{len(spec)} items per batch: {spec}"
            )
        return spec[0], (spec[1] if len(spec) > 1 else None)
    return spec, None


def check_dataset(model, dataset, what="the dataset", *, num_classes=None, labels=True):
    """Checks a batched `tf.data.Dataset` against `model` by its element spec (no batch is read:
    a read would move a seeded shuffle): labels present (when `labels`), the images' shape, the
    labels' shape (when `num_classes`). Label values are checked as the batches run
    (`assert_labels_in_range`, `readable_step_errors`)."""
    x_spec, y_spec = split_spec(dataset, what)
    if labels and y_spec is None:
        raise ValueError(
            f"{what} must yield (images, labels) batches; it yields images only ({x_spec}). "
            "Pair each image with its class id: `tf.data.Dataset.from_tensor_slices((images, "
            "labels)).batch(32)`."
        )
    if isinstance(x_spec, tf.TensorSpec):
        check_images(model, x_spec.shape, f"The images of {what}")
    if labels and num_classes and num_classes > 1 and isinstance(y_spec, tf.TensorSpec):
        if y_spec.shape.rank is not None:
            check_label_shape(y_spec.shape, num_classes, f"The labels of {what}")


def check_fit_data(
    model, x, y=None, *, num_classes=None, validation_data=None, what="`x`", labels_what="`y`"
):
    """Checks `fit`'s (or `evaluate`'s) data against `model`: arrays whole (shape, finite, labels
    in range), a `tf.data.Dataset` by its element spec. Other inputs (generators, `PyDataset`)
    pass unchecked."""
    if isinstance(x, tf.data.Dataset):
        check_dataset(model, x, what, num_classes=num_classes)
    elif x is not None and not isinstance(x, (dict, list, tuple, keras.utils.PyDataset)):
        if hasattr(x, "shape"):
            check_images(model, x.shape, what)
            check_finite(x, what)
        if y is not None and hasattr(y, "shape"):
            if len(y) != len(x):
                raise ValueError(
                    f"{what} and {labels_what} must hold as many samples. Received: {len(x)} "
                    f"images and {len(y)} labels."
                )
            check_labels(y, num_classes, labels_what)
    if isinstance(validation_data, (tuple, list)) and 2 <= len(validation_data) <= 3:
        check_fit_data(
            model,
            validation_data[0],
            validation_data[1],
            num_classes=num_classes,
            what="The images of `validation_data`",
            labels_what="The labels of `validation_data`",
        )
    elif isinstance(validation_data, tf.data.Dataset):
        check_dataset(model, validation_data, "`validation_data`", num_classes=num_classes)


# TensorFlow's words for a label outside [0, C) in a sparse cross-entropy (CPU kernels), and
# those of `assert_labels_in_range` (any device: on a GPU the cross-entropy gives NaN instead).
_LABEL_RANGE_ERROR = "outside the valid range"
LABELS_OUT_OF_RANGE = "kerastransfer: a batch holds labels outside the valid range"


def assert_labels_in_range(y, num_classes):
    """`y`, asserting when the step runs that its class ids are in `0..num_classes-1`; one-hot
    rows, other structures and one-unit models pass unchecked. Use it in a `train_step` or
    `compute_loss`, under `readable_step_errors`, for the batches no Python check reads."""
    if not num_classes or num_classes < 2 or not tf.is_tensor(y):
        return y
    rank = y.shape.rank
    if rank not in (1, 2) or (rank == 2 and y.shape[-1] != 1) or not y.dtype.is_numeric:
        return y
    if y.dtype.is_complex or y.dtype == tf.bool:
        return y
    checks = [
        tf.debugging.assert_non_negative(y, message=LABELS_OUT_OF_RANGE),
        tf.debugging.assert_less(y, tf.cast(num_classes, y.dtype), message=LABELS_OUT_OF_RANGE),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(y)


@contextlib.contextmanager
def readable_step_errors(num_classes, nonfinite_message=None):
    """Re-raises, as a one-line `ValueError`, the errors a training step can only detect in
    TensorFlow's graph (in a batch after the first, which `check_fit_data` reads): labels out
    of range, and the `nonfinite_message` of a step's own finiteness assertion."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        text = str(error)
        if (_LABEL_RANGE_ERROR in text or LABELS_OUT_OF_RANGE in text) and num_classes:
            raise ValueError(
                f"The labels must be class ids in 0..{num_classes - 1} (the model has "
                f"{num_classes} output classes). Received: a batch with a label out of range "
                f"({_label_range_detail(text)}). Remap the labels to "
                f"0..{num_classes - 1}, or give the model a head of as many classes as the data "
                "has."
            ) from None
        if nonfinite_message and nonfinite_message in text:
            raise ValueError(nonfinite_message) from None
        raise


def _label_range_detail(text):
    for line in text.splitlines():
        if _LABEL_RANGE_ERROR in line and LABELS_OUT_OF_RANGE not in line:
            return "TensorFlow: " + " ".join(line.split())[:200]
    return "found as the batches ran"
