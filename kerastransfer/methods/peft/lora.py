"""LoRA on a Keras model: `apply_lora` replaces the chosen Dense and 2-D convolution layers by
`AdaptedLayer`s and freezes every other weight.

Hu et al. (2021), "LoRA: Low-Rank Adaptation of Large Language Models": a frozen kernel W is
tuned by a low-rank update, W' = W + (alpha / r) A B, with B starting at zero so that the adapted
model computes what the base did. The forms for depthwise and separable convolutions, and the
dropout, are in `kerastransfer.methods.peft.adapted_layer`.

The returned model is a new one (`keras.models.clone_model(recursive=True)`, so a
`keras.applications` backbone nested in a functional model is walked into); it holds copies of
the base weights and shares no variable with `model`. In it the adapter weights are trainable,
the layers named by `train` (e.g. a new head) are fully trainable, and every other layer is set
non-trainable (a frozen `BatchNormalization` runs in inference mode).

Example:

>>> inputs = keras.Input((8,))
>>> hidden = keras.layers.Dense(16, name="hidden")(inputs)
>>> model = keras.Model(inputs, keras.layers.Dense(2, name="head")(hidden))
>>> adapted = apply_lora(model, targets=["hidden"], rank=2, train=["head"])
>>> trainable_parameter_count(adapted)  # A (8x2) + B (2x16) + the head (16x2 + 2)
(82, 226)
"""

import keras  # noqa: F401  (used in the docstring example)
import numpy as np

from kerastransfer.methods.peft.adapted_layer import (
    SUPPORTED_TYPES,
    AdaptedLayer,
    check_arguments,
    check_layer,
    check_rank,
)
from kerastransfer.methods.peft.rebuild import copy_layer, rebuild
from kerastransfer.methods.peft.selection import check_model, leaf_layers, select_layers


def trainable_parameter_count(model):
    """(trainable, total): the number of scalars in `model.trainable_weights` and in
    `model.weights` (non-trainable ones, such as BatchNormalization statistics, included)."""

    def count(weights):
        return int(sum(np.prod(v.shape, dtype=np.int64) for v in weights))

    return count(model.trainable_weights), count(model.weights)


def kept_trainable(leaves, train):
    """The paths of the leaves that `train` names (kept fully trainable)."""
    return {path for path, _, _ in select_layers(leaves, train, "train")} if train else set()


def freeze_all_but(model, keep):
    """Sets every leaf layer of `model` non-trainable except adapted layers (whose base stays
    frozen) and the layers whose path is in `keep`, which are set trainable."""
    for path, layer in leaf_layers(model):
        layer.trainable = isinstance(layer, AdaptedLayer) or path in keep


def _adaptable(layer):
    return isinstance(layer, (*SUPPORTED_TYPES, AdaptedLayer))


def adapt_model(model, method, targets, rank, alpha, dropout, seed, train):
    """`apply_lora` and `apply_dora`: `method` is 'lora' or 'dora'."""
    check_model(model)
    check_arguments(rank, alpha, dropout, method)
    leaves = leaf_layers(model)
    keep = kept_trainable(leaves, train)
    if targets is None:
        chosen = [(p, layer) for p, layer in leaves if _adaptable(layer) and p not in keep]
        if not chosen:
            raise ValueError(f"Model '{model.name}' has no layer to adapt: {_supported_names()}.")
    else:
        selected = select_layers(leaves, targets, "targets", _adaptable)
        chosen = [(p, layer) for p, layer, _ in selected]
        both = [p for p, _ in chosen if p in keep]
        if both:
            raise ValueError(f"Layers both in `targets` and in `train`: {', '.join(both)}.")
    for path, layer in chosen:
        check_layer(layer, path)
    for path, layer in chosen:
        check_rank(layer, rank, path)
    seeds = {
        id(layer): None if seed is None else seed + 2 * i for i, (_, layer) in enumerate(chosen)
    }

    def replace(layer):
        if id(layer) not in seeds:
            return None
        base = copy_layer(layer)
        return AdaptedLayer(base, rank, alpha, dropout, method, seeds[id(layer)], name=layer.name)

    adapted = rebuild(model, replace)
    freeze_all_but(adapted, keep)
    return adapted


def _supported_names():
    return "the supported layer types are " + ", ".join(t.__name__ for t in SUPPORTED_TYPES)


def apply_lora(model, targets=None, rank=8, alpha=None, dropout=0.0, seed=None, train=()):
    """A new model in which the `targets` of `model` carry LoRA adapters (see the module).

    Args:
        model: a built functional or `Sequential` model (nested ones are walked into).
        targets: None: every Dense, Conv2D, DepthwiseConv2D and SeparableConv2D layer not in
            `train`. Else a list of layer names, `fnmatch` patterns on names or on paths
            (`"backbone/block_1_*"`; a nested model's name selects its layers), or layer classes.
        rank: r, the rank of each update; at most what each targeted layer allows
            (`max_rank(layer)`: 9 for a 3x3 depthwise kernel).
        alpha: the update is scaled by alpha / r; None: alpha = r.
        dropout: dropout rate on the input of the adapter path (training only).
        seed: seed of the initialisers of A (layer i gets `seed + 2 * i`) and of the dropout.
        train: names, patterns or classes of layers kept fully trainable (a new head).

    Raises:
        ValueError: a bad `rank`, `alpha` or `dropout`; a rank too large for a targeted layer;
            a `targets` or `train` entry that matches no layer; a layer already adapted.
        TypeError: a model that is not functional or `Sequential`; a targeted layer of a type
            no form supports.
    """
    return adapt_model(model, "lora", targets, rank, alpha, dropout, seed, train)
