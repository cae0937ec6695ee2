"""`AdaptationRamp`: the 2 / (1 + exp(-steepness p)) - 1 ramp of domain adaptation weights.

Ganin and Lempitsky (2015, "Unsupervised Domain Adaptation by Backpropagation") and Long et al.
(2015, "Learning Transferable Features with Deep Adaptation Networks") do not apply the full
adaptation weight from the first step, when the features are still random: they raise it from 0
to its maximum with training progress p in [0, 1],

    lambda_p = maximum * (2 / (1 + exp(-steepness * p)) - 1),   p = min(step / total_steps, 1),

with steepness 10 (the papers' gamma). The ramp is a
`keras.optimizers.schedules.LearningRateSchedule`, so it is evaluated in the graph at the
optimizer's step, saved with the model and resumed by `BackupAndRestore`.

Example:

>>> ramp = AdaptationRamp(total_steps=100)
>>> [round(float(ramp(step)), 3) for step in (0, 10, 50, 100, 1000)]
[0.0, 0.462, 0.987, 1.0, 1.0]
"""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerastransfer")
class AdaptationRamp(keras.optimizers.schedules.LearningRateSchedule):
    """`maximum * (2 / (1 + exp(-steepness * p)) - 1)` with `p = min(step / total_steps, 1)`.

    Args:
        total_steps: training steps over which p goes from 0 to 1 (epochs x steps per epoch).
        maximum: the weight reached at the end (default 1).
        steepness: how fast the weight rises (default 10, the gamma of Ganin and Lempitsky
            2015).
    """

    def __init__(self, total_steps, maximum=1.0, steepness=10.0):
        if int(total_steps) != total_steps or total_steps < 1:
            raise ValueError(f"`total_steps` must be a positive integer. Received: {total_steps}")
        if not math.isfinite(maximum) or maximum < 0:
            raise ValueError(f"`maximum` must be a finite number >= 0. Received: {maximum}")
        if not math.isfinite(steepness) or steepness <= 0:
            raise ValueError(f"`steepness` must be a finite number > 0. Received: {steepness}")
        self.total_steps = int(total_steps)
        self.maximum = float(maximum)
        self.steepness = float(steepness)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        progress = ops.minimum(step / float(self.total_steps), 1.0)
        return self.maximum * (2.0 / (1.0 + ops.exp(-self.steepness * progress)) - 1.0)

    def get_config(self):
        return {
            "total_steps": self.total_steps,
            "maximum": self.maximum,
            "steepness": self.steepness,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "gamma" in config:  # saved before the steepness had its own name
            config["steepness"] = config.pop("gamma")
        return cls(**config)
