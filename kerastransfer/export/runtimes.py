"""`load_predictor`: run an export in the runtime its format needs.

- an export folder (or its `saved_model.pb`): `tf.saved_model.load` and its `serve` signature;
- `model.onnx`: onnxruntime;
- `model.tflite`: the LiteRT (TensorFlow Lite) interpreter (`ai_edge_litert`, else `tf.lite`).

ONNX and LiteRT files take float pixels in [0, 255] at the model's input size: images are
converted to it (channels, then size) as `export_serving` records in the folder's marker file.
"""

import contextlib
import json
import os

import numpy as np

from kerastransfer._extras import require
from kerastransfer.export.atomic import MARKER


class Predictor:
    """`predictor(images) -> probabilities` (NumPy, float32) for one export in one runtime.

    Attributes:
        format: "saved_model", "onnx" or "litert".
        class_names: label names recorded with the export, or None.
        image_shape, raw_shape, resize: the shapes recorded with the export.
    """

    def __init__(self, path):
        path = os.path.abspath(os.fspath(path))
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"No export at '{path}'. Give an export folder or its "
                "model.onnx / model.tflite file."
            )
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        marker = os.path.join(folder, MARKER)
        meta = {}
        if os.path.isfile(marker):
            with open(marker) as f:
                meta = json.load(f)
        self.class_names = meta.get("class_names")
        self.image_shape = tuple(meta["image_shape"]) if meta.get("image_shape") else None
        self.raw_shape = tuple(meta["raw_shape"]) if meta.get("raw_shape") else None
        self.resize = meta.get("resize", "resize")
        if os.path.isdir(path) or path.endswith(".pb"):
            self.format = "saved_model"
            import tensorflow as tf

            if not os.path.isfile(os.path.join(folder, "saved_model.pb")):
                raise FileNotFoundError(
                    f"'{folder}' holds no SavedModel (no saved_model.pb): give a folder written "
                    "by `export_serving` (or `kerastransfer fit --export`), or its model.onnx / "
                    "model.tflite file."
                )
            with _unreadable(path, "a SavedModel"):
                self._served = tf.saved_model.load(folder)
        elif path.endswith(".onnx"):
            self.format = "onnx"
            onnxruntime = require("onnxruntime", "Running an ONNX export")
            with _unreadable(path, "an ONNX model"):
                self._session = onnxruntime.InferenceSession(
                    path, providers=["CPUExecutionProvider"]
                )
            shape = self._session.get_inputs()[0].shape
            self.image_shape = self.image_shape or tuple(shape[1:])
        elif path.endswith(".tflite"):
            self.format = "litert"
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                import tensorflow as tf

                Interpreter = tf.lite.Interpreter
            with _unreadable(path, "a LiteRT (.tflite) model"):
                self._interpreter = Interpreter(model_path=path)
            detail = self._interpreter.get_input_details()[0]
            self.image_shape = self.image_shape or tuple(int(d) for d in detail["shape"][1:])
        else:
            raise ValueError(
                f"'{path}' is not an export: give an export folder (SavedModel), a .onnx or a "
                ".tflite file."
            )

    def _model_input(self, images):
        from kerastransfer.data import to_image_shape

        return to_image_shape(images, self.image_shape, self.resize).numpy().astype(np.float32)

    def __call__(self, images):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or len(images) == 0:
            raise ValueError(
                f"`images` must be a non-empty batch (N, H, W, C). Received shape {images.shape}."
            )
        if not (np.issubdtype(images.dtype, np.number) or images.dtype == bool):
            raise TypeError(f"`images` must be numbers. Received: dtype {images.dtype}.")
        if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
            bad = np.flatnonzero(~np.isfinite(images.reshape(len(images), -1)).all(axis=1))
            raise ValueError(
                f"`images` must be finite pixels in [0, 255]. Received: NaN or infinite values in "
                f"images {bad[:5].tolist()}. Drop or repair them."
            )
        if self.format == "saved_model":
            import tensorflow as tf

            fn = self._served.serve if images.dtype == np.uint8 else self._served.serve_float
            if self.raw_shape is not None and images.shape[1:] != self.raw_shape:
                from kerastransfer.data import to_image_shape

                images = to_image_shape(images, self.raw_shape, self.resize).numpy()
                images = images.astype(np.float32)
                fn = self._served.serve_float
            return fn(tf.constant(images))["probabilities"].numpy()
        x = self._model_input(images)
        if self.format == "onnx":
            name = self._session.get_inputs()[0].name
            return np.asarray(self._session.run(None, {name: x})[0], np.float32)
        it = self._interpreter
        index = it.get_input_details()[0]["index"]
        it.resize_tensor_input(index, x.shape)
        it.allocate_tensors()
        it.set_tensor(index, x)
        it.invoke()
        return np.asarray(it.get_tensor(it.get_output_details()[0]["index"]), np.float32)

    def labels(self, probabilities):
        """Label names (or class ids as strings) of the top class of each row."""
        top = np.argmax(probabilities, axis=-1)
        names = self.class_names or [str(i) for i in range(probabilities.shape[-1])]
        return [names[i] for i in top]


@contextlib.contextmanager
def _unreadable(path, what):
    """Re-raises a runtime's failure to open `path` as one line that names the file."""
    try:
        yield
    except Exception as error:  # each runtime has its own exception types
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise ValueError(
            f"Cannot read '{path}' as {what} ({reason}): the file is truncated, corrupt or of "
            "another format. Export the model again (`export_serving`)."
        ) from None


def load_predictor(path):
    """A `Predictor` for an export folder, its `model.onnx` or its `model.tflite`."""
    return Predictor(path)
