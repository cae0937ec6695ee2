"""Optional dependencies: what each extra of the package installs, and `require`.

A plain `pip install kerastransfer` installs none of them and `import kerastransfer` imports none
of them; the code that needs one calls `require` when it runs:

- `export`: tf2onnx, onnx, onnxruntime, ai-edge-litert (ONNX and LiteRT exports and runtimes);
- `tune`: keras-tuner (`kerastransfer.tuning`, `kerastransfer tune`);
- `plot`: matplotlib (`LRFinder.plot`, the figure of `recipes/layer_transfer.py`);
- `hub`: keras-hub (KerasHub presets as sources: `kerastransfer.hub_source`).

`pip install "kerastransfer[export,tune,plot,hub]"` installs them all.
"""

import importlib

# Top-level module -> (extra, the distribution pip installs).
EXTRAS = {
    "tf2onnx": ("export", "tf2onnx"),
    "onnx": ("export", "onnx"),
    "onnxruntime": ("export", "onnxruntime"),
    "ai_edge_litert": ("export", "ai-edge-litert"),
    "keras_tuner": ("tune", "keras-tuner"),
    "matplotlib": ("plot", "matplotlib"),
    "keras_hub": ("hub", "keras-hub"),
}


def require(module, feature):
    """Imports and returns `module` (a module of an optional dependency).

    Args:
        module: the module's name, e.g. `"onnxruntime"` or `"matplotlib.pyplot"`.
        feature: what needs it, for the error, e.g. `"Running an ONNX export"`.

    Raises:
        ImportError: one line naming the extra to install, when the dependency is missing.
    """
    top = module.partition(".")[0]
    if top not in EXTRAS:
        raise ValueError(f"`module` must belong to one of {sorted(EXTRAS)}. Received: {module!r}")
    extra, distribution = EXTRAS[top]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if not (module == missing or module.startswith(missing + ".")):
            raise  # the dependency is there, but one of its own imports is missing
        raise ImportError(
            f"{feature} needs the optional package '{distribution}': "
            f"pip install 'kerastransfer[{extra}]'",
            name=top,
        ) from None
