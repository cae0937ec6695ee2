"""`merge_adapters`: the adapted model as a plain model of the base architecture.

Each `AdaptedLayer` becomes a layer of its base type and config holding the merged kernel W'
(`AdaptedLayer.merged_layer`); every other layer is copied with its weights, nested models kept
as nested models. The result has no custom layer, so it loads with `keras.models.load_model`
anywhere Keras does and exports like the base model. It computes what the adapted model
computes in inference, to float32 rounding (the merged kernel is computed once instead of at
each call). Layers keep their `trainable` flags; a merged layer is trainable where its adapted
layer was.

Example:

>>> inputs = keras.Input((4,))
>>> model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
>>> plain = merge_adapters(apply_lora(model, rank=1))
>>> [type(layer).__name__ for layer in plain.layers]
['InputLayer', 'Dense']
"""

import keras  # noqa: F401  (used in the docstring example)

from kerastransfer.methods.peft.adapted_layer import AdaptedLayer
from kerastransfer.methods.peft.lora import apply_lora  # noqa: F401  (the docstring example)
from kerastransfer.methods.peft.rebuild import rebuild
from kerastransfer.methods.peft.selection import check_model, leaf_layers


def merge_adapters(model):
    """A new model of the base architecture whose merged layers hold W' (see the module).

    Raises:
        ValueError: `model` has no adapted layer (never adapted, or already merged).
        TypeError: a model that is not functional or `Sequential`.
    """
    check_model(model)
    if not any(isinstance(layer, AdaptedLayer) for _, layer in leaf_layers(model)):
        raise ValueError(
            f"Model '{model.name}' has no adapted layer to merge: it was never adapted "
            "(`apply_lora`, `apply_dora`) or is already merged."
        )
    return rebuild(model, lambda x: x.merged_layer() if isinstance(x, AdaptedLayer) else None)
