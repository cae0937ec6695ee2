"""Serving exports: a SavedModel whose `serve` signature takes the images a user has.

`export_serving` wraps a classifier (probability outputs) with its input conversion, so the
SavedModel accepts raw `uint8` images at the dataset's native size (or any size), converts
channels and resizes inside the graph, and returns `probabilities` and the top `label`. A
`serve_float` signature takes float pixels in [0, 255]. The export is atomic: it is written next
to its destination and renamed into place, so a crash never leaves a half-written model.

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

import functools
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from kerastransfer.data import to_image_shape


def export_serving(model, path, *, raw_shape=None, resize="resize"):
    """Export `model` as a SavedModel with `serve` (uint8) and `serve_float` signatures.

    Args:
        model: a Keras classifier whose output is class probabilities, taking images in
            [0, 255] of shape `model.input_shape[1:]`.
        path: destination folder; replaced atomically if it exists.
        raw_shape: (height, width, channels) of the raw images the signature takes; height and
            width may be None for any size. Default: the model's input shape.
        resize: "resize" (bilinear) or "pad" (centre pad/crop), as in `load_dataset`.

    Returns:
        The destination path.
    """
    image_shape = tuple(model.input_shape[1:])
    if len(image_shape) != 3 or None in image_shape:
        raise ValueError(
            f"export_serving needs a model with a fixed image input (height, width, channels). "
            f"Received input shape {model.input_shape}."
        )
    raw_shape = tuple(raw_shape or image_shape)
    if len(raw_shape) != 3 or raw_shape[2] not in (1, 3):
        raise ValueError(f"`raw_shape` must be (height, width, 1 or 3). Received: {raw_shape}")

    def predict(images):
        probabilities = model(to_image_shape(images, image_shape, resize), training=False)
        probabilities = tf.cast(probabilities, tf.float32)
        return {"probabilities": probabilities, "label": tf.argmax(probabilities, axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve", fn=predict,
        input_signature=[tf.TensorSpec((None, *raw_shape), tf.uint8, name="images")],
    )
    archive.add_endpoint(
        name="serve_float", fn=predict,
        input_signature=[tf.TensorSpec((None, *raw_shape), tf.float32, name="images")],
    )
    return atomic_write(path, functools.partial(archive.write_out, verbose=False))


def atomic_write(path, write):
    """Call `write(tmp)` on a temporary sibling of `path`, then rename it to `path`."""
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    try:
        write(tmp)
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=parent)
            os.replace(path, os.path.join(old, "x"))
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
