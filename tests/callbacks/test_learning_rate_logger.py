import glob

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.callbacks.learning_rate_logger import LearningRateLogger
from kerastransfer.models import small_cnn
from kerastransfer.optimizers import discriminative_optimizer


def _data(n=16):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (n, 28, 28, 1)).astype("float32"), rng.integers(0, 3, n)


def _model(optimizer):
    keras.utils.set_random_seed(0)
    model = small_cnn(filters=(4, 6), dense=16, num_classes=3)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    return model


def test_each_group_rate_in_history_and_tensorboard(tmp_path):
    opt = discriminative_optimizer([["conv1"], ["conv2"], ["fc1"]], 1e-4, 1e-2)
    model = _model(opt)
    # the first epoch sets the best loss; every later one halves the rates
    halve = keras.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=1e9)
    history = model.fit(
        *_data(),
        batch_size=8,
        epochs=3,
        verbose=0,
        callbacks=[LearningRateLogger(log_dir=str(tmp_path)), halve],
    )
    h = history.history
    assert {"lr/group0", "lr/group1", "lr/group2", "lr/default"} <= set(h)
    np.testing.assert_allclose(h["lr/group0"], [1e-4, 1e-4, 5e-5], rtol=1e-5)
    np.testing.assert_allclose(h["lr/group2"], [1e-2, 1e-2, 5e-3], rtol=1e-5)
    tags = set()
    for path in glob.glob(str(tmp_path / "train" / "events*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {"lr/group0", "lr/group1", "lr/group2", "lr/default"} <= tags


def test_plain_optimizer_and_schedules():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    model = _model(keras.optimizers.SGD(schedule))
    history = model.fit(
        *_data(), batch_size=8, epochs=2, verbose=0, callbacks=[LearningRateLogger()]
    )
    # the schedule's rate after 2 and 4 steps
    assert history.history["lr"] == pytest.approx([0.05, 0.025])


def test_under_mirrored_strategy(mirrored):
    with mirrored.scope():
        model = _model(discriminative_optimizer([["conv1"], ["fc1"]], 1e-3, 1e-2))
    history = model.fit(
        *_data(), batch_size=8, epochs=1, verbose=0, callbacks=[LearningRateLogger()]
    )
    assert history.history["lr/group0"] == pytest.approx([1e-3])
