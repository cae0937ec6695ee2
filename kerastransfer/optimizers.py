"""Per-layer optimizer maps on top of `keras.optimizers.MultiOptimizer`.

Three schemes from the transfer-learning literature:

- `neon_optimizer`: the Intel neon recipe. Imported layers get a copy of the base optimizer with
  learning rate 0; new layers get the base optimizer.
- `discriminative_optimizer`: one learning rate per group of layers, geometric between a low rate
  (bottom group) and a high rate (top group).
- `layerwise_decay_optimizer`: rate x decay**depth, depth counted in weighted layers from the top.

Learning rate 0 versus `trainable=False`: with learning rate 0 the imported weights stay
bit-identical through training (momentum and weight decay included, since both are multiplied by
the learning rate), but the layers still run in training mode, so BatchNormalization moving
statistics keep adapting to the target data. With `trainable=False` (see
`surgery.freeze_bottom_levels`) the layers run in inference mode and their statistics stay those of
the source data. Choose lr 0 when the target data's statistics differ from the source's.

All maps are `ScaledMultiOptimizer`s: a `MultiOptimizer` whose `learning_rate` reads the default
optimizer's rate and, when set, rescales every sub-optimizer by the same factor, so the ratios
between groups and the zero rates stay. Keras's own `ReduceLROnPlateau` and
`LearningRateScheduler` already step through `optimizer.optimizers` one by one (a schedule gets
each group's own rate: write it relative to `lr` to keep the ratios); code that only knows
`optimizer.learning_rate` (TensorBoard, custom warm-ups) works through the property. Sub-optimizers
are named (`imported_lr0`, `group0`..., `depth0`...) so their rates are labelled in the logs.
"""

import re

import keras
import numpy as np
from keras.optimizers import MultiOptimizer, OptimizerMap


def layer_pattern(layer_names):
    """A variable-path regex matching every variable of the named layers.

    Tolerates any prefix of enclosing models: a nested backbone's variables are
    `backbone/conv1/kernel` when built but `conv1/kernel` after a `.keras` reload.

    >>> bool(re.fullmatch(layer_pattern(["conv1"]), "mobilenet/conv1/kernel"))
    True
    """
    names = sorted(set(layer_names))
    if not names:
        raise ValueError("`layer_names` is empty: name at least one layer.")
    alternatives = "|".join(re.escape(n) for n in names)
    return rf"(?:.*/)?(?:{alternatives})/[^/]+"


def _copy_with_learning_rate(optimizer, learning_rate, name):
    """A fresh optimizer of the same class and settings, with another rate and name (the name
    labels its rate in the logs of Keras's learning-rate callbacks)."""
    config = optimizer.get_config()
    config["learning_rate"] = float(learning_rate)
    config["name"] = name
    return optimizer.__class__.from_config(config)


def _default_base_optimizer():
    # neon's GradientDescentMomentum(0.001, momentum_coef=0.9, wdecay=0.0005).
    return keras.optimizers.SGD(learning_rate=0.001, momentum=0.9, weight_decay=0.0005)


