"""Where the examples of a split live, and how a pipeline reads some of them.

A `TransferData` split is a vector of *positions* into one of these; every split decision is
made on `labels` alone, and images are read only inside `tf.data` pipelines (or, for the few
examples a caller asks for, by `take`):

- `ArrayRecords`: images in one array, as an `.npz` or an embedded sample holds them (read once;
  pipelines gather each batch from it: no second copy);
- `FileRecords`: image files (paths and labels), decoded in the pipeline at the model's size;
- `TfdsRecords`: a prepared tensorflow-datasets split, read in record order with the builder's
  `as_dataset`, images left encoded until a selected example is decoded at the model's size.

`pipeline(positions, ...)` gives batches of `(float32 images of image_shape in [0, 255], int64
labels)`; `shuffle` is a seed (or None): positions are shuffled in full (an index costs bytes per
example), except for tensorflow-datasets, which streams in record order through a bounded buffer.
Pass e of a shuffled pipeline is ordered by `(seed, e)` alone (`epoch_order`).
"""

import numpy as np
import tensorflow as tf

from kerastransfer.data.convert import to_image_shape
from kerastransfer.data.epoch_order import shuffle_by_epoch, shuffled_indices
from kerastransfer.data.image_decoding import (
    check_readable,
    decode_to_shape,
    op_reason,
    unreadable_reason,
)

DEFAULT_FILE_SHAPE = (224, 224, 3)  # images of unknown size: the keras.applications default
TFDS_SHUFFLE_BUFFER = 1024  # encoded examples held by a tensorflow-datasets shuffle


def _order(positions, shuffle):
    positions = np.asarray(positions, np.int64)
    if shuffle is None:
        return tf.data.Dataset.from_tensor_slices(positions)
    positions = tf.constant(positions)
    return shuffled_indices(len(positions), shuffle).map(lambda i: tf.gather(positions, i))


def _take(records, positions, image_shape, resize):
    """The examples at `positions`, in that order, as `(images, labels)` arrays."""
    if len(positions) == 0:
        return np.zeros((0, *image_shape), np.float32), np.zeros(0, np.int64)
    x, y = next(iter(records.pipeline(positions, len(positions), image_shape, resize)))
    return x.numpy(), y.numpy()


class ArrayRecords:
    """Examples held as arrays: `images` (N, H, W, C) and integer `labels` (N,)."""

    def __init__(self, images, labels, rescale=None):
        self.images = images
        self.labels = np.asarray(labels, np.int64)
        self.rescale = rescale
        self.native_shape = tuple(int(d) for d in images.shape[1:])

    def describe(self, position):
        return f"image {position}"

    def pipeline(self, positions, batch_size, image_shape, resize, *, shuffle=None,
                 drop_remainder=False, with_labels=True, skipped=None):  # fmt: skip
        images, labels = self.images, tf.constant(self.labels)
        dtype = tf.as_dtype(images.dtype)

        @tf.autograph.experimental.do_not_convert
        def gather(p):
            x = tf.numpy_function(lambda i: images[i], [p], dtype, stateful=False)
            x = tf.ensure_shape(x, (batch_size if drop_remainder else None, *self.native_shape))
            x = tf.cast(x, tf.float32)
            if self.rescale is not None:
                x = x * np.float32(self.rescale)
            x = to_image_shape(x, image_shape, resize)
            return (x, tf.gather(labels, p)) if with_labels else x

        ds = _order(positions, shuffle).batch(batch_size, drop_remainder=drop_remainder)
        return ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE)

    def take(self, positions, image_shape, resize):
        return _take(self, positions, image_shape, resize)


