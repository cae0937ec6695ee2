"""BitFit on a Keras model: `apply_bitfit` leaves only the bias vectors trainable.

Ben Zaken, Ravfogel and Goldberg (2022), "BitFit: Simple Parameter-efficient Fine-tuning for
Transformer-based Masked Language-models": fine-tune the bias terms only (optionally, here, the
gamma and beta of the normalization layers too), every kernel frozen.

`layer.trainable` is all or nothing for a layer, so the choice is made per variable: Keras 3
variables have a settable `trainable`, and `Layer.trainable_weights` (hence what `fit` trains)
keeps only the variables whose flag is set. A layer holding a tuned vector stays trainable with
its other variables' flags cleared; a layer holding none is set non-trainable (a
`BatchNormalization` with `normalization=False` then runs in inference mode; with
`normalization=True` it trains, its statistics updated by `fit` as usual). Two consequences:
setting `layer.trainable` (or `model.trainable`) again resets every variable of the layers
concerned to that flag, and the per-variable flags are not part of a layer's config, so a model
loaded from a `.keras` file has them all set: call `apply_bitfit` on it again (its weights are
copied, so the tuned biases are kept).

Example:

>>> inputs = keras.Input((8,))
>>> hidden = keras.layers.Dense(16, name="hidden")(inputs)
>>> model = keras.Model(inputs, keras.layers.Dense(2, name="head")(hidden))
>>> tuned = apply_bitfit(model)
>>> [v.path for v in tuned.trainable_weights]
['hidden/bias', 'head/bias']
"""

import keras

from kerastransfer.methods.peft.adapted_layer import AdaptedLayer
from kerastransfer.methods.peft.lora import kept_trainable
from kerastransfer.methods.peft.rebuild import rebuild
from kerastransfer.methods.peft.selection import check_model, leaf_layers

L = keras.layers
NORMALIZATION_TYPES = tuple(
    getattr(L, name)
    for name in (
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
    )
    if hasattr(L, name)
)


def tuned_variables(layer, normalization):
    """The variables BitFit trains in `layer`: those named 'bias' (sublayers' included), and
    with `normalization` the gamma and beta of a normalization layer."""
    norm = normalization and isinstance(layer, NORMALIZATION_TYPES)
    return [v for v in layer.weights if v.name == "bias" or (norm and v.name in ("gamma", "beta"))]


def apply_bitfit(model, normalization=False, train=()):
    """A new model (a copy of `model`) in which only the bias vectors are trainable.

    Args:
        model: a built functional or `Sequential` model (nested ones are walked into).
        normalization: also train the gamma and beta of the BatchNormalization,
            LayerNormalization, GroupNormalization (and RMSNormalization) layers.
        train: names, patterns or classes of layers kept fully trainable (a new head).

    Raises:
        ValueError: `model` has no bias (nor, with `normalization`, normalization parameter),
            so no trainable parameter would remain of BitFit's own; `model` holds adapted layers;
            a `train` entry that matches no layer.
        TypeError: a model that is not functional or `Sequential`.
    """
    check_model(model)
    leaves = leaf_layers(model)
    adapted = [path for path, layer in leaves if isinstance(layer, AdaptedLayer)]
    if adapted:
        raise ValueError(
            f"Model '{model.name}' holds adapted layers ({', '.join(adapted[:5])}); apply BitFit "
            "to a plain model (`merge_adapters` first)."
        )
    keep = kept_trainable(leaves, train)
    if not any(tuned_variables(layer, normalization) for _, layer in leaves):
        what = "bias vector" + (" nor normalization gamma/beta" if normalization else "")
        raise ValueError(
            f"Model '{model.name}' has no {what}: BitFit would leave no trainable parameter of "
            "its own. Use layers with `use_bias=True`"
            + ("." if normalization else ", or `normalization=True`.")
        )
    tuned = rebuild(model, lambda layer: None)
    for path, layer in leaf_layers(tuned):
        chosen = {id(v) for v in tuned_variables(layer, normalization)}
        layer.trainable = path in keep or bool(chosen)
        if path not in keep:
            for v in layer.weights:
                v.trainable = id(v) in chosen
    return tuned
