"""`export_serving`: one export folder with a SavedModel that takes the images a user has.

`export_serving` wraps a classifier (probability outputs) with its input conversion, so the
SavedModel accepts raw `uint8` images at the dataset's native size (or any size), converts
channels and resizes inside the graph, and returns `probabilities` and the top `label`. A
`serve_float` signature takes float pixels in [0, 255]. An empty batch returns empty results
(`probabilities` of shape `(0, classes)`, `label` of shape `(0,)`).

The same folder can hold the model in ONNX (`model.onnx`, run by onnxruntime) and LiteRT
(`model.tflite`, run by the TensorFlow Lite interpreter), written by Keras's own
`Model.export`; those take float pixels in [0, 255] at the model's input size. The folder's
`KERASTRANSFER_EXPORT` file records the formats, shapes and class names (`kerastransfer predict`
reads it). The folder is replaced atomically (see `atomic_write`), and only if it is a previous
export of ours.

Example:

>>> import tempfile
>>> from kerastransfer.models import small_cnn
>>> path = export_serving(small_cnn((28, 28, 1), 10), tempfile.mkdtemp() + "/digits",
...                       raw_shape=(16, 16, 1))
>>> served = tf.saved_model.load(path)
>>> out = served.serve(tf.zeros((2, 16, 16, 1), tf.uint8))
>>> sorted(out), out["label"].shape
(['label', 'probabilities'], TensorShape([2]))
"""

import numbers
import os

import keras
import tensorflow as tf

from kerastransfer.data import to_image_shape
from kerastransfer.export.atomic import atomic_write
from kerastransfer.export.formats import FILENAMES, require_converter, write_format

FORMATS = ("saved_model", "onnx", "litert")


def export_serving(
    model, path, *, raw_shape=None, resize="resize", formats=("saved_model",), class_names=None
):
    """Export `model` for serving: a SavedModel (`serve`, `serve_float`), optionally ONNX/LiteRT.

    Args:
        model: a Keras classifier whose output is class probabilities, taking images in
            [0, 255] of shape `model.input_shape[1:]`. A training wrapper (`BPAModel`,
            `DANModel`, `DANNModel`) is exported as the model it serves with (its
            `serving_model`: the wrapped network).
        path: destination folder; replaced atomically if it is a previous export of ours.
        raw_shape: (height, width, channels) of the raw images the signature takes; height and
            width may be None for any size. Default: the model's input shape.
        resize: "resize" (bilinear) or "pad" (centre pad/crop), as in `load_dataset`.
        formats: any of "saved_model" (always written), "onnx", "litert".
        class_names: label names, stored with the export (for `kerastransfer predict`).

    Returns:
        The destination path.
    """
    model = getattr(model, "serving_model", model)
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: {type(model).__name__}")
    try:
        input_shape = model.input_shape
    except AttributeError:  # a subclassed model never called on a `keras.Input`
        raise ValueError(
            f"`model` must have a known input shape; model '{model.name}' "
            f"({type(model).__name__}) is subclassed and has none. Export the functional model "
            "it wraps, or build it with `keras.Input`."
        ) from None
    if not isinstance(input_shape, tuple) or not input_shape or isinstance(input_shape[0], tuple):
        raise ValueError(
            "export_serving needs a model with one image input (height, width, channels). "
            f"Received input shape {input_shape}."
        )
    image_shape = tuple(input_shape[1:])
    if len(image_shape) != 3 or None in image_shape:
        raise ValueError(
            f"export_serving needs a model with a fixed image input (height, width, channels). "
            f"Received input shape {input_shape}."
        )
    raw_shape = tuple(raw_shape or image_shape)
    sizes_ok = all(d is None or (isinstance(d, numbers.Integral) and d >= 1) for d in raw_shape[:2])
    if len(raw_shape) != 3 or raw_shape[2] not in (1, 3) or not sizes_ok:
        raise ValueError(
            "`raw_shape` must be (height, width, 1 or 3), height and width positive integers "
            f"or None (any size). Received: {raw_shape}"
        )
    if isinstance(formats, str):
        formats = (formats,)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"`formats` must be among {FORMATS}. Received: {list(formats)}")
    for fmt in formats:
        require_converter(fmt)  # before any work: a missing extra fails first
    output_shape = model.output_shape
    if not isinstance(output_shape, tuple) or len(output_shape) != 2 or output_shape[1] is None:
        raise ValueError(
            "`model` must have one output of class probabilities, shape (batch, classes). "
            f"Received output shape {output_shape}."
        )
    num_classes = int(output_shape[-1])
    if num_classes < 2:
        raise ValueError(
            "`model` must output the probabilities of 2 or more classes (the export's `label` is "
            "their argmax, always 0 for a single unit). Received output shape "
            f"{output_shape}. End a binary classifier with Dense(2, activation='softmax')."
        )
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"`class_names` must name the model's {num_classes} classes. "
            f"Received {len(class_names)} names."
        )
    if resize not in ("resize", "pad"):
        raise ValueError(f"`resize` must be 'resize' or 'pad'. Received: {resize!r}")

    def classify(images):
        probabilities = model(to_image_shape(images, image_shape, resize), training=False)
        return tf.cast(probabilities, tf.float32)

    def predict(images):
        # An empty batch never reaches the model (some kernels, BatchNormalization's among
        # them, fail on zero images): it gets zero rows of probabilities and labels.
        probabilities = tf.cond(
            tf.shape(images)[0] > 0,
            lambda: classify(images),
            lambda: tf.zeros((0, num_classes), tf.float32),
        )
        return {"probabilities": probabilities, "label": tf.argmax(probabilities, axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve",
        fn=predict,
        input_signature=[tf.TensorSpec((None, *raw_shape), tf.uint8, name="images")],
    )
    archive.add_endpoint(
        name="serve_float",
        fn=predict,
        input_signature=[tf.TensorSpec((None, *raw_shape), tf.float32, name="images")],
    )
    extra = [f for f in dict.fromkeys(formats) if f != "saved_model"]

    def write(tmp):
        archive.write_out(tmp, verbose=False)
        for fmt in extra:
            write_format(model, fmt, os.path.join(tmp, FILENAMES[fmt]))

    metadata = {
        "formats": ["saved_model", *extra],
        "image_shape": list(image_shape),
        "raw_shape": list(raw_shape),
        "resize": resize,
        "class_names": list(class_names) if class_names is not None else None,
    }
    return atomic_write(path, write, metadata=metadata)
