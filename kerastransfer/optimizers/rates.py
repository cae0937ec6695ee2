"""The base optimizer of a map and copies of it at other rates (floats, schedules, `ZeroRate`)."""

import numbers

import keras
import numpy as np
from keras.optimizers import MultiOptimizer
from keras.optimizers.schedules import LearningRateSchedule

from kerastransfer.optimizers.scaled_schedule import ScaledSchedule
from kerastransfer.optimizers.validation import check_rate


def base_optimizer(base_optimizer):
    """The base optimizer (an instance or a Keras name such as "sgd"), checked."""
    if base_optimizer is None:
        # neon's GradientDescentMomentum(0.001, momentum_coef=0.9, wdecay=0.0005).
        return keras.optimizers.SGD(learning_rate=0.001, momentum=0.9, weight_decay=0.0005)
    base = keras.optimizers.get(base_optimizer)
    if isinstance(base, (MultiOptimizer, keras.optimizers.LossScaleOptimizer)):
        raise ValueError(
            "`base_optimizer` must be a single optimizer (SGD, Adam, ...), not a "
            f"{type(base).__name__}: the map builds its own groups from it. Received: {base.name}"
        )
    rate = base.get_config()["learning_rate"]
    if isinstance(rate, numbers.Real):
        check_rate(rate, "base_optimizer.learning_rate")
    elif schedule_of(base) is None:
        raise ValueError(
            "`base_optimizer` must have a float learning rate or a "
            f"keras.optimizers.schedules.LearningRateSchedule. Received: {rate!r}"
        )
    return base


def schedule_of(optimizer):
    """The `LearningRateSchedule` `optimizer` follows (read from its public config), or None."""
    rate = optimizer.get_config().get("learning_rate")
    if not isinstance(rate, dict):
        return None
    try:
        schedule = keras.optimizers.schedules.deserialize(rate)
    except (ValueError, TypeError):
        return None
    return schedule if isinstance(schedule, LearningRateSchedule) else None


def rate_like(base, rate):
    """`rate` at step 0, following the shape of `base`'s schedule if it has one:
    `ScaledSchedule(schedule, rate / schedule(0))`."""
    schedule = schedule_of(base)
    if schedule is None:
        return rate
    start = float(np.asarray(keras.ops.convert_to_numpy(schedule(0))))
    if not start > 0:
        raise ValueError(
            f"The base optimizer's schedule starts at {start}: the groups' rates are scaled from "
            "its value at step 0, which must be > 0."
        )
    return ScaledSchedule(schedule, rate / start)


def copy_with_learning_rate(optimizer, learning_rate, name):
    """A fresh optimizer of the same class and settings, with another rate (a float, a schedule or
    a `ZeroRate`) and name (the name labels its rate in the logs of Keras's rate callbacks)."""
    config = optimizer.get_config()
    if isinstance(learning_rate, numbers.Real):
        learning_rate = float(learning_rate)
    config["learning_rate"] = learning_rate
    config["name"] = name
    return optimizer.__class__.from_config(config)


def rate_value(optimizer):
    return float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate)))
