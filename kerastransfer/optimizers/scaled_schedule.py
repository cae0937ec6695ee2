"""`ScaledSchedule`: another learning-rate schedule times a constant factor."""

import keras
from keras.optimizers.schedules import LearningRateSchedule

from kerastransfer.optimizers.validation import check_rate


@keras.saving.register_keras_serializable(package="kerastransfer")
class ScaledSchedule(LearningRateSchedule):
    """Another learning-rate schedule times a constant factor: `schedule(step) * factor`.

    How the groups of a discriminative or layer-wise map follow a schedule set on the base
    optimizer. Saved by `get_config`, without lambdas.

    >>> decay = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    >>> round(float(ScaledSchedule(decay, 0.1)(10)), 6)
    0.005
    """

    def __init__(self, schedule, factor):
        if isinstance(schedule, dict):
            schedule = keras.optimizers.schedules.deserialize(schedule)
        if not isinstance(schedule, LearningRateSchedule):
            raise ValueError(
                "`schedule` must be a keras.optimizers.schedules.LearningRateSchedule. "
                f"Received: {schedule!r}"
            )
        self.schedule = schedule
        self.factor = check_rate(factor, "factor")

    def __call__(self, step):
        return self.schedule(step) * self.factor

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "factor": self.factor,
        }
