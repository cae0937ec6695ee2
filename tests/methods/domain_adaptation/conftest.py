"""Toy domains and classifiers shared by the domain adaptation tests (factories as fixtures)."""

import keras
import numpy as np
import pytest

from kerastransfer.data import load_dataset
from kerastransfer.methods.domain_adaptation import paired_dataset


def _image_classifier(seed=0, input_shape=(8, 8, 1)):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(3, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="tiny")


def _dense_classifier(hidden=8, classes=3, logits=False, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name="x")
    h = keras.layers.Dense(hidden, activation="tanh", name="hidden")(inputs)
    activation = None if logits else "softmax"
    outputs = keras.layers.Dense(classes, activation=activation, name="probabilities")(h)
    return keras.Model(inputs, outputs, name="tiny")


def _toy_domain(n, shift, seed, shape=(8, 8, 1)):
    """`(uint8 images, labels)`: 3 classes told apart by brightness; `shift` moves the domain."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype("int64")
    x = np.clip(rng.normal(80 + 40 * y[:, None, None, None] + shift, 30, (n, *shape)), 0, 255)
    return x.astype("uint8"), y


@pytest.fixture
def image_classifier():
    """`build(seed=0, input_shape=(8, 8, 1))`: a seeded conv classifier of 3 classes whose
    layers are `conv`, `flatten`, `hidden` and `probabilities` (softmax)."""
    return _image_classifier


@pytest.fixture
def dense_classifier():
    """`build(hidden=8, classes=3, logits=False, seed=0)`: a seeded MLP on 6 inputs with a
    `hidden` layer and a softmax (or logits) `probabilities` layer."""
    return _dense_classifier


@pytest.fixture
def toy_domain():
    """`make(n, shift, seed, shape=(8, 8, 1)) -> (images, labels)`."""
    return _toy_domain


@pytest.fixture
def weights_under_shuffled_target_labels(tmp_path):
    """`train(build_compiled) -> (weights, weights)`: the weights of two seeded 2-epoch fits of
    `build_compiled()` whose target sets differ only in the order of their labels; equal weights
    show no target label was read."""

    def train(build_compiled):
        x_s, y_s = _toy_domain(64, 0, 0)
        x_t, y_t = _toy_domain(64, 60, 1)
        trained = []
        for i, labels in enumerate((y_t, np.random.default_rng(9).permutation(y_t))):
            path = tmp_path / f"target{i}.npz"
            np.savez(path, x_train=x_t, y_train=labels, x_test=x_t[:8], y_test=labels[:8])
            target = load_dataset(str(path), validation_split=0)
            keras.utils.set_random_seed(0)  # tf.data shuffling reads the global seed too
            ds = paired_dataset((x_s, y_s), target, batch_size=32, drop_target_labels=True)
            model = build_compiled()
            model.fit(ds, epochs=2, verbose=0)
            trained.append([w.numpy().copy() for w in model.weights])
        return trained

    return train
