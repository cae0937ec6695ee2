"""`InverseDecay`: the learning rate lr0 x (1 + gamma t)^(-power) of domain adaptation.

Ganin and Lempitsky (2015, "Unsupervised Domain Adaptation by Backpropagation") anneal the rate
as mu_p = mu_0 / (1 + alpha p)^beta over training progress p; Transfer-Learning-Library applies
the same form per step, lr0 x (1 + 0.001 t)^(-0.75), in all its domain adaptation examples:

    lr_t = initial_learning_rate x (1 + gamma x t) ** (-power)

Keras's `InverseTimeDecay` is the case power = 1. The schedule is evaluated at the optimizer's
step, saved with the optimizer and resumed by `BackupAndRestore`.

Example:

>>> schedule = InverseDecay(0.01)
>>> [round(float(schedule(t)), 5) for t in (0, 1000, 10000)]
[0.01, 0.00595, 0.00166]
"""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerastransfer")
class InverseDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`initial_learning_rate * (1 + gamma * step) ** (-power)`.

    Args:
        initial_learning_rate: the rate at step 0, > 0.
        gamma: how fast the rate falls per step (default 0.001), >= 0.
        power: the exponent (default 0.75), >= 0.
    """

    def __init__(self, initial_learning_rate, gamma=0.001, power=0.75):
        for what, value, low in (
            ("initial_learning_rate", initial_learning_rate, "> 0"),
            ("gamma", gamma, ">= 0"),
            ("power", power, ">= 0"),
        ):
            number = float(value)
            if not math.isfinite(number) or number < 0 or (low == "> 0" and number == 0):
                raise ValueError(f"`{what}` must be a finite number {low}. Received: {value}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.gamma = float(gamma)
        self.power = float(power)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        return self.initial_learning_rate * ops.power(1.0 + self.gamma * step, -self.power)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "gamma": self.gamma,
            "power": self.power,
        }
