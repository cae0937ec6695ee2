import glob

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.callbacks.learning_rate_logger import LearningRateLogger, group_learning_rates
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


GROUPS = ["group0", "group1", "group2", "default"]


def _tags(log_dir):
    counts = {}
    for path in glob.glob(str(log_dir / "train" / "events*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                counts[value.tag] = counts.get(value.tag, 0) + 1
    return counts


def test_each_group_rate_in_history():
    opt = discriminative_optimizer([["conv1"], ["conv2"], ["fc1"]], 1e-4, 1e-2)
    model = _model(opt)
    # no Keras rate callback: without the logger History would hold no rate
    halve = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: setattr(opt, "learning_rate", 1e-2 * 0.5**epoch)
    )
    history = model.fit(
        *_data(), batch_size=8, epochs=3, verbose=0, callbacks=[halve, LearningRateLogger()]
    )
    h = history.history
    assert {f"learning_rate_{g}" for g in GROUPS} <= set(h)
    np.testing.assert_allclose(h["learning_rate_group0"], [1e-4, 5e-5, 2.5e-5], rtol=1e-5)
    np.testing.assert_allclose(h["learning_rate_group2"], [1e-2, 5e-3, 2.5e-3], rtol=1e-5)


@pytest.mark.parametrize("logger_first", [True, False])
def test_tensorboard_writes_each_rate_once(tmp_path, logger_first):
    model = _model(discriminative_optimizer([["conv1"], ["conv2"], ["fc1"]], 1e-4, 1e-2))
    callbacks = [LearningRateLogger(), keras.callbacks.TensorBoard(str(tmp_path))]
    history = model.fit(
        *_data(),
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=callbacks if logger_first else callbacks[::-1],
    )
    assert history.history["learning_rate_group1"] == pytest.approx([1e-3, 1e-3], rel=1e-5)
    rates = {tag: n for tag, n in _tags(tmp_path).items() if "rate" in tag or "lr" in tag}
    assert rates == {f"epoch_learning_rate_{g}": 2 for g in GROUPS}


def test_plain_optimizer_and_schedules():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    model = _model(keras.optimizers.SGD(schedule))
    history = model.fit(
        *_data(), batch_size=8, epochs=2, verbose=0, callbacks=[LearningRateLogger()]
    )
    # the schedule's rate after 2 and 4 steps
    assert history.history["learning_rate"] == pytest.approx([0.05, 0.025])
    assert group_learning_rates(model.optimizer) == {"lr": pytest.approx(0.025)}
    assert group_learning_rates(model.optimizer, iterations=0) == {"lr": pytest.approx(0.1)}


def test_under_mirrored_strategy(mirrored):
    with mirrored.scope():
        model = _model(discriminative_optimizer([["conv1"], ["fc1"]], 1e-3, 1e-2))
    history = model.fit(
        *_data(), batch_size=8, epochs=1, verbose=0, callbacks=[LearningRateLogger()]
    )
    assert history.history["learning_rate_group0"] == pytest.approx([1e-3])
