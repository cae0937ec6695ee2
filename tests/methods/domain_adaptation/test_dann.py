"""DANNModel: reversed gradients into the features, training, strategy, saving, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.methods.domain_adaptation import AdaptationRamp, DANNModel


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x_s = rng.normal(size=(n, 6)).astype("float32")
    x_t = rng.normal(1.0, size=(n, 6)).astype("float32")
    y_s = (x_s[:, 0] > 0).astype("int64") + (x_s[:, 1] > 0).astype("int64")
    return x_s, x_t, y_s


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_features_get_minus_lambda_times_the_domain_gradient(scale, dense_classifier):
    model = DANNModel(dense_classifier(), "hidden", reversal_scale=scale, discriminator_dropout=0)
    x_s, x_t, _ = data(16)
    x = np.concatenate([x_s, x_t])
    hidden = model.classifier.get_layer("hidden")
    domain = np.concatenate([np.ones((16, 1)), np.zeros((16, 1))]).astype("float32")
    watched = [hidden.kernel, *model.discriminator.trainable_weights]
    with tf.GradientTape(persistent=True) as tape:
        features = hidden(x)
        reversed_loss = model.domain_loss([features], 16, training=True)
        plain_logits = model.discriminator(features, training=True)
        plain_loss = tf.reduce_mean(
            keras.losses.binary_crossentropy(domain, plain_logits, from_logits=True)
        )
    assert float(reversed_loss) == pytest.approx(float(plain_loss), rel=1e-6)
    rev, plain = tape.gradient(reversed_loss, watched), tape.gradient(plain_loss, watched)
    np.testing.assert_allclose(rev[0].numpy(), -scale * plain[0].numpy(), rtol=1e-5, atol=1e-7)
    for r, p in zip(rev[1:], plain[1:]):  # the domain classifier itself learns normally
        np.testing.assert_allclose(r.numpy(), p.numpy(), rtol=1e-6, atol=1e-8)


def test_fit_logs_domain_metrics_and_the_discriminator_learns(dense_classifier):
    x_s, x_t, y_s = data(128)
    model = DANNModel(dense_classifier(), "hidden", reversal_scale=0.0, discriminator_units=(16,))
    model.compile(
        keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    ds = tf.data.Dataset.from_tensor_slices(((x_s, x_t), y_s)).batch(32)
    history = model.fit(ds, epochs=15, verbose=0)
    assert {"domain_loss", "domain_accuracy", "accuracy", "loss"} <= set(history.history)
    # Without reversal the domains (shifted by 1 sd) become separable.
    assert history.history["domain_accuracy"][-1] > 0.75
    assert history.history["domain_loss"][-1] < history.history["domain_loss"][0]


def test_trains_under_mirrored_strategy_and_saves(mirrored, tmp_path, dense_classifier):
    x_s, x_t, y_s = data(64)
    with mirrored.scope():
        model = DANNModel(
            dense_classifier(),
            "hidden",
            reversal_scale=AdaptationRamp(8),
            discriminator_units=(16, 16),
        )
        model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    before = model.classifier.get_layer("hidden").kernel.numpy().copy()
    ds = tf.data.Dataset.from_tensor_slices(((x_s, x_t), y_s)).batch(16)
    history = model.fit(ds, epochs=2, verbose=0)
    assert np.isfinite(history.history["domain_loss"]).all()
    assert not np.array_equal(model.classifier.get_layer("hidden").kernel.numpy(), before)
    model.save(tmp_path / "dann.keras")
    again = keras.saving.load_model(tmp_path / "dann.keras")
    assert isinstance(again, DANNModel) and again.discriminator_units == (16, 16)
    assert again.reversal_scale.total_steps == 8
    for a, b in zip(again.discriminator.weights, model.discriminator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(
        again.predict(x_t, verbose=0), model.predict(x_t, verbose=0), rtol=1e-6
    )


def test_bad_input_is_a_clear_error(dense_classifier):
    clf = dense_classifier()
    with pytest.raises(TypeError, match="one layer name"):
        DANNModel(clf, ["hidden"])
    with pytest.raises(ValueError, match="are not layers"):
        DANNModel(clf, "hiddn")
    with pytest.raises(ValueError, match="reversal_scale"):
        DANNModel(clf, "hidden", reversal_scale=-1)
    with pytest.raises(ValueError, match="discriminator_units"):
        DANNModel(clf, "hidden", discriminator_units=(0,))
