"""`LearningRateLogger`: the learning rate of every optimizer group, in the epoch logs (`History`).

Keras's `TensorBoard` callback already writes the rate of every sub-optimizer of a
`MultiOptimizer` (the maps of `kerastransfer.optimizers` name their groups: `imported_lr0`,
`group0`..., `depth0`...) as `epoch_learning_rate_<sub-optimizer name>`, or `epoch_learning_rate`
for a plain optimizer; `ReduceLROnPlateau` and `LearningRateScheduler` add the same keys
(`learning_rate_<name>`, `learning_rate`) to the epoch logs. Without one of those two, `History`
holds no rate. This callback adds only that: the same keys with the same values in every epoch's
logs, so `History` keeps each group's rate, and a `TensorBoard` callback, before or after it in
the list, still writes each rate once. Sub-optimizers of the same name get a `_1`, `_2`... suffix
here; Keras's callbacks give them one key (the last one's rate), so name the groups apart.

Example:

>>> import numpy as np
>>> from kerastransfer.models import small_cnn
>>> from kerastransfer.optimizers import neon_optimizer
>>> model = small_cnn(filters=(4, 6), dense=16, num_classes=3)
>>> model.compile(neon_optimizer(["conv1"], keras.optimizers.SGD(0.01, name="new_layers")),
...               "sparse_categorical_crossentropy")
>>> x, y = np.random.rand(6, 28, 28, 1) * 255, np.arange(6) % 3
>>> h = model.fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateLogger()])
>>> sorted(k for k in h.history if k.startswith("learning_rate"))
['learning_rate_imported_lr0', 'learning_rate_new_layers']
"""

import keras
import numpy as np

from kerastransfer.optimizers.rates import rate_value, schedule_of


def group_learning_rates(optimizer, iterations=None):
    """`{name: rate}` of each sub-optimizer of a `MultiOptimizer` (or `{"lr": rate}`).

    Schedules are evaluated at step `iterations` (default: the rate each optimizer applies now).
    Sub-optimizers with the same name get a `_1`, `_2`... suffix.
    """
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    subs = getattr(optimizer, "optimizers", None)
    if not subs:
        return {"lr": _rate(optimizer, iterations)}
    rates = {}
    for opt in subs:
        name = opt.name
        k = 1
        while name in rates:
            name, k = f"{opt.name}_{k}", k + 1
        rates[name] = _rate(opt, iterations)
    return rates


def _rate(optimizer, iterations):
    schedule = None if iterations is None else schedule_of(optimizer)
    if schedule is None:
        return rate_value(optimizer)  # a schedule's value at the optimizer's own step
    return float(np.asarray(keras.ops.convert_to_numpy(schedule(iterations))))


class LearningRateLogger(keras.callbacks.Callback):
    """Adds each optimizer group's learning rate to the logs at the end of every epoch.

    The keys are Keras's: `learning_rate_<sub-optimizer name>` for each group of a
    `MultiOptimizer`, `learning_rate` for a plain optimizer (see the module docstring).
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        rates = group_learning_rates(optimizer)
        if getattr(optimizer, "optimizers", None):
            logs.update({f"learning_rate_{name}": rate for name, rate in rates.items()})
        else:
            logs["learning_rate"] = rates["lr"]
