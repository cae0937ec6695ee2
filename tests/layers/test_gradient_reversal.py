"""GradientReversal: exact identity forward, exact -lambda gradient, serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.layers import GradientReversal


@pytest.mark.parametrize("scale", [1.0, 0.37, 0.0, 3.0])
def test_identity_forward_and_exact_reversed_gradient(scale):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(5, 7)) * 1e3, tf.float32)
    upstream = tf.constant(rng.normal(size=(5, 7)), tf.float32)
    layer = GradientReversal(scale=scale)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * upstream)
    np.testing.assert_array_equal(y.numpy(), x.numpy())  # bit-identical
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), (-scale * upstream).numpy())


def test_call_time_scale_overrides_and_gets_no_gradient():
    x = tf.constant([[2.0, -1.0]])
    scale = tf.Variable(0.25)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = GradientReversal(scale=1.0)(x, scale=scale)
        loss = tf.reduce_sum(y)
    assert tape.gradient(loss, x).numpy().tolist() == [[-0.25, -0.25]]
    assert tape.gradient(loss, scale) is None


def test_flips_the_sign_of_a_dense_layers_gradient_exactly():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, name="hidden")
    head = keras.layers.Dense(1, name="head")
    plain = keras.Model(inputs, head(hidden(inputs)))
    reversed_ = keras.Model(inputs, head(GradientReversal()(hidden(inputs))))
    x = np.random.default_rng(1).normal(size=(6, 3)).astype("float32")

    def grads(model):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(x)))
        return tape.gradient(loss, [hidden.kernel, head.kernel])

    (g_hidden, g_head), (r_hidden, r_head) = grads(plain), grads(reversed_)
    np.testing.assert_array_equal(r_hidden.numpy(), -g_hidden.numpy())
    np.testing.assert_array_equal(r_head.numpy(), g_head.numpy())  # above the layer: unchanged


def test_follows_the_mixed_precision_policy():
    x = tf.constant([[1.5, -0.25]], tf.float16)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = GradientReversal(scale=2.0, dtype="mixed_float16")(x)
    assert y.dtype == tf.float16 and y.numpy().tolist() == [[1.5, -0.25]]
    assert tape.gradient(y, x).numpy().tolist() == [[-2.0, -2.0]]


def test_saves_and_reloads_in_a_keras_file_without_unsafe_mode(tmp_path):
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2)(GradientReversal(scale=0.5, name="grl")(inputs))
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "grl.keras")
    again = keras.saving.load_model(tmp_path / "grl.keras")
    assert isinstance(again.get_layer("grl"), GradientReversal)
    assert again.get_layer("grl").scale == 0.5
    x = np.ones((1, 3), "float32")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_negative_scale_is_an_error():
    with pytest.raises(ValueError, match="`scale` must be >= 0"):
        GradientReversal(scale=-1.0)