class _EncodedRecords:
    """Records whose examples are encoded images, decoded one by one at the model's size."""

    def encoded(self, positions, read=True):
        """A dataset of `(contents, label, name)` for a dataset of positions."""
        raise NotImplementedError

    def pipeline(self, positions, batch_size, image_shape, resize, *, shuffle=None,
                 drop_remainder=False, with_labels=True, skipped=None):  # fmt: skip
        reads_itself = skipped is not None and isinstance(self, FileRecords)
        gray = self.native_shape[-1] == 1
        examples = self._ordered(positions, shuffle, read=not reads_itself)
        if skipped is None:  # checked and decoded a batch at a time: as fast as Keras's loader
            spec = tf.TensorSpec(image_shape, tf.float32)

            @tf.autograph.experimental.do_not_convert
            def decode(contents, labels, names):
                contents = check_readable(contents, names)
                x = tf.map_fn(
                    lambda one: decode_to_shape(one, image_shape, resize, gray),
                    contents,
                    fn_output_signature=spec,
                    parallel_iterations=8,
                )
                return (x, labels) if with_labels else x

            batches = examples.batch(batch_size, drop_remainder=drop_remainder)
            return batches.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        decoder = skipped.decoder(image_shape, resize, read=reads_itself, gray=gray)
        ds = examples.map(decoder, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.filter(lambda x, label, ok: ok)
        ds = ds.map(lambda x, label, ok: (x, label) if with_labels else x)
        return ds.batch(batch_size, drop_remainder=drop_remainder)

    def _ordered(self, positions, shuffle, read=True):
        return self.encoded(_order(positions, shuffle), read=read)

    def take(self, positions, image_shape, resize):
        return _take(self, positions, image_shape, resize)


class FileRecords(_EncodedRecords):
    """Examples as image files: `paths` (N,) and integer `labels` (N,). A file missing when the
    pipeline reads it stops it with TensorFlow's NotFoundError naming the path (or is skipped
    and recorded, with `skip_unreadable`)."""

    def __init__(self, paths, labels):
        self.paths = np.asarray(paths, dtype=str)
        self.labels = np.asarray(labels, np.int64)
        self.native_shape = DEFAULT_FILE_SHAPE

    def describe(self, position):
        return str(self.paths[position])

    def encoded(self, positions, read=True):
        """`(contents, label, path)`; with `read=False` the contents are left to the decoder
        (`SkippedFiles` reads them itself, so a vanished file is recorded, not fatal)."""
        paths, labels = tf.constant(self.paths), tf.constant(self.labels)

        @tf.autograph.experimental.do_not_convert
        def read_file(p):
            path = tf.gather(paths, p)
            return tf.io.read_file(path) if read else path, tf.gather(labels, p), path

        return positions.map(read_file, num_parallel_calls=tf.data.AUTOTUNE)


class TfdsRecords(_EncodedRecords):
    """Examples of a prepared tensorflow-datasets split, read in record order."""

    def __init__(self, builder, split, image_key, label_key, labels, native_shape):
        self.builder, self.split = builder, split
        self.image_key, self.label_key = image_key, label_key
        self.labels = np.asarray(labels, np.int64)
        self.native_shape = native_shape

    def describe(self, position):
        return f"{self.builder.name}[{self.split}] example {position}"

    def take(self, positions, image_shape, resize):
        positions = np.asarray(positions, np.int64)
        x, y = super().take(positions, image_shape, resize)  # read in record order
        order = np.argsort(np.argsort(positions, kind="stable"), kind="stable")
        return x[order], y[order]

    def _ordered(self, positions, shuffle, read=True):
        ds = self.encoded(np.sort(np.asarray(positions, np.int64)))
        if shuffle is not None:
            buffer = min(len(positions), TFDS_SHUFFLE_BUFFER)
            ds = shuffle_by_epoch(ds, buffer, shuffle)
        return ds

    def encoded(self, positions, read=True):
        import tensorflow_datasets as tfds

        keep = np.zeros(len(self.labels), bool)
        keep[np.asarray(positions, np.int64)] = True
        keep_count = keep.sum()  # the filter hides it (Keras trains unknown lengths otherwise)
        keep, name = tf.constant(keep), f"{self.builder.name}[{self.split}] example "
        labels = tf.constant(self.labels)  # relabelled by a class subset: not the records' own
        records = self.builder.as_dataset(
            split=self.split,
            shuffle_files=False,
            decoders={self.image_key: tfds.decode.SkipDecoding()},
        )

        @tf.autograph.experimental.do_not_convert
        def fields(i, example):
            name_i = tf.strings.join([name, tf.as_string(i)])
            return example[self.image_key], tf.gather(labels, i), name_i

        selected = records.enumerate().filter(lambda i, example: tf.gather(keep, i))
        selected = selected.apply(tf.data.experimental.assert_cardinality(int(keep_count)))
        return selected.map(fields, num_parallel_calls=tf.data.AUTOTUNE)


class SkippedFiles:
    """Unreadable files a `skip_unreadable` pipeline left out: `{name: reason}`, each once.

    Its decoder runs in Python (`tf.py_function`), so that a file the decoder itself rejects is
    recorded too, not only those the in-graph check catches.
    """

    def __init__(self):
        self.files = {}

    def decoder(self, image_shape, resize, read=False, gray=False):
        def safe(contents, name):
            name = name.numpy().decode()
            try:
                contents = tf.io.read_file(name) if read else contents
            except tf.errors.OpError as e:
                self.files.setdefault(name, f"cannot be read ({type(e).__name__})")
                return tf.zeros(image_shape, tf.float32), False
            reason = unreadable_reason(contents)
            if not reason:
                try:
                    x = decode_to_shape(contents, image_shape, resize, gray)
                    return x, True
                except tf.errors.OpError as e:
                    reason = op_reason(e)
            self.files.setdefault(name, reason)
            return tf.zeros(image_shape, tf.float32), False

        @tf.autograph.experimental.do_not_convert
        def decode(contents, label, name):
            x, ok = tf.py_function(safe, [contents, name], [tf.float32, tf.bool])
            x.set_shape(image_shape)
            ok.set_shape(())
            return x, label, ok

        return decode

    def __len__(self):
        return len(self.files)

    def __repr__(self):
        listed = "; ".join(f"{k} ({v})" for k, v in list(self.files.items())[:5])
        more = f"; and {len(self) - 5} more" if len(self) > 5 else ""
        return f"{len(self)} unreadable files skipped" + (f": {listed}{more}" if listed else "")
