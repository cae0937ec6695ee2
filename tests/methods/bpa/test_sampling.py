"""Nothing silent around Gamma: stratified samples, empty sets, subsets, NaN inputs and losses."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.methods.bpa import BPAModel, GammaRefresh, compute_gamma
from kerastransfer.methods.bpa.sampling import stratified_sample
from kerastransfer.models import small_cnn

C = 3


def tiny():
    keras.utils.set_random_seed(1)
    return small_cnn((12, 12, 1), C, filters=(4, 5), dense=8, dropout=0.0)


def class_sorted(n=60):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(C), n // C)  # like an image folder: class after class
    return rng.uniform(0, 255, (n, 12, 12, 1)).astype("float32"), y


def test_stratified_sample_is_balanced_for_arrays_and_datasets():
    x, y = class_sorted()
    xs, ys = stratified_sample((x, y), samples_per_class=5, seed=3)
    assert np.bincount(ys).tolist() == [5, 5, 5]
    assert all(np.any(np.all(x == s, axis=(1, 2, 3))) for s in xs)  # drawn from the set
    one_hot = tf.data.Dataset.from_tensor_slices((x, np.eye(C)[y])).batch(7)
    xd, yd = stratified_sample(one_hot, total=8, seed=3)
    assert np.bincount(yd.argmax(-1)).tolist() == [3, 3, 2] and yd.shape == (8, C)
    again = stratified_sample(one_hot, total=8, seed=3)[0]
    np.testing.assert_array_equal(again, xd)  # seeded
    assert not np.array_equal(stratified_sample(one_hot, total=8, seed=4)[0], xd)
    with pytest.raises(ValueError, match="exactly one"):
        stratified_sample((x, y))
    with pytest.raises(ValueError, match="empty"):
        stratified_sample(one_hot.take(0), samples_per_class=2)


def test_max_batches_samples_every_class_of_a_class_sorted_set():
    x, y = class_sorted()
    bpa = BPAModel(tiny(), gamma="agreement")
    bpa.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(10)
    bpa.fit(x, y, epochs=1, verbose=0, callbacks=[GammaRefresh(data, max_batches=2)])
    per_class = bpa.last_confusions["conv1"][0].sum(axis=1)
    assert per_class.tolist() == [7, 7, 6]  # the first 2 batches would be class 0 only
    refresh = GammaRefresh(data, samples_per_class=4)
    bpa.fit(x, y, epochs=1, verbose=0, callbacks=[refresh])
    assert bpa.last_confusions["conv1"][0].sum(axis=1).tolist() == [4, 4, 4]
    assert refresh.labelled_sample() is refresh.labelled_sample()  # drawn once
    with pytest.raises(ValueError, match="not both"):
        GammaRefresh(data, samples_per_class=4, max_batches=2)


def test_empty_set_raises_and_counts_no_refresh():
    x, y = class_sorted()
    bpa = BPAModel(tiny())
    empty = tf.data.Dataset.from_tensor_slices((x, y)).batch(10).take(0)
    with pytest.raises(ValueError, match="empty"):
        bpa.compute_gamma(empty)
    assert bpa.gamma_refreshes == 0
    with pytest.raises(ValueError, match="empty"):
        compute_gamma(tiny(), (x[:0], y[:0]))
    bpa.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="empty"):
        bpa.fit(x, y, epochs=1, verbose=0, callbacks=[GammaRefresh(empty, samples_per_class=None)])


def test_subset_needs_transfer_data():
    x, y = class_sorted()
    with pytest.raises(ValueError, match="subset='validation'.*no splits"):
        GammaRefresh((x, y), subset="validation")
    with pytest.raises(ValueError, match="no splits"):
        compute_gamma(tiny(), (x, y), subset="train+validation")
    with pytest.raises(ValueError, match="no splits"):
        BPAModel(tiny()).compute_gamma((x, y), subset="validation")


def test_non_finite_images_and_losses_raise():
    x, y = class_sorted(12)
    bad = x.copy()
    bad[3, 0, 0, 0] = np.nan
    bpa = BPAModel(tiny())
    with pytest.raises(ValueError, match="non-finite images"):
        bpa.compute_gamma((bad, y))
    assert bpa.gamma_refreshes == 0
    bpa.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    before = [v.numpy() for v in bpa.network.weights]
    with pytest.raises(ValueError, match="`x` must be finite.* samples .first: .3.."):
        bpa.fit(bad, y, batch_size=12, epochs=1, verbose=0)  # arrays: checked before fit
    ds = tf.data.Dataset.from_tensor_slices((bad, y)).batch(12)
    with pytest.raises(Exception, match="images or the training loss is NaN or infinite"):
        bpa.fit(ds, epochs=1, verbose=0)  # a dataset: found by the step
    for old, v in zip(before, bpa.network.weights):
        np.testing.assert_array_equal(v.numpy(), old)  # no step was applied


def test_a_transfer_data_sample_reads_only_its_images_and_equals_the_pipelines():
    from kerastransfer.data import load_dataset

    data = load_dataset("embedded:usps", samples_per_class=20, validation_split=0.2)
    read = []
    take = data.take
    data.take = lambda split, indices: read.append(len(indices)) or take(split, indices)
    for subset in ("train", "validation", "train+validation"):
        for size in (dict(samples_per_class=3), dict(total=25), dict(samples_per_class=500)):
            read.clear()
            x, y = stratified_sample(data, subset=subset, seed=2, **size)
            assert sum(read) == len(y)  # the sample's images, nothing more
            streamed = data.dataset("train") if subset == "train" else data.validation
            if subset == "train+validation":
                streamed = data.dataset("train").concatenate(data.validation)
            xs, ys = stratified_sample(streamed, seed=2, **size)
            np.testing.assert_array_equal(x, xs)
            np.testing.assert_array_equal(y, ys)
    with pytest.raises(ValueError, match="subset"):
        stratified_sample(class_sorted(), samples_per_class=2, subset="validation")
