"""paired_dataset: batch structure, no target labels, sizes, shapes and conversions."""

import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.data import load_dataset
from kerastransfer.methods.domain_adaptation import paired_dataset


def images(n, shape, value=0):
    return np.full((n, *shape), value, "uint8")


def test_batches_hold_source_images_target_images_and_source_labels_only():
    x_s, y_s = images(40, (8, 8, 1), 10), np.arange(40) % 3
    ds = paired_dataset((x_s, y_s), images(7, (8, 8, 1), 200), batch_size=5, seed=1)
    spec = ds.element_spec
    assert isinstance(spec[0], tuple) and len(spec[0]) == 2 and isinstance(spec[1], tf.TensorSpec)
    batches = list(ds)
    # One epoch = one pass over the source (8 batches); the 7 target images repeat.
    assert len(batches) == 8
    seen = np.concatenate([y.numpy() for _, y in batches])
    assert sorted(seen.tolist()) == sorted(y_s.tolist())
    for (xs, xt), _ in batches:
        assert xs.dtype == tf.float32 and float(tf.reduce_max(xs)) == 10
        assert float(tf.reduce_min(xt)) == 200 and xt.shape == (5, 8, 8, 1)


def test_drops_the_last_partial_source_batch():
    ds = paired_dataset(
        (images(23, (4, 4, 1)), np.zeros(23, "int64")), images(30, (4, 4, 1)), batch_size=10
    )
    assert [int(y.shape[0]) for _, y in ds] == [10, 10]


def test_reshuffles_each_epoch_deterministically():
    x_s, y_s = images(30, (2, 2, 1)), np.arange(30)
    ds = paired_dataset((x_s, y_s), images(30, (2, 2, 1)), batch_size=30, seed=4)
    epoch1, epoch2 = ([y.numpy() for _, y in ds][0] for _ in range(2))
    assert not np.array_equal(epoch1, epoch2)
    again = paired_dataset((x_s, y_s), images(30, (2, 2, 1)), batch_size=30, seed=4)
    np.testing.assert_array_equal([y.numpy() for _, y in again][0], epoch1)


def test_labelled_target_is_an_error_unless_labels_are_dropped():
    usps = load_dataset("embedded:usps", samples_per_class=5, validation_split=0)
    source = (images(50, (16, 16, 1)), np.zeros(50, "int64"))
    with pytest.raises(ValueError, match="drop_target_labels=True"):
        paired_dataset(source, usps, batch_size=10)
    with pytest.raises(ValueError, match="drop_target_labels=True"):
        paired_dataset(source, usps.take("train", range(usps.size("train"))), batch_size=10)
    ds = paired_dataset(source, usps, batch_size=10, drop_target_labels=True)
    assert len(tf.nest.flatten(ds.element_spec)) == 3
    with pytest.raises(ValueError, match="`target_data` carries labels"):
        paired_dataset(source_data=source, target_data=usps, batch_size=10)
    ds = paired_dataset(
        source_data=source, target_data=usps, batch_size=10, drop_target_labels=True
    )
    assert len(tf.nest.flatten(ds.element_spec)) == 3


def test_different_shapes_are_an_error_unless_a_conversion_is_asked():
    mnist = load_dataset("embedded:mnist", samples_per_class=5, validation_split=0)
    usps = load_dataset("embedded:usps", samples_per_class=5, validation_split=0)
    with pytest.raises(
        ValueError,
        match=r"Source images are \(28, 28, 1\) and target images "
        r"\(16, 16, 1\).*image_shape",
    ):
        paired_dataset(mnist, usps, drop_target_labels=True, batch_size=10)
    rgb = images(20, (28, 28, 3))
    with pytest.raises(ValueError, match="image_shape"):
        paired_dataset(mnist, rgb, batch_size=10)
    (xs, xt), _ = next(iter(paired_dataset(mnist, rgb, batch_size=10, image_shape=(32, 32, 1))))
    assert xs.shape == (10, 32, 32, 1) and xt.shape == (10, 32, 32, 1)
    (xs, xt), _ = next(
        iter(
            paired_dataset(
                mnist, usps, batch_size=10, image_shape=(28, 28, 1), drop_target_labels=True
            )
        )
    )
    assert xt.shape == (10, 28, 28, 1)


def test_bad_sizes_and_types_are_clear_errors():
    source = (images(8, (4, 4, 1)), np.zeros(8, "int64"))
    with pytest.raises(ValueError, match="fewer than one batch"):
        paired_dataset(source, images(3, (4, 4, 1)), batch_size=4)
    with pytest.raises(ValueError, match="at least 2"):
        paired_dataset(source, images(8, (4, 4, 1)), batch_size=1)
    with pytest.raises(ValueError, match="Source labels"):
        paired_dataset((images(8, (4, 4, 1)), np.zeros(7)), images(8, (4, 4, 1)), batch_size=4)
    with pytest.raises(TypeError, match="TransferData"):
        paired_dataset(images(8, (4, 4, 1)), images(8, (4, 4, 1)))


def test_a_transfer_data_gives_the_batches_of_its_arrays_epoch_after_epoch():
    # Each split is read batch by batch, never whole, yet the batches are those of the
    # arrays, bit for bit, the small target's reshuffles running on across epochs.
    mnist = load_dataset("embedded:mnist", samples_per_class=6, validation_split=0)
    usps = load_dataset("embedded:usps", samples_per_class=2, image_shape=(28, 28, 1))
    streamed = paired_dataset(mnist, usps, batch_size=8, drop_target_labels=True, seed=2)
    arrays = paired_dataset(
        mnist.take("train", range(mnist.size("train"))),
        usps.take("train", range(usps.size("train")))[0],
        batch_size=8,
        seed=2,
    )
    for _ in range(3):
        a, b = list(streamed), list(arrays)
        assert len(a) == len(b) == 60 // 8
        for ((xs, xt), y), ((xs2, xt2), y2) in zip(a, b):
            np.testing.assert_array_equal(xs.numpy(), xs2.numpy())
            np.testing.assert_array_equal(xt.numpy(), xt2.numpy())
            np.testing.assert_array_equal(y.numpy(), y2.numpy())


def test_domains_of_different_class_counts_are_refused():
    mnist = load_dataset("embedded:mnist", samples_per_class=5)
    five = load_dataset("embedded:usps", image_shape=(28, 28, 1), classes=[0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="has 10 classes and the target .* has 5: DAN, DANN"):
        paired_dataset(mnist, five, batch_size=8, drop_target_labels=True)
    same = load_dataset("embedded:usps", image_shape=(28, 28, 1), samples_per_class=5)
    assert paired_dataset(mnist, same, batch_size=8, drop_target_labels=True) is not None
