"""Gumbel-softmax: hard one-hot samples with straight-through gradients in training, argmax at
inference, temperature checks and serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.methods.spottune import GumbelSoftmax, gumbel_softmax


def test_training_samples_are_one_hot_follow_the_logits_and_pass_gradients():
    logits = tf.constant(np.tile([[2.0, 0.0]], (4000, 1)), tf.float32)
    layer = GumbelSoftmax(temperature=5.0, seed=1)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        y = layer(logits, training=True)
        loss = tf.reduce_sum(y[:, 1] * tf.range(4000, dtype=tf.float32))
    values = y.numpy()
    assert set(np.unique(values)) == {0.0, 1.0} and np.all(values.sum(1) == 1.0)
    # P(first) = sigmoid(2) = 0.88 for Gumbel-max sampling, whatever the temperature.
    assert abs(values[:, 0].mean() - 1 / (1 + np.exp(-2.0))) < 0.03
    grad = tape.gradient(loss, logits).numpy()
    assert np.abs(grad).sum() > 0  # straight-through: the soft sample's gradient


def test_inference_is_deterministic_argmax():
    layer = GumbelSoftmax()
    logits = tf.constant([[0.1, 0.2], [3.0, -1.0]])
    a, b = layer(logits, training=False), layer(logits, training=False)
    np.testing.assert_array_equal(a, [[0, 1], [1, 0]])
    np.testing.assert_array_equal(a, b)


def test_soft_samples_and_temperature():
    logits = tf.zeros((3, 2))
    soft = gumbel_softmax(logits, temperature=100.0, hard=False, seed=0).numpy()
    assert np.all((soft > 0.4) & (soft < 0.6))  # high temperature: nearly uniform
    for bad in (0, -2, float("inf"), None):
        with pytest.raises(ValueError, match="`temperature` must be a finite number > 0"):
            GumbelSoftmax(temperature=bad)
        with pytest.raises(ValueError, match="`temperature`"):
            gumbel_softmax(logits, temperature=bad)


def test_config_round_trip():
    layer = GumbelSoftmax(temperature=2.5, hard=False, seed=3)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert (clone.temperature, clone.hard, clone.seed) == (2.5, False, 3)
