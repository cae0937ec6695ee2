"""`EpochSeeding`: epoch e of `fit` reads the batches of epoch e, whatever ran before."""

import keras

from kerastransfer.data.epoch_order import set_epoch


class EpochSeeding(keras.callbacks.Callback):
    """Sets the input order and augmentation of kerastransfer pipelines to the epoch's own at
    the start of every epoch (`kerastransfer.data.epoch_order.set_epoch`).

    A shuffled `TransferData` pipeline orders its passes by `(seed, pass number)`; with this
    callback the pass number is the epoch, so the batches of epoch e do not depend on how many
    times the set was read before (a learning-rate range test, a warm-up, an earlier `fit`) nor
    on whether the run was resumed. `kerastransfer.callbacks.BackupAndRestore` does the same;
    `fine_tune` and the recipes use both.

    >>> import kerastransfer
    >>> data = kerastransfer.load_dataset("embedded:mnist", samples_per_class=2, batch_size=4)
    >>> model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(10)])
    >>> model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> _ = model.fit(data.train, epochs=2, callbacks=[EpochSeeding()], verbose=0)
    """

    def on_epoch_begin(self, epoch, logs=None):
        set_epoch(epoch)
