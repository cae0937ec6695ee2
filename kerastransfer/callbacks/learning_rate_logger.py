"""`LearningRateLogger`: the learning rate of every optimizer group, in History and TensorBoard.

Keras's `TensorBoard` callback logs one `learning_rate`, which a `MultiOptimizer` does not have.
This callback adds `lr/<sub-optimizer name>` to each epoch's logs (so `History` keeps them) for
every sub-optimizer of a `MultiOptimizer` (the maps of `kerastransfer.optimizers` name their
groups: `imported_lr0`, `group0`..., `depth0`...), or `lr` for a plain optimizer, and with
`log_dir` writes them as TensorBoard scalars. Put it before `TensorBoard` in the callback list
and Keras's own TensorBoard writes them too.

Example:

>>> import numpy as np
>>> from kerastransfer.models import small_cnn
>>> from kerastransfer.optimizers import neon_optimizer
>>> model = small_cnn(filters=(4, 6), dense=16, num_classes=3)
>>> model.compile(neon_optimizer(["conv1"], keras.optimizers.SGD(0.01, name="new_layers")),
...               "sparse_categorical_crossentropy")
>>> x, y = np.random.rand(6, 28, 28, 1) * 255, np.arange(6) % 3
>>> h = model.fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateLogger()])
>>> sorted(k for k in h.history if k.startswith("lr/"))
['lr/imported_lr0', 'lr/new_layers']
"""

import keras
import numpy as np


def group_learning_rates(optimizer, iterations=None):
    """`{name: rate}` of each sub-optimizer of a `MultiOptimizer` (or `{"lr": rate}`).

    Schedules are evaluated at `iterations` (default: the optimizer's own step). Sub-optimizers
    with the same name get a `_1`, `_2`... suffix.
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
    lr = optimizer._learning_rate if hasattr(optimizer, "_learning_rate") else None
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        step = optimizer.iterations if iterations is None else iterations
        return float(np.asarray(keras.ops.convert_to_numpy(lr(step))))
    return float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate)))


class LearningRateLogger(keras.callbacks.Callback):
    """Logs each optimizer group's learning rate at the end of every epoch.

    Args:
        log_dir: a TensorBoard log folder; scalars go to `log_dir/train` as `lr/<group>`.
        prefix: the logs' key prefix (default "lr/").
    """

    def __init__(self, log_dir=None, prefix="lr/"):
        super().__init__()
        self.log_dir = log_dir
        self.prefix = prefix
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        rates = group_learning_rates(self.model.optimizer)
        if len(rates) == 1 and "lr" in rates:
            values = {self.prefix.rstrip("/"): rates["lr"]}
        else:
            values = {f"{self.prefix}{name}": rate for name, rate in rates.items()}
        if logs is not None:
            logs.update(values)
        if self.log_dir is not None:
            import tensorflow as tf

            if self._writer is None:
                self._writer = tf.summary.create_file_writer(f"{self.log_dir}/train")
            with self._writer.as_default():
                for key, value in values.items():
                    tf.summary.scalar(key, value, step=epoch)
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
