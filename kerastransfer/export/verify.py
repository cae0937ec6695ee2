"""`verify_export`: every format of an export, run in a fresh process, against the Keras model.

The fresh process loads each file the way a serving system would (`tf.saved_model.load`,
onnxruntime, the LiteRT interpreter) and returns its probabilities; they must match the Keras
model's within `atol` (absolute, on probabilities: default 1e-4, float32 round-off through
different kernels stays below it).
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

from kerastransfer._extras import require
from kerastransfer.export.formats import FILENAMES


def verify_export(model, path, images, *, atol=1e-4, timeout=600):
    """Check the probabilities of every format in export `path` on `images` against `model`.

    Args:
        model: the Keras model that was exported.
        path: the export folder (`export_serving`).
        images: a batch of raw images as the export's `serve` takes them.
        atol: largest absolute difference of a probability.

    Returns:
        A dict format -> largest absolute difference. Raises `ValueError` beyond `atol`.
    """
    import tensorflow as tf

    from kerastransfer.data import to_image_shape

    images = np.asarray(images)
    targets = {"saved_model": path}
    for fmt, name in FILENAMES.items():
        if os.path.exists(os.path.join(path, name)):
            targets[fmt] = os.path.join(path, name)
    if "onnx" in targets:
        require("onnxruntime", "Verifying an ONNX export")
    expected = model(
        to_image_shape(tf.constant(images), tuple(model.input_shape[1:])), training=False
    )
    expected = np.asarray(expected, np.float32)
    diffs = {}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "images.npy"), images)
        for fmt, target in targets.items():
            out = os.path.join(tmp, f"{fmt}.npy")
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "kerastransfer.export.verify",
                    target,
                    os.path.join(tmp, "images.npy"),
                    out,
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
            if result.returncode != 0:
                tail = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
                raise ValueError(f"The {fmt} export at '{target}' does not run: {tail[0]}")
            got = np.load(out)
            if got.shape != expected.shape:
                raise ValueError(
                    f"The {fmt} export gives shape {got.shape}, the Keras model {expected.shape}."
                )
            diffs[fmt] = float(np.max(np.abs(got - expected)))
    bad = {f: d for f, d in diffs.items() if not d <= atol}
    if bad:
        raise ValueError(f"Exports differ from the Keras model by more than {atol}: {bad}")
    return diffs


def _main(argv):
    from kerastransfer.export.runtimes import load_predictor

    target, images, out = argv
    np.save(out, load_predictor(target)(np.load(images)))


if __name__ == "__main__":
    _main(sys.argv[1:])
