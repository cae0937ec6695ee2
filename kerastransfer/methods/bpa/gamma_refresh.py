"""`GammaRefresh`: recomputes a `BPAModel`'s Gamma during `fit` and logs it.

Gamma is computed at the start of the first epoch of a run (before any fine-tuning step: run a
short warm-up of the new head with the body frozen first, so the confusion matrices mean
something) and then every `every` epochs, at the start of the epoch. Runs resumed by
`kerastransfer.callbacks.BackupAndRestore` keep the restored Gamma unless a refresh is due, so
they follow the same schedule as an uninterrupted run.

Every epoch's logs (hence `History`) receive, per split layer, the statistics of the Gamma used
during that epoch: `gamma/<layer>/min`, `.../mean`, `.../max` and `.../frozen` (filters with
Gamma below `frozen_threshold`). With `log_dir` (or `writer`), the same scalars and a histogram are
written to TensorBoard.

Cost and samples. A refresh costs about d forward passes of the layers above the split layer per
image. `samples_per_class` (or `max_batches`) computes Gamma on a fixed stratified sample instead
of the whole set (never the first batches, which hold only the first classes of a class-sorted
set). Gamma is a noisy statistic, though; measured on the recipe's setting (small_cnn, MNIST
primary, USPS head warm-up, split conv1, d=20, whole set 3000 images = 300 per class; largest
|Gamma_sample - Gamma_whole| over the 20 filters, mean and worst of 5 draws):

    per class      8            16           32           64           128
    paper      0.28 / 0.33  0.18 / 0.28  0.19 / 0.33  0.10 / 0.15  0.04 / 0.05
    agreement  0.21 / 0.26  0.18 / 0.26  0.10 / 0.15  0.10 / 0.18  0.04 / 0.06

No sample below the whole set stayed within 0.02 of the whole-set Gamma, so the default is the
whole set (`DEFAULT_SAMPLES_PER_CLASS = None`); pass `samples_per_class` to trade accuracy of
Gamma for time, or compute it on the (smaller) validation set, as the paper also reports.

Example:

>>> import numpy as np
>>> from kerastransfer.models import small_cnn
>>> from kerastransfer.methods.bpa import BPAModel
>>> model = BPAModel(small_cnn(filters=(4, 6), dense=16, num_classes=3))
>>> model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
>>> x, y = np.random.rand(12, 28, 28, 1) * 255, np.arange(12) % 3
>>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[GammaRefresh((x, y))])
>>> sorted(k for k in history.history if k.startswith("gamma/"))[:2]
['gamma/conv1/frozen', 'gamma/conv1/max']
"""

import keras
import numpy as np
import tensorflow as tf

from kerastransfer import input_checks
from kerastransfer.methods.bpa import filter_costs
from kerastransfer.methods.bpa.sampling import first_batch_size, stratified_sample

# Images per class Gamma is computed on by default (see `GammaRefresh`).
DEFAULT_SAMPLES_PER_CLASS = None


