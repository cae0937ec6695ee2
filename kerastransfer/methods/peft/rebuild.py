"""A copy of a functional or `Sequential` model, nested models included, with chosen layers
replaced: what `apply_lora`, `apply_dora`, `apply_bitfit` and `merge_adapters` return.

`keras.models.clone_model(recursive=True)` rebuilds the graph, nested models too, but gives the
clones fresh weights: here every layer that is not replaced is a copy holding the original
weights, so the new model computes what the old one did and shares no variable with it.

Example:

>>> inputs = keras.Input((4,))
>>> model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
>>> copy = rebuild(model, lambda layer: None)
>>> x = np.ones((1, 4), "float32")
>>> bool(np.array_equal(copy(x), model(x))), copy.weights[0] is model.weights[0]
(True, False)
"""

import keras
import numpy as np  # noqa: F401  (used in the docstring example)

from kerastransfer.methods.peft.selection import check_model


def copy_layer(layer):
    """A new layer of `layer`'s class and config, built as `layer` was, holding a copy of its
    weights."""
    new = layer.__class__.from_config(layer.get_config())
    if layer.weights:
        build_config = layer.get_build_config()
        if build_config is not None and not new.built:
            new.build_from_config(build_config)
        new.set_weights(layer.get_weights())
    return new


def rebuild(model, replace):
    """`model` rebuilt with each leaf layer replaced by `replace(layer)`, or copied with its
    weights where that returns None. Names (hence paths) are kept."""
    check_model(model)

    def clone(layer):
        new = replace(layer)
        return copy_layer(layer) if new is None else new

    return keras.models.clone_model(model, clone_function=clone, recursive=True)
