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

SHUFFLE_BUFFER = 4096  # feature vectors held by the warm-up's shuffle


def _write(features, dataset, path):
    """Pooled `features(images)` and labels of a batched dataset, one record pair per batch."""
    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for x, y in dataset:
            writer.write(tf.io.serialize_tensor(features(x)).numpy())
            writer.write(tf.io.serialize_tensor(tf.cast(y, tf.int64)).numpy())
            count += int(tf.shape(y)[0])
    return count


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
        train_file, val_file = os.path.join(folder, "train"), os.path.join(folder, "val")
        features = tf.function(  # traced once for both splits (and once for a short batch)
            lambda x: tf.cast(body(x, training=False), tf.float32), reduce_retracing=True
        )
        n = _write(features, data.dataset("train", shuffle=True, seed=seed), train_file)
        n_val = _write(features, data.validation, val_file)
        train = _read(train_file, width, n).shuffle(min(n, SHUFFLE_BUFFER), seed=seed)
        # a first batch shorter than `batch_size` would split unevenly across replicas, which
        # Keras's first-batch build under a strategy cannot average (one batch of all, then)
        train = train.batch(min(batch_size, n)).prefetch(tf.data.AUTOTUNE)
        validation = _read(val_file, width, n_val).batch(batch_size).prefetch(tf.data.AUTOTUNE)
        head.compile(keras.optimizers.Adam(learning_rate), loss, metrics=["accuracy"])
        stop = keras.callbacks.EarlyStopping("val_loss", patience=10, restore_best_weights=True)
        history = head.fit(
            train, validation_data=validation, epochs=int(epochs), callbacks=[stop], verbose=0
        )
    return len(history.history["loss"])
