"""`TransferData`: the splits of one dataset, served as streaming `tf.data` pipelines, and
`DatasetInfo`."""

import dataclasses
import numbers

import numpy as np
import tensorflow as tf

from kerastransfer.data.augmentation import augment_dataset
from kerastransfer.data.convert import check_image_shape, check_resize
from kerastransfer.data.dataset_cache import DatasetCache
from kerastransfer.data.records import ArrayRecords, FileRecords, SkippedFiles


def check_batch_size(batch_size):
    """Raise a ValueError unless `batch_size` is a positive integer."""
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or batch_size < 1
    ):
        raise ValueError(f"`batch_size` must be a positive integer. Received: {batch_size!r}")
    return int(batch_size)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset holds: its name, classes, and the shape of its native images."""

    name: str
    num_classes: int
    class_names: tuple
    image_shape: tuple


class TransferData:
    """Train / validation / test splits of one dataset, served as streaming `tf.data` pipelines.

    A split is an index (positions into where the examples live: an array, image files, a
    tensorflow-datasets split) and its labels; images are read, decoded and converted to
    `image_shape` inside the pipeline, batch by batch, so memory does not grow with the dataset.

    Attributes:
        info: a `DatasetInfo` (native image shape, classes after any subsetting).
        image_shape: the shape images are converted to (`info.image_shape` unless asked).
        train, validation, test: batched datasets of (images, labels); `validation` is None
            when `validation_split` is 0. `train` is shuffled every epoch and augmented (if
            `augment` was given); the others never are.
        skipped: with `skip_unreadable`, the unreadable files left out so far (a
            `SkippedFiles`: `len()` and `.files`, path -> reason); else None.

    Args:
        info: a `DatasetInfo`.
        splits: `{name: (records, positions)}` as `load_dataset` builds them, or `{name: (images,
            labels)}` arrays.
        augment: a `keras.Sequential` of preprocessing layers (see
            `kerastransfer.data.augmentation`) applied to training batches, or None.
        cache: None, "memory", or a folder: decoded, converted examples are kept there after
            the first epoch (a folder holding another dataset's cache is refused).
        skip_unreadable: leave unreadable image files out (recorded in `skipped`) instead of
            stopping at the first.
    """

    def __init__(self, info, splits, *, image_shape, resize="resize", batch_size=64, seed=0,
                 augment=None, cache=None, skip_unreadable=False):  # fmt: skip
        self.info = info
        self.image_shape = check_image_shape(image_shape)
        self.resize = check_resize(resize)
        self.batch_size = check_batch_size(batch_size)
        self.seed = seed
        self.augment = augment
        self.skipped = SkippedFiles() if skip_unreadable else None
        self._splits = {name: _as_index(split) for name, split in splits.items()}
        empty = [name for name, (_, positions) in self._splits.items() if len(positions) == 0]
        if empty:
            raise ValueError(
                f"Splits {empty} of '{info.name}' are empty: there is nothing to train or "
                "evaluate on. Check `classes`, `samples_per_class` and the source's contents."
            )
        self._cache = None if cache is None else DatasetCache(cache, self)

    def _index(self, split):
        if split not in self._splits:
            raise ValueError(f"Unknown split {split!r}. Expected one of {sorted(self._splits)}.")
        return self._splits[split]

    @property
    def splits(self):
        """The names of the splits."""
        return tuple(self._splits)

    def file_paths(self, split):
        """The image files of a split, in its order, where it comes from files; else None."""
        records, positions = self._index(split)
        return records.paths[positions] if isinstance(records, FileRecords) else None

    def size(self, split):
        """The number of examples in a split."""
        return len(self._index(split)[1])

    def labels(self, split):
        """The labels of a split (int64, in the split's order), read from the index alone."""
        records, positions = self._index(split)
        return records.labels[positions]

    def take(self, split, indices):
        """`(images, labels)` arrays of the examples `indices` (0..size-1) of a split, converted
        to `image_shape`: only those examples are read."""
        records, positions = self._index(split)
        indices = np.asarray(indices, np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(positions)):
            raise ValueError(
                f"`indices` must lie in 0..{len(positions) - 1} (the {split!r} split). "
                f"Received: {indices.min()}..{indices.max()}"
            )
        try:
            return records.take(positions[indices], self.image_shape, self.resize)
        except tf.errors.OpError as e:
            from kerastransfer.data.read_errors import explain_read_error

            raise explain_read_error(e, self) or e from None

    def arrays(self, split):
        """The whole split as `(images, labels)` arrays at `image_shape`. This holds the split
        in memory: for small sets and inspection; the toolkit itself never calls it."""
        return self.take(split, np.arange(self.size(split)))

    def dataset(self, split, *, shuffle=False, batch_size=None, seed=None, drop_remainder=False,
                with_labels=True, augment=False, image_shape=None, resize=None):  # fmt: skip
        """A batched, prefetched pipeline of one split.

        Args:
            shuffle: reshuffle every epoch (seeded by `seed`, default the data's seed).
            with_labels: batches of `(images, labels)`, or of images alone.
            augment: apply the data's augmentation (the `train` pipeline does).
            image_shape, resize: convert to another shape than the data's.
        """
        records, positions = self._index(split)
        batch_size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        shape = self.image_shape if image_shape is None else check_image_shape(image_shape)
        resize = self.resize if resize is None else check_resize(resize)
        order = (self.seed if seed is None else seed) if shuffle else None
        if self._cache is not None and shape == self.image_shape and resize == self.resize:
            ds = self._cache.pipeline(split, batch_size, shuffle=order,
                                      drop_remainder=drop_remainder)  # fmt: skip
            if not with_labels:
                ds = ds.map(lambda x, y: x)
        else:
            ds = records.pipeline(positions, batch_size, shape, resize, shuffle=order,
                                  drop_remainder=drop_remainder, with_labels=with_labels,
                                  skipped=self.skipped)  # fmt: skip
        if augment and self.augment is not None:
            if not with_labels:
                raise ValueError("`augment=True` needs `with_labels=True`.")
            ds = augment_dataset(ds, self.augment)
        return ds.prefetch(tf.data.AUTOTUNE)

    @property
    def train(self):
        return self.dataset("train", shuffle=True, augment=True)

    @property
    def validation(self):
        return self.dataset("validation") if "validation" in self._splits else None

    @property
    def test(self):
        return self.dataset("test")

    @property
    def streams(self):
        """Whether examples are decoded from encoded images (files, tensorflow-datasets)."""
        return not isinstance(self._splits["train"][0], ArrayRecords)

    def describe(self, split, index):
        """Where example `index` of a split comes from (a file path, a record)."""
        records, positions = self._index(split)
        return records.describe(positions[index])

    def __repr__(self):
        sizes = ", ".join(f"{k}={len(p)}" for k, (_, p) in self._splits.items())
        return f"TransferData({self.info.name}, {self.info.num_classes} classes, {sizes})"


def _as_index(split):
    first, second = split
    if hasattr(first, "pipeline"):
        return first, np.asarray(second, np.int64)
    images = np.asarray(first)
    return ArrayRecords(images, second), np.arange(len(images), dtype=np.int64)