@keras.saving.register_keras_serializable(package="kerastransfer")
class ScaledMultiOptimizer(MultiOptimizer):
    """A `MultiOptimizer` with a settable learning rate.

    Keras's `MultiOptimizer` refuses `learning_rate`, which breaks `ReduceLROnPlateau` and
    `LearningRateScheduler`. Here `learning_rate` is the default optimizer's rate, and setting it
    multiplies every sub-optimizer's rate by `new / old`: a group at rate 0 stays at 0 and the
    ratios between groups are kept.

    Example:

    >>> base = keras.optimizers.SGD(0.1)
    >>> opt = ScaledMultiOptimizer(OptimizerMap(base, {"head/.*": keras.optimizers.SGD(1.0)}))
    >>> opt.learning_rate = 0.01
    >>> [round(float(o.learning_rate), 6) for o in opt.optimizers]
    [0.1, 0.01]
    """

    @property
    def default_optimizer(self):
        default = getattr(self._optimizer_map, "default_optimizer", None)
        return default if default is not None else self.optimizers[0]

    @property
    def learning_rate(self):
        return self.default_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if not hasattr(self, "_inner_optimizers"):
            return  # Optimizer.__init__ sets a placeholder rate before the map exists.
        old = float(np.asarray(keras.ops.convert_to_numpy(self.default_optimizer.learning_rate)))
        new = float(np.asarray(keras.ops.convert_to_numpy(value)))
        if old == 0.0:
            raise ValueError(
                "Cannot rescale a ScaledMultiOptimizer whose default optimizer has learning "
                "rate 0: the factor new/old is undefined. Set the sub-optimizers' rates directly."
            )
        for opt in self.optimizers:
            if isinstance(opt._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
                raise TypeError(
                    "A sub-optimizer uses a LearningRateSchedule, whose rate cannot be set by a "
                    "callback. Use either schedules or rate callbacks, not both."
                )
            current = float(np.asarray(keras.ops.convert_to_numpy(opt.learning_rate)))
            opt.learning_rate = current * new / old

    def learning_rates(self):
        """The current learning rate of each sub-optimizer, in `optimizers` order."""
        return [float(keras.ops.convert_to_numpy(o.learning_rate)) for o in self.optimizers]


def neon_optimizer(imported_layers, base_optimizer=None):
    """The neon transfer scheme: imported layers frozen at learning rate 0, new layers learn.

    Args:
        imported_layers: names of the imported layers, or an `ImportReport`.
        base_optimizer: the optimizer of the new layers. Default: SGD, learning rate 0.001,
            momentum 0.9, weight decay 0.0005 (neon's `GradientDescentMomentum`).

    Example:

    >>> opt = neon_optimizer(["conv1", "conv2"])
    >>> [round(r, 6) for r in opt.learning_rates()]
    [0.0, 0.001]
    """
    names = list(getattr(imported_layers, "imported", imported_layers))
    base = base_optimizer or _default_base_optimizer()
    frozen = _copy_with_learning_rate(base, 0.0, "imported_lr0")
    return ScaledMultiOptimizer(OptimizerMap(base, {layer_pattern(names): frozen}))


def geometric_rates(low, high, n):
    """`n` learning rates spaced geometrically from `low` (first) to `high` (last)."""
    if n < 1:
        raise ValueError(f"Need at least one group. Received n={n}.")
    if not 0 < low <= high:
        raise ValueError(f"Expected 0 < low <= high. Received low={low}, high={high}.")
    return [float(r) for r in np.geomspace(low, high, n)]


def discriminative_optimizer(groups, low, high, base_optimizer=None):
    """One learning rate per group of layers, geometric from `low` (first group) to `high` (last).

    Layers in no group use the base optimizer at rate `high`.

    Args:
        groups: list of lists of layer names, bottom (closest to the input) first.
        low, high: rates of the bottom and top groups.
        base_optimizer: optimizer whose configuration every group copies. Default: neon's SGD.

    Example:

    >>> opt = discriminative_optimizer([["conv1"], ["conv2"], ["fc1"]], 1e-4, 1e-2)
    >>> [round(r, 6) for r in opt.learning_rates()]
    [0.0001, 0.001, 0.01, 0.01]
    """
    groups = [list(g) for g in groups]
    seen = set()
    for g in groups:
        if not g:
            raise ValueError("A group of layers is empty: every group needs at least one name.")
        dup = seen.intersection(g)
        if dup:
            raise ValueError(f"Layers {sorted(dup)} appear in more than one group.")
        seen.update(g)
    rates = geometric_rates(low, high, len(groups))
    base = _copy_with_learning_rate(base_optimizer or _default_base_optimizer(), high, "default")
    mapping = {
        layer_pattern(g): _copy_with_learning_rate(base, r, f"group{i}")
        for i, (g, r) in enumerate(zip(groups, rates))
    }
    return ScaledMultiOptimizer(OptimizerMap(base, mapping))


def layerwise_decay_optimizer(model, learning_rate, decay, base_optimizer=None):
    """Layer-wise learning-rate decay: rate x decay**depth, depth 0 for the top weighted layer.

    Depth is counted in levels (`surgery.weighted_levels`: a normalization layer shares the level
    of the layer it follows).

    Example:

    >>> from kerastransfer.models import small_cnn
    >>> opt = layerwise_decay_optimizer(small_cnn(), 0.01, 0.5)
    >>> sorted(round(r, 6) for r in opt.learning_rates())
    [0.00125, 0.0025, 0.005, 0.01]
    """
    from kerastransfer.surgery import weighted_levels

    if not 0 < decay <= 1:
        raise ValueError(f"`decay` must be in (0, 1]. Received: {decay}")
    levels = weighted_levels(model)
    base = _copy_with_learning_rate(
        base_optimizer or _default_base_optimizer(), learning_rate, "depth0"
    )
    mapping = {}
    for depth, level in enumerate(reversed(levels)):
        if depth == 0:
            continue  # the top level uses the base optimizer itself
        names = [layer.name for layer in level]
        mapping[layer_pattern(names)] = _copy_with_learning_rate(
            base, learning_rate * decay**depth, f"depth{depth}"
        )
    return ScaledMultiOptimizer(OptimizerMap(base, mapping))