class GammaRefresh(keras.callbacks.Callback):
    """Recomputes Gamma of a `BPAModel` every `every` epochs and logs its statistics.

    Args:
        data: the labelled set Gamma is computed on: a batched `tf.data.Dataset` of `(x, y)`, an
            `(x, y)` tuple of arrays, or a `kerastransfer.data.TransferData`.
        every: epochs between refreshes (default 1: every epoch).
        subset: with a `TransferData`: `"train"` (default), `"validation"` or
            `"train+validation"` (the paper reports both training- and validation-set variants).
        samples_per_class: compute Gamma on a fixed stratified sample of the set: this many
            images of every class (all of a class that has fewer), drawn once, uniformly within
            each class, with `seed` (see `stratified_sample`). The refresh costs about d forward
            passes of the layers above the split layer per sample, so a sample is what keeps it
            cheap, at a price in accuracy of Gamma measured in the module docstring. Default
            `None`: the whole set (no smaller sample kept Gamma within 0.02 of it).
        max_batches: instead of `samples_per_class`, a sample of this many batches' worth of
            images (batch size of the set's first batch; 256 for arrays), balanced across the
            classes. Never the first batches: those hold only the first classes of a
            class-sorted set.
        seed: seed of the sample.
        frozen_threshold: Gamma below this counts as an effectively frozen filter.
        log_dir: a TensorBoard log directory for `tf.summary` scalars and histograms.
        writer: an existing `tf.summary` writer (instead of `log_dir`).
        verbose: 1 prints one line per refresh.
    """

    def __init__(
        self,
        data,
        every=1,
        *,
        subset="train",
        samples_per_class=DEFAULT_SAMPLES_PER_CLASS,
        max_batches=None,
        seed=0,
        frozen_threshold=1e-3,
        log_dir=None,
        writer=None,
        verbose=0,
    ):
        super().__init__()
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"`every` must be a positive integer. Received: every={every!r}")
        if log_dir is not None and writer is not None:
            raise ValueError("Pass `log_dir` or `writer`, not both.")
        if subset not in filter_costs.SUBSETS:
            raise ValueError(
                f"`subset` must be one of {filter_costs.SUBSETS}. Received: subset={subset!r}"
            )
        if max_batches is not None and (not isinstance(max_batches, int) or max_batches < 1):
            raise ValueError(
                f"`max_batches` must be None or a positive integer. Received: {max_batches!r}"
            )
        if samples_per_class is not None and (
            not isinstance(samples_per_class, int) or samples_per_class < 1
        ):
            raise ValueError(
                "`samples_per_class` must be None or a positive integer. Received: "
                f"{samples_per_class!r}"
            )
        if samples_per_class is not None and max_batches is not None:
            raise ValueError(
                "Pass `samples_per_class` or `max_batches`, not both. Received: "
                f"samples_per_class={samples_per_class}, max_batches={max_batches}"
            )
        filter_costs.labelled_set(data, subset)  # a subset of a set without splits: raise now
        self.data = data
        self.subset = subset
        self.samples_per_class = samples_per_class
        self.max_batches = max_batches
        self.seed = seed
        self._sample = None
        self.every = every
        self.frozen_threshold = float(frozen_threshold)
        self.log_dir = log_dir
        self.verbose = verbose
        self._writer = writer
        self.refresh_epochs = []  # epochs at whose start Gamma was computed in this run
        self._first_epoch = True

    def _check_model(self):
        if not hasattr(self.model, "compute_gamma") or not hasattr(self.model, "gamma"):
            raise ValueError(
                "GammaRefresh needs a `kerastransfer.methods.bpa.BPAModel`. Received: "
                f"{type(self.model).__name__}. Wrap your model: "
                "`BPAModel(model, split_layers=...)`."
            )

    def _check_data(self):
        """The set against the model, before the first step: images' shape, labels present and
        in range (arrays whole; a dataset by its element spec, its labels batch by batch as
        Gamma reads them)."""
        network = getattr(self.model, "network", None)
        if network is None:
            return
        classes = input_checks.output_classes(network)
        data = filter_costs.labelled_set(self.data, self.subset)
        if isinstance(data, tf.data.Dataset):
            filter_costs.as_dataset(data)  # labels present
            input_checks.check_dataset(network, data, "GammaRefresh's `data`", num_classes=classes)
        elif isinstance(data, (tuple, list)) and len(data) == 2:
            input_checks.check_fit_data(
                network,
                *data,
                num_classes=classes,
                what="The images of GammaRefresh's `data`",
                labels_what="The labels of GammaRefresh's `data`",
            )

    def on_train_begin(self, logs=None):
        self._check_model()
        self._check_data()
        self._first_epoch = True
        if self._writer is None and self.log_dir is not None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))

    def on_epoch_begin(self, epoch, logs=None):
        first, self._first_epoch = self._first_epoch, False
        # A fresh run computes Gamma before its first step; a resumed run (BackupAndRestore
        # restores Gamma in on_train_begin) keeps it unless the schedule says otherwise.
        if epoch % self.every == 0 or (first and self.model.gamma_refreshes == 0):
            self.model.compute_gamma(self.labelled_sample())
            self.refresh_epochs.append(epoch)
            if self.verbose:
                stats = self.statistics()
                print(
                    f"Epoch {epoch + 1}: Gamma refreshed ("
                    + ", ".join(
                        f"{n}: mean {stats[f'gamma/{n}/mean']:.3f}, "
                        f"frozen {stats[f'gamma/{n}/frozen']:.0f}"
                        for n in self.model.split_layers
                    )
                    + ")"
                )

    def labelled_sample(self):
        """The set Gamma is computed on: the stratified sample (drawn at the first call and kept),
        or the whole labelled set when `samples_per_class` and `max_batches` are None."""
        if self._sample is None:
            data = filter_costs.labelled_set(self.data, self.subset)
            if self.samples_per_class is None and self.max_batches is None:
                self._sample = filter_costs.as_dataset(data)
            else:
                # From a `TransferData` the sample is drawn on its labels: only the sample's
                # images are read (and the first batch, for its size).
                batch = first_batch_size(data)
                sample = dict(seed=self.seed, subset=self.subset)
                if self.max_batches is not None:
                    sample["total"] = self.max_batches * batch
                else:
                    sample["samples_per_class"] = self.samples_per_class
                x, y = stratified_sample(self.data, **sample)
                self._sample = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
        return self._sample

    def statistics(self):
        """Per-layer Gamma statistics, keyed as they appear in `logs`."""
        stats = {}
        for name, values in self.model.gamma.items():
            stats[f"gamma/{name}/min"] = float(np.min(values))
            stats[f"gamma/{name}/mean"] = float(np.mean(values))
            stats[f"gamma/{name}/max"] = float(np.max(values))
            stats[f"gamma/{name}/frozen"] = float(np.sum(values < self.frozen_threshold))
        return stats

    def on_epoch_end(self, epoch, logs=None):
        stats = self.statistics()
        if logs is not None:
            logs.update(stats)
        if self._writer is not None:
            with self._writer.as_default(step=epoch):
                for key, value in stats.items():
                    tf.summary.scalar(key, value)
                for name, values in self.model.gamma.items():
                    tf.summary.histogram(f"gamma/{name}", values)
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None and self.log_dir is not None:
            self._writer.close()
            self._writer = None
