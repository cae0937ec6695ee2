"""Serving exports that real runtimes run.

- `export_serving` (`saved_model.py`): one folder with a SavedModel taking raw images, and
  optionally `model.onnx` and `model.tflite` (Keras's own `Model.export` formats).
- `atomic_write`, `recover` (`atomic.py`): the folder is swapped into place atomically and only
  replaces a previous export of ours.
- `load_predictor` (`runtimes.py`): runs any of the three in its runtime (TensorFlow,
  onnxruntime, the LiteRT interpreter).
- `verify_export` (`verify.py`): each format in a fresh process against the Keras model.
"""

from kerastransfer.export.atomic import MARKER, atomic_write, recover
from kerastransfer.export.formats import write_format
from kerastransfer.export.runtimes import Predictor, load_predictor
from kerastransfer.export.saved_model import FORMATS, export_serving
from kerastransfer.export.verify import verify_export

__all__ = [
    "FORMATS",
    "MARKER",
    "Predictor",
    "atomic_write",
    "export_serving",
    "load_predictor",
    "recover",
    "verify_export",
    "write_format",
]
