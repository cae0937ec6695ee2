"""The per-layer maps: `neon_optimizer`, `discriminative_optimizer`, `layerwise_decay_optimizer`."""

import numbers
import re

import keras
import numpy as np
from keras.optimizers import OptimizerMap
from keras.optimizers.schedules import LearningRateSchedule

from kerastransfer.optimizers.rates import base_optimizer as get_base_optimizer
from kerastransfer.optimizers.rates import copy_with_learning_rate, rate_like
from kerastransfer.optimizers.scaled_multi_optimizer import ScaledMultiOptimizer
from kerastransfer.optimizers.scaled_schedule import ScaledSchedule
from kerastransfer.optimizers.validation import check_names, check_rate
from kerastransfer.optimizers.zero_rate import ZeroRate


def layer_pattern(layer_names):
    """A variable-path regex matching every variable of the named layers.

    Tolerates any prefix of enclosing models: a nested backbone's variables are
    `backbone/conv1/kernel` when built but `conv1/kernel` after a `.keras` reload.

    >>> bool(re.fullmatch(layer_pattern(["conv1"]), "mobilenet/conv1/kernel"))
    True
    """
    names = sorted(set(check_names(layer_names, "layer_names")))
    alternatives = "|".join(re.escape(n) for n in names)
    return rf"(?:.*/)?(?:{alternatives})/[^/]+"


def neon_optimizer(imported_layers, base_optimizer=None, *, allow_frozen=False):
    """The neon transfer scheme: imported layers frozen at learning rate 0, new layers learn.

    Args:
        imported_layers: a list of the imported layers' names, or an `ImportReport`.
        base_optimizer: the optimizer of the new layers (an instance or a Keras name). Default:
            SGD, learning rate 0.001, momentum 0.9, weight decay 0.0005 (neon's
            `GradientDescentMomentum`).
        allow_frozen: allow names of layers that are frozen (trainable=False) when the optimizer
            is built; see `ScaledMultiOptimizer`.

    The imported layers' rate is a `ZeroRate`: no callback can make it non-zero. Every name must
    be a layer of the model compiled with this optimizer (checked when it is built).

    Example:

    >>> opt = neon_optimizer(["conv1", "conv2"])
    >>> [round(r, 6) for r in opt.learning_rates()]
    [0.0, 0.001]
    """
    names = check_names(getattr(imported_layers, "imported", imported_layers), "imported_layers")
    base = get_base_optimizer(base_optimizer)
    frozen = copy_with_learning_rate(base, ZeroRate(), "imported_lr0")
    key = layer_pattern(names)
    return ScaledMultiOptimizer(
        OptimizerMap(base, {key: frozen}), layer_groups={key: names}, allow_frozen=allow_frozen
    )


def geometric_rates(low, high, n):
    """`n` learning rates spaced geometrically from `low` (first) to `high` (last)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"Need at least one group. Received n={n!r}.")
    low, high = check_rate(low, "low"), check_rate(high, "high")
    if not 0 < low <= high:
        raise ValueError(
            f"`low` and `high` must satisfy 0 < low <= high. Received low={low}, high={high}."
        )
    return [float(r) for r in np.geomspace(low, high, n)]


def discriminative_optimizer(groups, low, high, base_optimizer=None, *, allow_frozen=False):
    """One learning rate per group of layers, geometric from `low` (first group) to `high` (last).

    Layers in no group use the base optimizer at rate `high`. If the base optimizer follows a
    `LearningRateSchedule`, every group follows it too, scaled to start at its own rate:
    `rate_i * schedule(step) / schedule(0)`.

    Args:
        groups: list of lists of layer names, bottom (closest to the input) first.
        low, high: rates of the bottom and top groups.
        base_optimizer: optimizer whose configuration every group copies. Default: neon's SGD.
        allow_frozen: allow names of layers that are frozen (trainable=False) when the optimizer
            is built, e.g. for `GradualUnfreezing`; see `ScaledMultiOptimizer`.

    Example:

    >>> opt = discriminative_optimizer([["conv1"], ["conv2"], ["fc1"]], 1e-4, 1e-2)
    >>> [round(r, 6) for r in opt.learning_rates()]
    [0.0001, 0.001, 0.01, 0.01]
    """
    if isinstance(groups, (str, bytes)) or not hasattr(groups, "__iter__"):
        raise ValueError(f"`groups` must be a list of lists of layer names. Received: {groups!r}")
    groups = [check_names(g, f"groups[{i}]") for i, g in enumerate(groups)]
    if not groups:
        raise ValueError("`groups` is empty: give at least one group of layer names.")
    seen = set()
    for g in groups:
        dup = seen.intersection(g)
        if dup:
            raise ValueError(f"Layers {sorted(dup)} appear in more than one group.")
        seen.update(g)
    rates = geometric_rates(low, high, len(groups))
    base = get_base_optimizer(base_optimizer)
    default = copy_with_learning_rate(base, rate_like(base, high), "default")
    mapping, layer_groups = {}, {}
    for i, (g, r) in enumerate(zip(groups, rates)):
        key = layer_pattern(g)
        mapping[key] = copy_with_learning_rate(base, rate_like(base, r), f"group{i}")
        layer_groups[key] = g
    return ScaledMultiOptimizer(
        OptimizerMap(default, mapping), layer_groups=layer_groups, allow_frozen=allow_frozen
    )


def layerwise_decay_optimizer(model, learning_rate, decay, base_optimizer=None):
    """Layer-wise learning-rate decay: rate x decay**depth, depth 0 for the top weighted layer.

    Depth is counted in levels (`surgery.weighted_levels`: a normalization layer shares the level
    of the layer it follows). Frozen layers get their depth's rate too (for when they are
    unfrozen, e.g. by `GradualUnfreezing`); the names checked when the optimizer is built are
    those of the layers trainable now.
    `learning_rate` may be a `LearningRateSchedule` (each depth gets it scaled by decay**depth);
    a schedule on the base optimizer is followed the same way.

    Example:

    >>> from kerastransfer.models import small_cnn
    >>> opt = layerwise_decay_optimizer(small_cnn(), 0.01, 0.5)
    >>> sorted(round(r, 6) for r in opt.learning_rates())
    [0.00125, 0.0025, 0.005, 0.01]
    """
    from kerastransfer.surgery import weighted_levels

    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: {type(model).__name__}")
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 < decay <= 1:
        raise ValueError(f"`decay` must be in (0, 1]. Received: {decay!r}")
    base = get_base_optimizer(base_optimizer)
    if isinstance(learning_rate, LearningRateSchedule):

        def rate(depth):
            return learning_rate if depth == 0 else ScaledSchedule(learning_rate, decay**depth)

    else:
        if check_rate(learning_rate, "learning_rate") == 0:
            raise ValueError("`learning_rate` must be > 0. Received: 0")

        def rate(depth):
            return rate_like(base, learning_rate * decay**depth)

    levels = weighted_levels(model)
    default = copy_with_learning_rate(base, rate(0), "depth0")
    mapping, layer_groups = {}, {}
    for depth, level in enumerate(reversed(levels)):
        if depth == 0:
            continue  # the top level uses the default optimizer itself
        key = layer_pattern([layer.name for layer in level])
        mapping[key] = copy_with_learning_rate(base, rate(depth), f"depth{depth}")
        layer_groups[key] = [layer.name for layer in level if layer.trainable_weights]
    return ScaledMultiOptimizer(OptimizerMap(default, mapping), layer_groups=layer_groups)
