"""Per-layer optimizer maps on top of `keras.optimizers.MultiOptimizer`.

Three schemes from the transfer-learning literature (and `InverseDecay`, the learning rate
schedule of domain adaptation, lr0 (1 + gamma t)^(-power)):

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
`LearningRateScheduler` do not use that property: they step through `optimizer.optimizers` one by
one (`ReduceLROnPlateau` multiplies every group's rate by its factor, down to its `min_lr`; a
schedule gets each group's own rate: write it relative to `lr` to keep the ratios), and
`TensorBoard` logs every group's rate. Code that only knows `optimizer.learning_rate` (custom
warm-ups, `LRFinder`) works through the property. Sub-optimizers are named (`imported_lr0`,
`group0`..., `depth0`...) so Keras labels their rates in the logs (`learning_rate_<name>`).

Nothing runs silently wrong:

- The imported layers' rate is a `ZeroRate`: it stays 0 whatever a callback sets (an absolute
  `LearningRateScheduler` included), so imported layers never start training by accident.
- Every layer a map names must own a trainable variable of the model: when the optimizer is
  built on the model's variables, a name matching none (a typo, a wrong case, a frozen layer)
  raises a `ValueError` listing close layer names, instead of training that layer at the default
  rate.
- A `LearningRateSchedule` on the base optimizer survives: each group gets a `ScaledSchedule`
  (the base schedule times the group's factor), saved without lambdas.
- Negative or non-finite learning rates are refused.
"""

from kerastransfer.optimizers.inverse_decay import InverseDecay
from kerastransfer.optimizers.maps import (
    discriminative_optimizer,
    geometric_rates,
    layer_pattern,
    layerwise_decay_optimizer,
    neon_optimizer,
)
from kerastransfer.optimizers.rates import copy_with_learning_rate
from kerastransfer.optimizers.scaled_multi_optimizer import ScaledMultiOptimizer
from kerastransfer.optimizers.scaled_schedule import ScaledSchedule
from kerastransfer.optimizers.zero_rate import ZeroRate

__all__ = [
    "InverseDecay",
    "ScaledMultiOptimizer",
    "ScaledSchedule",
    "ZeroRate",
    "copy_with_learning_rate",
    "discriminative_optimizer",
    "geometric_rates",
    "layer_pattern",
    "layerwise_decay_optimizer",
    "neon_optimizer",
]
