import os

import keras
import numpy as np
import pytest

from kerastransfer.callbacks.lr_finder import LRFinder, find_learning_rate
from kerastransfer.models import small_cnn
from kerastransfer.optimizers import neon_optimizer


def _data(n=64):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.normal(60, 20, (n, 28, 28, 1)) + 80 * y[:, None, None, None]  # learnable
    return x.astype("float32"), y


def _state(model):
    return (
        [v.numpy().copy() for v in model.weights],
        [v.numpy().copy() for v in model.optimizer.variables],
    )


def test_suggestion_lies_inside_the_sweep_and_the_model_is_unchanged(tmp_path):
    keras.utils.set_random_seed(0)
    model = small_cnn(filters=(4, 6), dense=16, num_classes=3)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy")
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # optimizer state exists
    weights, opt_state = _state(model)
    finder = find_learning_rate(
        model, (x, y), min_lr=1e-5, max_lr=10.0, steps=40, batch_size=16, plot=tmp_path / "lr.png"
    )
    lrs = finder.learning_rates
    assert 3 <= len(lrs) <= 40 and lrs == sorted(lrs)
    np.testing.assert_allclose(lrs[0], 1e-5)
    assert lrs[0] <= finder.suggestion() <= lrs[-1]
    assert len(finder.smoothed_losses) == len(lrs)
    after_weights, after_opt = _state(model)
    for a, b in zip(weights + opt_state, after_weights + after_opt):
        np.testing.assert_array_equal(a, b)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert os.path.getsize(tmp_path / "lr.png") > 1000


def test_stops_when_the_loss_diverges():
    keras.utils.set_random_seed(0)
    model = small_cnn(filters=(4, 6), dense=16, num_classes=3)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    finder = find_learning_rate(model, _data(), min_lr=1e-2, max_lr=1e6, steps=60, batch_size=8)
    assert len(finder.learning_rates) < 60  # stopped early
    assert finder.smoothed_losses[-1] > 4 * min(finder.smoothed_losses) or not np.isfinite(
        finder.smoothed_losses[-1]
    )


def test_with_a_per_layer_map_the_zero_group_stays_zero(mirrored):
    with mirrored.scope():
        model = small_cnn(filters=(4, 6), dense=16, num_classes=3)
        model.compile(
            neon_optimizer(["conv1", "bn1"], keras.optimizers.SGD(0.01)),
            "sparse_categorical_crossentropy",
        )
    x, y = _data(32)
    conv1 = model.get_layer("conv1").kernel.numpy().copy()
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(self.model.optimizer.learning_rates())

    finder = LRFinder(1e-4, 1e-1, steps=6)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[finder, Watch()])
    assert len(finder.learning_rates) == 6
    assert all(rates[0] == 0.0 for rates in seen)  # the imported group at lr 0 throughout
    np.testing.assert_allclose([rates[1] for rates in seen], finder.learning_rates, rtol=1e-5)
    assert model.optimizer.learning_rates() == pytest.approx([0.0, 0.01])
    np.testing.assert_array_equal(model.get_layer("conv1").kernel.numpy(), conv1)


def test_refuses_a_learning_rate_schedule():
    model = small_cnn(filters=(4, 6), dense=16, num_classes=3)
    decay = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
    model.compile(keras.optimizers.SGD(decay), "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="constant learning rate"):
        find_learning_rate(model, _data(16), steps=4, batch_size=8)


def test_rejects_bad_ranges():
    with pytest.raises(ValueError, match="min_lr < max_lr"):
        LRFinder(1.0, 0.1)
    with pytest.raises(ValueError, match="steps"):
        LRFinder(steps=1)
