"""Pass e of a shuffled pipeline is ordered by (seed, e) alone."""

import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.data import set_epoch, shuffle_by_epoch, shuffled_indices


def _read(ds, epoch):
    set_epoch(epoch)
    return [int(i) for i in ds.as_numpy_iterator()]


PIPELINES = [
    lambda: shuffled_indices(50, 7),
    lambda: shuffle_by_epoch(tf.data.Dataset.range(50), 16, 7),
]


@pytest.mark.parametrize("make", PIPELINES)
def test_each_epoch_has_its_own_order_whatever_was_read_before(make):
    ds = make()
    assert int(ds.cardinality()) == 50  # fit keeps a known length
    first = _read(ds, 3)
    list(ds)  # another pass in between
    assert _read(ds, 3) == first and sorted(first) == list(range(50))
    assert _read(ds, 4) != first
    assert _read(make(), 3) == first  # a new pipeline (a new process) reads the same


def test_passes_without_set_epoch_count_on():
    ds = shuffled_indices(20, 0)
    set_epoch(0)
    passes = [list(ds.as_numpy_iterator()) for _ in range(3)]
    assert passes[0] == _read(ds, 0) and passes[1] == _read(ds, 1) and passes[2] == _read(ds, 2)


def test_the_order_does_not_depend_on_or_change_the_global_seed():
    orders = []
    for global_seed in (0, 5):
        tf.random.set_seed(global_seed)
        orders.append(_read(shuffle_by_epoch(tf.data.Dataset.range(30), 30, 1), 2))
        after = tf.random.uniform((3,)).numpy()
        tf.random.set_seed(global_seed)
        np.testing.assert_array_equal(after, tf.random.uniform((3,)).numpy())
    assert orders[0] == orders[1]


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="`seed` must be a non-negative integer"):
        shuffled_indices(4, -1)
    with pytest.raises(ValueError, match="at least one example"):
        shuffled_indices(0, 0)
    with pytest.raises(ValueError, match="`epoch` must be a non-negative integer"):
        set_epoch(1.5)
