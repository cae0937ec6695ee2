"""`TransferData`: the splits of one dataset, served as `tf.data` pipelines, and `DatasetInfo`."""

import dataclasses
import numbers

import tensorflow as tf

from kerastransfer.data.convert import check_image_shape, check_resize, to_image_shape


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
    """Train / validation / test splits of one dataset, served as `tf.data` pipelines.

    Attributes:
        info: a `DatasetInfo` (native image shape, classes after any subsetting).
        image_shape: the shape images are converted to (`info.image_shape` unless asked).
        train, validation, test: batched datasets of (images, labels); `validation` is None
            when `validation_split` is 0. `train` is shuffled every epoch.
    """

    def __init__(self, info, splits, *, image_shape, resize="resize", batch_size=64, seed=0):
        self.info = info
        self.image_shape = check_image_shape(image_shape)
        self.resize = check_resize(resize)
        self.batch_size = check_batch_size(batch_size)
        self.seed = seed
        empty = [name for name, (x, _) in splits.items() if len(x) == 0]
        if empty:
            raise ValueError(
                f"Splits {empty} of '{info.name}' are empty: there is nothing to train or "
                "evaluate on. Check `classes`, `samples_per_class` and the source's contents."
            )
        self._splits = splits

    def arrays(self, split):
        """The raw `(images, labels)` NumPy arrays of a split, images in their native shape."""
        if split not in self._splits:
            raise ValueError(f"Unknown split {split!r}. Expected one of {sorted(self._splits)}.")
        return self._splits[split]

    def dataset(self, split, *, shuffle=False, batch_size=None):
        """A batched, prefetched pipeline of one split, converted to `image_shape`."""
        x, y = self.arrays(split)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            ds = ds.shuffle(len(x), seed=self.seed, reshuffle_each_iteration=True)
        ds = ds.batch(self.batch_size if batch_size is None else check_batch_size(batch_size))
        convert = _Converter(self.image_shape, self.resize)
        return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    @property
    def train(self):
        return self.dataset("train", shuffle=True)

    @property
    def validation(self):
        return self.dataset("validation") if "validation" in self._splits else None

    @property
    def test(self):
        return self.dataset("test")

    def __repr__(self):
        sizes = ", ".join(f"{k}={len(v[1])}" for k, v in self._splits.items())
        return f"TransferData({self.info.name}, {self.info.num_classes} classes, {sizes})"


class _Converter:
    """Batch conversion to a model's input spec: channels (gray <-> RGB), then size."""

    def __init__(self, image_shape, resize):
        self.height, self.width, self.channels = image_shape
        self.resize = resize

    def __call__(self, x, y):
        return to_image_shape(x, (self.height, self.width, self.channels), self.resize), y
