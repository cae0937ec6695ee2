"""`GradualUnfreezing`: unfreeze one more level every `every` epochs, from the top down.

Howard and Ruder (2018), "Universal Language Model Fine-tuning for Text Classification": train
the last layer first, then unfreeze one more layer group each epoch, from the top down, so the
general features near the input change last and least.

Freeze the body first (`surgery.freeze_bottom_levels(model, n)`) and compile. At the start of
epoch `e` the callback makes sure that `e // every` of those frozen levels (counted from the top)
are trainable; when that changes it gives the model a fresh copy of the optimizer (a built
`keras.optimizers.MultiOptimizer` refuses a new set of variables; the compiled loss and metrics
are kept) and a new train function, and copies the optimizer state (iteration counts, momenta)
of every variable that was already training into the new optimizer, so those layers continue as
if nothing happened. The per-layer maps of `kerastransfer.optimizers` route the newly trainable
variables by their patterns. Works under `tf.distribute.MirroredStrategy` (the new optimizer is
built in the model's strategy scope; a full recompile would create the metrics' variables inside
the distributed train function, which the strategy refuses), with mixed precision (a
`mixed_float16` model gets a `keras.optimizers.LossScaleOptimizer`, as `compile` gives it), and
resumed runs (`initial_epoch`) get the schedule's state for their epoch.
With `kerastransfer.callbacks.BackupAndRestore`, pass its folder as `backup_dir` (and put this
callback first): a resumed run then unfreezes the levels of its last finished epoch before the
backup is loaded, so the optimizer state saved with them (momenta, iteration count) is restored
too; without it the optimizer's variables would not match the backup's.

Normalization layers (BatchNormalization, ...) of an unfrozen level stay frozen by default
(inference mode with the source statistics, the Keras fine-tuning guide's advice for small
target sets); `unfreeze_normalization=True` trains them too.

Example:

>>> import numpy as np
>>> from kerastransfer.models import small_cnn
>>> from kerastransfer.surgery import freeze_bottom_levels
>>> model = small_cnn(filters=(4, 6), dense=16, num_classes=3)
>>> frozen = freeze_bottom_levels(model, 3)
>>> model.compile("adam", "sparse_categorical_crossentropy")
>>> x, y = np.random.rand(6, 28, 28, 1) * 255, np.arange(6) % 3
>>> cb = GradualUnfreezing(every=1)
>>> h = model.fit(x, y, epochs=3, verbose=0, callbacks=[cb])
>>> h.history["trainable_levels"]
[1.0, 2.0, 3.0]
"""

import keras

from kerastransfer.callbacks.backup_and_restore import backed_up_epochs
from kerastransfer.surgery import NORMALIZATION_LAYERS, weighted_levels


class GradualUnfreezing(keras.callbacks.Callback):
    """Unfreezes the frozen levels of a model one at a time, top down, every `every` epochs.

    Args:
        every: epochs between two unfreezings (the first comes at epoch `every`).
        max_levels: unfreeze at most this many levels (default: all that were frozen).
        unfreeze_normalization: also make normalization layers trainable.
        optimizer_factory: `f(model) -> optimizer` for each unfreezing. Default: a copy of the
            current optimizer from its config (same class, groups, names and current rates).
        verbose: 1 prints a line whenever a level is unfrozen.
        backup_dir: the folder of the fit's `BackupAndRestore`, if any (see above).

    Each epoch's logs get `trainable_levels` (levels with a trainable weight) and
    `trainable_params`.
    """

    def __init__(
        self,
        every=1,
        *,
        max_levels=None,
        unfreeze_normalization=False,
        optimizer_factory=None,
        verbose=0,
        backup_dir=None,
    ):
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"`every` must be a positive number of epochs. Received: {every}")
        self.every = int(every)
        self.max_levels = max_levels
        self.unfreeze_normalization = unfreeze_normalization
        self.optimizer_factory = optimizer_factory
        self.verbose = verbose
        self.backup_dir = backup_dir
        self._frozen = None  # frozen levels at the start, top first
        self._done = 0

    def on_train_begin(self, logs=None):
        if self._frozen is None:  # else a second fit() continues the schedule
            levels = weighted_levels(self.model)
            frozen = [lv for lv in levels if not any(layer.trainable for layer in lv)]
            if not frozen:
                raise ValueError(
                    "GradualUnfreezing found no frozen level: freeze the body first "
                    "(kerastransfer.surgery.freeze_bottom_levels(model, n)) and compile."
                )
            self._frozen = list(reversed(frozen))
            if self.max_levels is not None:
                self._frozen = self._frozen[: int(self.max_levels)]
        finished = backed_up_epochs(self.backup_dir) if self.backup_dir else 0
        if finished:  # the trainable set the backup was saved with
            self._unfreeze_to((finished - 1) // self.every, finished - 1)

    def on_epoch_begin(self, epoch, logs=None):
        self._unfreeze_to(epoch // self.every, epoch)

    def _unfreeze_to(self, target, epoch):
        target = min(target, len(self._frozen))
        if target <= self._done:
            return
        for level in self._frozen[self._done : target]:
            for layer in level:
                if isinstance(layer, NORMALIZATION_LAYERS) and not self.unfreeze_normalization:
                    continue
                layer.trainable = True
            if self.verbose:
                print(f"GradualUnfreezing: epoch {epoch + 1}: unfroze {[ly.name for ly in level]}")
        self._done = target
        self._recompile()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            levels = weighted_levels(self.model)
            logs["trainable_levels"] = float(
                sum(
                    any(layer.trainable and layer.trainable_weights for layer in lv)
                    for lv in levels
                )
            )
            logs["trainable_params"] = float(
                sum(int(keras.ops.size(v)) for v in self.model.trainable_weights)
            )

    def _recompile(self):
        model = self.model
        old = model.optimizer
        with model.distribute_strategy.scope():
            if self.optimizer_factory is not None:
                new = keras.optimizers.get(self.optimizer_factory(model))
            else:
                new = old.__class__.from_config(old.get_config())
            loss_scale = keras.optimizers.LossScaleOptimizer
            if model.dtype_policy.name == "mixed_float16" and not isinstance(new, loss_scale):
                new = loss_scale(new, name="loss_scale_optimizer")  # as `compile` would
            new.build(model.trainable_variables)
            carry_optimizer_state(old, new)
        # Only the optimizer changes: the loss and metrics compiled (and built) before stay.
        model.optimizer = new
        model.make_train_function(force=True)


def carry_optimizer_state(old, new):
    """Copy every optimizer variable of `old` into the variable of `new` with the same path
    and shape (iterations, momenta of variables that were already training). Returns the count."""
    previous = {v.path: v for v in old.variables}
    copied = 0
    for v in new.variables:
        src = previous.get(v.path)
        if src is not None and tuple(src.shape) == tuple(v.shape):
            v.assign(src)
            copied += 1
    return copied
