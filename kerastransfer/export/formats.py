"""ONNX and LiteRT files through Keras's own `Model.export`, with errors that name the layer.

`write_format(model, "onnx" | "litert", filepath)` calls `model.export(filepath, format=...)`
(Keras uses tf2onnx for ONNX and the TFLite converter for LiteRT on the TensorFlow backend). An
ONNX graph is then checked for operators that no standard ONNX runtime implements (tf2onnx
passes some TensorFlow ops through unconverted). When a format cannot hold the model, the error
names the layer whose operation failed.
"""

import contextlib
import io
import re

import keras

from kerastransfer._extras import require

FILENAMES = {"onnx": "model.onnx", "litert": "model.tflite"}


def write_format(model, fmt, filepath):
    """Write `model` to `filepath` in `fmt` ("onnx" or "litert"); raise naming the layer."""
    if fmt not in FILENAMES:
        raise ValueError(f"`fmt` must be 'onnx' or 'litert'. Received: {fmt!r}")
    require_converter(fmt)
    _ensure_called(model)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model.export(filepath, format=fmt, verbose=False)
    except Exception as e:  # the converters raise many types
        raise _layer_error(model, fmt, str(e)) from None
    if fmt == "onnx":
        _check_onnx_ops(model, filepath)
    return filepath


def require_converter(fmt):
    """Raises the one-line ImportError naming the `export` extra if `fmt`'s converter is not
    installed (ONNX needs tf2onnx and onnx; LiteRT only TensorFlow's own converter)."""
    if fmt == "onnx":
        require("tf2onnx", "Exporting to ONNX")
        require("onnx", "Exporting to ONNX")


def _ensure_called(model):
    # Keras's ONNX export refuses a model that was never called ("has never called").
    import numpy as np

    shape = tuple(d or 1 for d in model.input_shape[1:])
    model(np.zeros((1, *shape), "float32"), training=False)


def _check_onnx_ops(model, filepath):
    onnx = require("onnx", "Exporting to ONNX")
    graph = onnx.load(filepath).graph
    for node in graph.node:
        domain = node.domain or ""
        if domain not in ("", "ai.onnx", "ai.onnx.ml") or not onnx.defs.has(node.op_type, domain):
            raise _layer_error(
                model,
                "onnx",
                f"operator {node.op_type!r} (domain {domain!r}) of node "
                f"{node.name!r} is not a standard ONNX operator",
            )


def leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def find_layer(model, message):
    """The layer of `model` whose name scope appears in `message` (converter errors carry the
    op's scope, e.g. `functional_1/weird_1/PyFuncStateless`), or None."""
    found = None
    for layer in leaf_layers(model):
        if layer.__class__.__name__ == "InputLayer":
            continue
        if re.search(rf"(?:^|[/\"' ]){re.escape(layer.name)}(?:_\d+)?/", message):
            if found is None or len(layer.name) > len(found.name):
                found = layer
    return found


def _layer_error(model, fmt, message):
    label = {"onnx": "ONNX", "litert": "LiteRT"}[fmt]
    first = " ".join(message.split())[:300]
    layer = find_layer(model, message)
    if layer is not None:
        return ValueError(
            f"Cannot export model '{model.name}' to {label}: layer '{layer.name}' "
            f"({layer.__class__.__name__}) uses an operation {label} cannot hold. Leave "
            f"'{fmt}' out of `formats`, or replace the layer. Converter said: {first}"
        )
    return ValueError(
        f"Cannot export model '{model.name}' to {label}; no single layer could be named. "
        f"Leave '{fmt}' out of `formats`. Converter said: {first}"
    )
