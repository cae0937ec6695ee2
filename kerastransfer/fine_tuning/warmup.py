"""The head's warm-up on frozen features, streamed from a temporary file.

The body runs once over the training and validation splits; their pooled features are written
to a TFRecord file batch by batch and read back every warm-up epoch (the training features
shuffled through a bounded buffer, written in a seeded shuffled order so the buffer is not fed
one class at a time). Memory holds a buffer of features, not the training set's: a warm-up of
hundreds of epochs costs one pass of the body, at any dataset size.
"""

import os
import tempfile

import keras
import tensorflow as tf

from kerastransfer.methods.feature_extraction import stream_features

SHUFFLE_BUFFER = 4096  # feature vectors held by the warm-up's shuffle


def _write(body, datasets, folder):
    """Pooled features (`stream_features`) and labels of each batched dataset into its own file
    in `folder`, one record pair per batch; returns the number of examples of each."""
    paths = {name: os.path.join(folder, name) for name in datasets}
    counts = dict.fromkeys(datasets, 0)
    writers = {name: tf.io.TFRecordWriter(path) for name, path in paths.items()}
    try:
        for name, features, labels in stream_features(body, datasets):
            writers[name].write(tf.io.serialize_tensor(features).numpy())
            writers[name].write(tf.io.serialize_tensor(tf.cast(labels, tf.int64)).numpy())
            counts[name] += int(tf.shape(labels)[0])
    finally:
        for writer in writers.values():
            writer.close()
    return paths, counts


def _read(path, width, count):
    def parse(features, labels):
        x = tf.ensure_shape(tf.io.parse_tensor(features, tf.float32), (None, width))
        y = tf.ensure_shape(tf.io.parse_tensor(labels, tf.int64), (None,))
        return tf.data.Dataset.from_tensor_slices((x, y))

    pairs = tf.data.TFRecordDataset(path).batch(2)
    return pairs.flat_map(lambda pair: parse(pair[0], pair[1])).apply(
        tf.data.experimental.assert_cardinality(count)
    )


def warm_up_head(body, head, data, *, epochs, learning_rate, batch_size, seed, loss):
    """Trains `head` on `body`'s frozen features of `data` (a `TransferData`) for at most
    `epochs` epochs, early stopping on the validation loss (patience 10, best weights kept).
    Returns the number of epochs run."""
    width = int(head.input_shape[-1])
    with tempfile.TemporaryDirectory(prefix="kerastransfer-warmup-") as folder:
        splits = {"train": data.dataset("train", shuffle=True, seed=seed), "val": data.validation}
        paths, counts = _write(body, splits, folder)
        n = counts["train"]
        train = _read(paths["train"], width, n).shuffle(min(n, SHUFFLE_BUFFER), seed=seed)
        # a first batch shorter than `batch_size` would split unevenly across replicas, which
        # Keras's first-batch build under a strategy cannot average (one batch of all, then)
        train = train.batch(min(batch_size, n)).prefetch(tf.data.AUTOTUNE)
        validation = _read(paths["val"], width, counts["val"]).batch(batch_size)
        validation = validation.prefetch(tf.data.AUTOTUNE)
        head.compile(keras.optimizers.Adam(learning_rate), loss, metrics=["accuracy"])
        stop = keras.callbacks.EarlyStopping("val_loss", patience=10, restore_best_weights=True)
        history = head.fit(
            train,
            validation_data=validation,
            epochs=int(epochs),
            callbacks=[stop],
            verbose=0,
            shuffle=False,  # `train` shuffles every epoch itself
        )
    return len(history.history["loss"])
