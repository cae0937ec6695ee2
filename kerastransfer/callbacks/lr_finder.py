"""`LRFinder`: the learning-rate range test, and `find_learning_rate` that runs it.

Smith (2017), "Cyclical Learning Rates for Training Neural Networks" (the range test), as fastai's
`lr_find` runs it: the learning rate grows exponentially from `min_lr` to `max_lr` over `steps`
batches,

    lr_i = min_lr * (max_lr / min_lr) ** (i / (steps - 1)),

the loss is smoothed by an exponential moving average with bias correction,

    s_i = beta * s_{i-1} + (1 - beta) * loss_i,    smoothed_i = s_i / (1 - beta ** (i + 1)),

and the test stops early once the smoothed loss exceeds `diverge` times its minimum (or is not
finite). Afterwards the model's weights and the optimizer's state and rates are restored: the
test leaves the model as it found it. The suggested rate is the one where the smoothed loss falls
fastest (steepest negative slope against log lr), taken before the minimum and always inside the
sweep. With a per-layer map (`ScaledMultiOptimizer`) the sweep sets the default group's rate and
the other groups keep their ratios to it (groups at rate 0 stay at 0).

Example:

>>> import numpy as np
>>> from kerastransfer.models import small_cnn
>>> model = small_cnn(filters=(4, 6), dense=16, num_classes=3)
>>> model.compile("sgd", "sparse_categorical_crossentropy")
>>> x, y = np.random.rand(64, 28, 28, 1) * 255, np.arange(64) % 3
>>> finder = find_learning_rate(model, (x, y), steps=8, batch_size=8)
>>> finder.learning_rates[0] <= finder.suggestion() <= finder.learning_rates[-1]
True
"""

import math

import keras
import numpy as np

from kerastransfer._extras import require
from kerastransfer.optimizers.rates import schedule_of


class LRFinder(keras.callbacks.Callback):
    """Sweeps the learning rate exponentially over `steps` batches and records the loss.

    Args:
        min_lr, max_lr: the sweep's first and last rates.
        steps: batches in the sweep (the fit must run at least this many, or it ends early).
        beta: smoothing of the loss (exponential moving average).
        diverge: stop once the smoothed loss exceeds `diverge` x its minimum.

    Attributes:
        learning_rates, losses, smoothed_losses: one entry per batch of the sweep.
    """

    def __init__(self, min_lr=1e-7, max_lr=1.0, steps=100, *, beta=0.98, diverge=4.0):
        super().__init__()
        if not 0 < min_lr < max_lr:
            raise ValueError(f"Need 0 < min_lr < max_lr. Received: {min_lr}, {max_lr}")
        if int(steps) < 2:
            raise ValueError(f"`steps` must be at least 2. Received: {steps}")
        if not 0 <= beta < 1:
            raise ValueError(f"`beta` must be in [0, 1). Received: {beta}")
        self.min_lr, self.max_lr, self.steps = float(min_lr), float(max_lr), int(steps)
        self.beta, self.diverge = float(beta), float(diverge)
        self.learning_rates, self.losses, self.smoothed_losses = [], [], []

    def _rate(self, i):
        return self.min_lr * (self.max_lr / self.min_lr) ** (i / (self.steps - 1))

    def on_train_begin(self, logs=None):
        opt = self.model.optimizer
        self._weights = [np.array(v) for v in self.model.weights]
        if not opt.built:
            opt.build(self.model.trainable_variables)
        self._opt_state = [np.array(v) for v in opt.variables]
        self._initial_lr = _get_rate(opt)
        self._avg, self._best, self._step = 0.0, math.inf, 0
        self.learning_rates, self.losses, self.smoothed_losses = [], [], []

    def on_train_batch_begin(self, batch, logs=None):
        _set_rate(self.model.optimizer, self._rate(self._step))

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", math.nan))
        # Keras logs the running mean of the epoch's loss; undo it to get this batch's loss.
        n = batch + 1
        batch_loss = loss * n - getattr(self, "_epoch_sum", 0.0) if n > 1 else loss
        self._epoch_sum = loss * n
        self.learning_rates.append(self._rate(self._step))
        self.losses.append(batch_loss)
        self._avg = self.beta * self._avg + (1 - self.beta) * batch_loss
        smoothed = self._avg / (1 - self.beta ** (self._step + 1))
        self.smoothed_losses.append(smoothed)
        self._step += 1
        if not math.isfinite(smoothed) or smoothed > self.diverge * self._best:
            self.model.stop_training = True
        self._best = min(self._best, smoothed)
        if self._step >= self.steps:
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_sum = 0.0

    def on_train_end(self, logs=None):
        for v, w in zip(self.model.weights, self._weights):
            v.assign(w)
        for v, w in zip(self.model.optimizer.variables, self._opt_state):
            v.assign(w)
        _set_rate(self.model.optimizer, self._initial_lr)

    def suggestion(self):
        """The rate of steepest descent of the smoothed loss before its minimum (in the sweep)."""
        lrs = np.asarray(self.learning_rates)
        losses = np.asarray(self.smoothed_losses)
        finite = np.isfinite(losses)
        if finite.sum() < 3:
            raise ValueError(
                "The sweep recorded fewer than 3 finite losses: run more steps (fit longer or "
                "on more batches) or lower `min_lr`."
            )
        lrs, losses = lrs[finite], losses[finite]
        stop = int(np.argmin(losses)) + 1
        if stop < 3:
            return float(lrs[0])
        slopes = np.gradient(losses[:stop], np.log(lrs[:stop]))
        return float(lrs[int(np.argmin(slopes))])

    def plot(self, path):
        """Save the loss (raw and smoothed) against the rate (log axis) to `path` (PNG)."""
        require("matplotlib", "LRFinder.plot").use("Agg")
        plt = require("matplotlib.pyplot", "LRFinder.plot")

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.learning_rates, self.losses, alpha=0.3, label="loss")
        ax.plot(self.learning_rates, self.smoothed_losses, label="smoothed loss")
        if len(self.learning_rates) >= 3:
            ax.axvline(self.suggestion(), color="k", ls="--", label="suggestion")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return path


def _get_rate(optimizer):
    return float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate)))


def _set_rate(optimizer, value):
    if schedule_of(getattr(optimizer, "inner_optimizer", optimizer)) is not None:
        raise ValueError(
            "LRFinder needs an optimizer with a constant learning rate, not a "
            "LearningRateSchedule: compile with a float rate for the test."
        )
    optimizer.learning_rate = value


def find_learning_rate(
    model,
    data,
    *,
    min_lr=1e-7,
    max_lr=1.0,
    steps=100,
    batch_size=None,
    plot=None,
    verbose=0,
    **kwargs,
):
    """Run the range test on a compiled `model` with `data` (a dataset or an `(x, y)` tuple).

    Repeats the data as needed to reach `steps` batches. Returns the `LRFinder` (its
    `suggestion()`, recorded rates and losses); `plot` saves the loss-rate figure there. The
    model's weights and optimizer state are unchanged afterwards.
    """
    finder = LRFinder(min_lr, max_lr, steps, **kwargs)
    if isinstance(data, tuple):
        import tensorflow as tf

        x, y = data
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size or 32)
    batches = int(data.cardinality())
    epochs = max(1, math.ceil(steps / batches)) if batches > 0 else 1
    model.fit(data, epochs=epochs, callbacks=[finder], verbose=verbose, shuffle=False)
    if plot:
        finder.plot(plot)
    return finder
