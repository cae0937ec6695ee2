"""Shuffles and augmentation that depend on the epoch, not on what ran before in the process.

`Dataset.shuffle(..., reshuffle_each_iteration=True)` draws the order of each pass from a seed
generator that lives in the process: the k-th pass has the k-th order. A run resumed after a kill
(`BackupAndRestore`) starts counting again, and trains its epoch e on the order of an earlier
epoch; a range test or a warm-up that read the set first shifts every epoch. Here each shuffled
pipeline orders pass number e by its seed and e alone:

- `shuffled_indices(n, seed)`: the indices 0..n-1, a full permutation per pass
  (`tf.random.experimental.index_shuffle`, stateless: no buffer, the same on every machine);
- `shuffle_by_epoch(dataset, buffer_size, seed)`: a buffered shuffle of a stream (a decoded cache,
  a tensorflow-datasets split), seeded by `(seed, e)`;
- `seed_augmentation_by_epoch(augmentation)`: the random preprocessing layers of an
  augmentation draw the batches of pass e from `(their seed, e)`.

Each pipeline counts its passes (a pass is counted when its first element is read, so the
iterator Keras makes ahead at the end of an epoch and never reads does not count).
`set_epoch(e)` sets every live pipeline's next pass to e: the `EpochSeeding` and
`BackupAndRestore` callbacks call it at the start of each epoch, so epoch e of `fit` has the
same batches in an uninterrupted run, a resumed one, and after any reading before `fit`.
"""

import threading
import weakref

import numpy as np
import tensorflow as tf

_COUNTERS = weakref.WeakSet()
_AUGMENTATIONS = weakref.WeakKeyDictionary()  # augmentation -> [(seed state, its seed)]
_LOCK = threading.Lock()
_GRAPH_SEED = 1729
_DRAWS_PER_EPOCH = 1 << 20  # room in a seed generator's counter for one pass's draws


class _PassCounter:
    """The number of the next pass of one pipeline (read by `tf.numpy_function`)."""

    def __init__(self):
        self.next = 0

    def __call__(self):
        with _LOCK:
            epoch, self.next = self.next, self.next + 1
        return np.int64(epoch)


def _passes():
    """A one-element dataset holding the number of the pass that reads it."""
    counter = _PassCounter()
    _COUNTERS.add(counter)

    # Declared stateless: a stateful op anywhere in a pipeline makes TensorFlow run its parallel
    # maps one at a time under op determinism. It runs once per pass all the same (tf.data does
    # not cache a map's results).
    @tf.autograph.experimental.do_not_convert
    def read(_):
        epoch = tf.numpy_function(lambda _: counter(), [_], tf.int64, stateful=False)
        return tf.ensure_shape(epoch, ())

    return tf.data.Dataset.range(1).map(read)


def _check(n, seed):
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, e.g. 0. Received: {seed!r}")
    if n < 1:
        raise ValueError(f"There must be at least one example to shuffle. Received: {n}")


def shuffled_indices(n, seed):
    """The dataset of the indices `0..n-1`, in a new order every pass, the order of pass e a
    function of `(seed, e)` only.

    >>> ds = shuffled_indices(5, seed=0)
    >>> first, second = [sorted(ds.as_numpy_iterator()) for _ in range(2)]
    >>> first == second == [0, 1, 2, 3, 4]
    True
    >>> set_epoch(0); a = list(ds.as_numpy_iterator())
    >>> set_epoch(0); a == list(ds.as_numpy_iterator())
    True
    """
    n = int(n)
    _check(n, seed)

    @tf.autograph.experimental.do_not_convert
    def one_pass(epoch):
        key = tf.stack([tf.constant(int(seed), tf.int64), epoch])
        return tf.data.Dataset.range(n).map(
            lambda i: tf.random.experimental.index_shuffle(i, key, n - 1)
        )

    ds = _passes().flat_map(one_pass)
    return ds.apply(tf.data.experimental.assert_cardinality(n))


def shuffle_by_epoch(dataset, buffer_size, seed):
    """`dataset.shuffle(buffer_size)`, pass e seeded by `(seed, e)` only.

    >>> ds = shuffle_by_epoch(tf.data.Dataset.range(6), 6, seed=1)
    >>> set_epoch(3); a = list(ds.as_numpy_iterator())
    >>> set_epoch(3); a == list(ds.as_numpy_iterator()), sorted(a) == list(range(6))
    (True, True)
    """
    _check(int(buffer_size), seed)
    cardinality = dataset.cardinality()

    @tf.autograph.experimental.do_not_convert
    def one_pass(epoch):
        # The shuffle's seeds are (graph seed, op seed). The graph seed of this function's own
        # graph is fixed here, so the order depends on `(seed, epoch)` alone, not on the global
        # seed when the pipeline was built (and a global seed of 0 with a tensor op seed is
        # refused by TensorFlow's seed check).
        tf.random.set_seed(_GRAPH_SEED)
        op_seed = tf.constant(int(seed) * 1_000_003, tf.int64) + epoch
        return dataset.shuffle(buffer_size, seed=op_seed, reshuffle_each_iteration=False)

    ds = _passes().flat_map(one_pass)
    if int(cardinality) >= 0:
        ds = ds.apply(tf.data.experimental.assert_cardinality(cardinality))
    return ds


def seed_augmentation_by_epoch(augmentation):
    """Makes `set_epoch(e)` reseed the random layers of `augmentation` (a Keras layer or
    model), so that pass e draws from `(each layer's seed, e)`. Returns `augmentation`."""
    states = [v for v in augmentation.variables if v.path.endswith("seed_generator_state")]
    _AUGMENTATIONS[augmentation] = [(v, int(v.numpy()[0])) for v in states]
    return augmentation


def set_epoch(epoch):
    """Sets the next pass of every live shuffled pipeline and seeded augmentation to `epoch`.

    Call it before an epoch's first batch is read (the `EpochSeeding` callback does).
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
        raise ValueError(f"`epoch` must be a non-negative integer. Received: {epoch!r}")
    with _LOCK:
        for counter in list(_COUNTERS):
            counter.next = int(epoch)
    for states in list(_AUGMENTATIONS.values()):
        for state, seed in states:
            state.assign(np.array([seed, int(epoch) * _DRAWS_PER_EPOCH]).astype(state.dtype))
