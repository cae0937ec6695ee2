import keras
import numpy as np
import pytest

from kerastransfer.callbacks.gradual_unfreezing import GradualUnfreezing
from kerastransfer.models import small_cnn
from kerastransfer.optimizers import discriminative_optimizer
from kerastransfer.surgery import freeze_bottom_levels

LEVELS = ["conv1", "conv2", "fc1", "classifier"]  # small_cnn's levels, bottom first


def _data(n=32):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (n, 28, 28, 1)).astype("float32"), rng.integers(0, 3, n)


def _model():
    keras.utils.set_random_seed(0)
    model = small_cnn(filters=(4, 6), dense=16, num_classes=3)
    freeze_bottom_levels(model, 3)
    return model


class _Snapshots(keras.callbacks.Callback):
    """Trainable parameter count and every level's kernel, at the start of each epoch (after the
    unfreezing callback ran) and at the end of training."""

    def __init__(self):
        super().__init__()
        self.counts, self.kernels = [], []

    def _snap(self):
        self.kernels.append({n: self.model.get_layer(n).kernel.numpy().copy() for n in LEVELS})

    def on_epoch_begin(self, epoch, logs=None):
        self.counts.append(sum(int(np.prod(v.shape)) for v in self.model.trainable_weights))
        self._snap()

    def on_train_end(self, logs=None):
        self._snap()


def _moved(snaps, epoch, name):
    return not np.array_equal(snaps.kernels[epoch][name], snaps.kernels[epoch + 1][name])


def test_unfreezes_one_level_per_epoch_top_down_and_new_weights_start_moving():
    model = _model()
    model.compile(
        discriminative_optimizer(
            [["conv1", "bn1"], ["conv2", "bn2"], ["fc1"], ["classifier"]],
            1e-3,
            1e-2,
            keras.optimizers.Adam(),
            allow_frozen=True,
        ),
        "sparse_categorical_crossentropy",
    )
    x, y = _data()
    snaps = _Snapshots()
    history = model.fit(
        x, y, batch_size=8, epochs=4, verbose=0, callbacks=[GradualUnfreezing(every=1), snaps]
    )
    assert history.history["trainable_levels"] == [1.0, 2.0, 3.0, 4.0]
    classifier = 16 * 3 + 3
    fc1 = 6 * 7 * 7 * 16 + 16
    conv2 = 5 * 5 * 4 * 6 + 6
    conv1 = 5 * 5 * 1 * 4 + 4
    # BatchNormalization stays frozen (inference mode) by default
    assert snaps.counts == [
        classifier,
        classifier + fc1,
        classifier + fc1 + conv2,
        classifier + fc1 + conv2 + conv1,
    ]
    for epoch, level in enumerate(LEVELS[::-1]):
        # a level is still before its epoch and moves from the epoch it is unfrozen on
        for still in LEVELS[: 3 - epoch]:
            assert not _moved(snaps, epoch, still), (epoch, still)
        assert _moved(snaps, epoch, level), (epoch, level)
    assert not model.get_layer("bn1").trainable
    # optimizer state carried through three recompiles: 4 epochs x 4 steps
    assert int(model.optimizer.iterations) == 16
    rates = sorted(round(float(o.learning_rate), 6) for o in model.optimizer.optimizers)
    assert rates[0] == 0.001 and rates[-1] == 0.01  # the same map, rebuilt


def test_every_k_epochs_and_resume_at_a_later_epoch():
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _data(16)
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=5,
        verbose=0,
        callbacks=[GradualUnfreezing(every=2, max_levels=2)],
    )
    assert history.history["trainable_levels"] == [1.0, 1.0, 2.0, 2.0, 3.0]
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=4,
        initial_epoch=2,
        verbose=0,
        callbacks=[GradualUnfreezing(every=1)],
    )
    assert history.history["trainable_levels"] == [3.0, 4.0]  # the state of epochs 2 and 3


def test_needs_a_frozen_level():
    model = small_cnn(filters=(4, 6), dense=16, num_classes=3)
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="freeze_bottom_levels"):
        model.fit(*_data(8), epochs=1, verbose=0, callbacks=[GradualUnfreezing()])
    with pytest.raises(ValueError, match="`every`"):
        GradualUnfreezing(every=0)


def test_under_mirrored_strategy(mirrored):
    with mirrored.scope():
        model = _model()
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    x, y = _data()
    snaps = _Snapshots()
    history = model.fit(
        x, y, batch_size=8, epochs=2, verbose=0, callbacks=[GradualUnfreezing(every=1), snaps]
    )
    assert history.history["trainable_levels"] == [1.0, 2.0]
    assert not _moved(snaps, 0, "fc1") and _moved(snaps, 1, "fc1")
    assert int(model.optimizer.iterations.numpy()) == 8
