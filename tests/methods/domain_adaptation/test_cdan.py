"""CDANModel: the multilinear maps and CDAN+E loss by hand, training, no target labels, strategy,
reload in a fresh process, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.methods.domain_adaptation import AdaptationRamp, CDANModel, paired_dataset
from kerastransfer.optimizers import neon_optimizer


def compiled(model, optimizer=None):
    model.compile(optimizer or keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    return model


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def discriminate(model, h):
    """The domain classifier's logits in NumPy (Dense-ReLU ..., Dense), no dropout."""
    dense = [layer for layer in model.discriminator.layers if isinstance(layer, keras.layers.Dense)]
    for layer in dense[:-1]:
        h = np.maximum(h @ layer.kernel.numpy() + layer.bias.numpy(), 0)
    return h @ dense[-1].kernel.numpy() + dense[-1].bias.numpy()


def bce_with_logits(domain, z):
    return np.maximum(z, 0) - z * domain + np.log1p(np.exp(-np.abs(z)))


def cdan_e_weights(p, num_source):
    """1 + exp(-H(p)), scaled to average 1 within the source rows and within the target rows."""
    certainty = 1 + np.exp(np.sum(p * np.log(p), axis=1))
    s, t = certainty[:num_source], certainty[num_source:]
    return np.concatenate([s * len(s) / s.sum(), t * len(t) / t.sum()])


def batch(n=7, num_source=4, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 8)).astype("float32")
    logits = (2 * rng.normal(size=(n, 3))).astype("float32")
    domain = np.r_[np.ones(num_source), np.zeros(n - num_source)][:, None]
    return features, logits, domain


def test_multilinear_map_and_entropy_weights_match_numpy_and_features_get_reversed_gradient(
    dense_classifier,
):
    model = CDANModel(
        dense_classifier(),
        "hidden",
        reversal_scale=0.5,
        domain_loss_weight=2.0,
        discriminator_units=(5,),
        discriminator_dropout=0,
    )
    assert (model.randomized, model.conditioning_width) == (False, 24)
    f, logits, domain = batch()  # 4 source rows, 3 target rows: weights normalised per domain
    p = softmax(logits.astype("float64")).astype("float32")
    features = tf.Variable(f)
    with tf.GradientTape(persistent=True) as tape:
        loss = model.domain_loss([features], 4, training=True, predictions=p)
        # The same loss without the reversal (weights from NumPy, constants).
        plain_logits = model.discriminator(model.multilinear_map([features, p]))
        bce = keras.losses.binary_crossentropy(domain, plain_logits, from_logits=True)
        plain = 2.0 * tf.reduce_mean(bce * cdan_e_weights(p.astype("float64"), 4).astype("float32"))

    outer = (p[:, :, None] * f[:, None, :]).reshape(7, 24)  # entry c * d_f + k is g_c f_k
    np.testing.assert_allclose(model.multilinear_map([f, p]).numpy(), outer, rtol=1e-6)
    bce_np = bce_with_logits(domain, discriminate(model, outer))[:, 0]
    expected = 2.0 * np.mean(cdan_e_weights(p.astype("float64"), 4) * bce_np)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(plain) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(
        tape.gradient(loss, features).numpy(),
        -0.5 * tape.gradient(plain, features).numpy(),
        rtol=1e-5,
        atol=1e-7,
    )
    model.entropy_conditioning = False  # plain CDAN: every example weighs 1
    loss = model.domain_loss([f], 4, training=False, predictions=p)
    assert float(loss) == pytest.approx(2.0 * bce_np.mean(), rel=1e-5)
    assert float(model.domain_loss_tracker.result()) > 0


def test_randomized_map_matches_numpy_and_is_chosen_for_wide_features(dense_classifier):
    wide = dense_classifier(hidden=1400, logits=True)  # 1400 x 3 = 4200 > 4096
    model = CDANModel(
        wide, "hidden", randomized_dim=64, seed=1, discriminator_units=(4,), discriminator_dropout=0
    )
    assert (model.randomized, model.conditioning_width) == (True, 4200)
    r_f, r_g = (w.numpy() for w in model.multilinear_map.weights)
    assert r_f.shape == (1400, 64) and r_g.shape == (3, 64)
    assert abs(r_f.mean()) < 0.02 and abs(r_f.std() - 1) < 0.02  # N(0, 1)
    assert not model.multilinear_map.trainable_weights

    rng = np.random.default_rng(2)
    f = rng.normal(size=(6, 1400)).astype("float32")
    logits = (2 * rng.normal(size=(6, 3))).astype("float32")
    p = softmax(logits.astype("float64"))  # the classifier outputs logits: g = softmax
    mapped = (f @ r_f) * (p @ r_g) / np.sqrt(64)
    np.testing.assert_allclose(
        model.multilinear_map([f, p.astype("float32")]).numpy(), mapped, rtol=1e-4, atol=1e-4
    )
    domain = np.r_[np.ones(3), np.zeros(3)][:, None]
    bce = bce_with_logits(domain, discriminate(model, mapped))[:, 0]
    expected = np.mean(cdan_e_weights(p, 3) * bce)
    loss = model.adaptation_loss(logits, [f], 3, training=False)
    assert float(loss) == pytest.approx(expected, rel=1e-4)

    assert not CDANModel(dense_classifier(), "hidden", discriminator_units=(4,)).randomized
    forced = CDANModel(dense_classifier(), "hidden", randomized=True, randomized_dim=32)
    assert forced.randomized and forced.multilinear_map.output_dim == 32


def test_fit_moves_weights_logs_domain_and_mcc_losses_under_an_optimizer_map(
    image_classifier, toy_domain
):
    source, target = toy_domain(64, 0, 0), toy_domain(64, 60, 1)[0]
    model = CDANModel(
        image_classifier(),
        "hidden",
        reversal_scale=AdaptationRamp(4),
        discriminator_units=(16,),
        mcc_weight=1.0,
    )
    compiled(model, neon_optimizer(["conv"], keras.optimizers.SGD(0.05, momentum=0.9)))
    conv, hidden = (model.classifier.get_layer(n).kernel.numpy().copy() for n in ("conv", "hidden"))
    discriminator = [w.numpy().copy() for w in model.discriminator.weights]
    history = model.fit(paired_dataset(source, target, batch_size=32), epochs=2, verbose=0)
    assert {"loss", "domain_loss", "domain_accuracy", "mcc_loss"} <= set(history.history)
    assert all(np.isfinite(v).all() for v in history.history.values())
    np.testing.assert_array_equal(model.classifier.get_layer("conv").kernel.numpy(), conv)
    assert not np.array_equal(model.classifier.get_layer("hidden").kernel.numpy(), hidden)
    assert any(
        not np.array_equal(a, b.numpy()) for a, b in zip(discriminator, model.discriminator.weights)
    )


def test_shuffled_target_labels_give_identical_weights(
    weights_under_shuffled_target_labels, image_classifier
):
    first, second = weights_under_shuffled_target_labels(
        lambda: compiled(CDANModel(image_classifier(), "hidden", discriminator_units=(16,)))
    )
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


_RELOAD = """
import sys, numpy as np, keras
import kerastransfer.methods.domain_adaptation  # registers the classes
model = keras.saving.load_model(sys.argv[1])
x = np.load(sys.argv[2])
np.savez(sys.argv[3], predictions=model.predict(x, verbose=0),
         *[w.numpy() for w in model.multilinear_map.weights + model.discriminator.weights])
print(type(model).__name__, model.randomized, model.randomized_dim, model.seed,
      model.reversal_scale.total_steps, model.mcc_weight, model.entropy_conditioning)
"""


def test_trains_under_mirrored_strategy_and_reloads_in_a_fresh_process(
    mirrored, tmp_path, run_python, image_classifier, toy_domain
):
    source, target = toy_domain(64, 0, 0), toy_domain(64, 60, 1)[0]
    with mirrored.scope():
        model = CDANModel(
            image_classifier(),
            "hidden",
            reversal_scale=AdaptationRamp(8),
            randomized=True,
            randomized_dim=32,
            seed=3,
            discriminator_units=(16,),
            mcc_weight=0.5,
        )
        compiled(model)
    before = model.classifier.get_layer("hidden").kernel.numpy().copy()
    history = model.fit(paired_dataset(source, target, batch_size=16), epochs=2, verbose=0)
    assert np.isfinite(history.history["domain_loss"]).all()
    assert np.isfinite(history.history["mcc_loss"]).all()
    assert not np.array_equal(model.classifier.get_layer("hidden").kernel.numpy(), before)

    path = tmp_path / "cdan.keras"
    model.save(path)
    x = target[:5].astype("float32")
    np.save(tmp_path / "x.npy", x)
    result = run_python(_RELOAD, path, tmp_path / "x.npy", tmp_path / "out.npz")
    assert "CDANModel True 32 3 8 0.5 True" in result.stdout
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(
        out["predictions"], model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    saved = model.multilinear_map.weights + model.discriminator.weights
    for i, w in enumerate(saved):
        np.testing.assert_array_equal(out[f"arr_{i}"], w.numpy())


def test_bad_input_is_a_clear_error(dense_classifier):
    clf = dense_classifier()
    with pytest.raises(TypeError, match="one layer name"):
        CDANModel(clf, ["hidden"])
    with pytest.raises(ValueError, match="are not layers"):
        CDANModel(clf, "hiddn")
    with pytest.raises(ValueError, match="reversal_scale"):
        CDANModel(clf, "hidden", reversal_scale=-1)
    with pytest.raises(TypeError, match="`randomized` must be None, True or False"):
        CDANModel(clf, "hidden", randomized="yes")
    with pytest.raises(ValueError, match="`randomized_dim` must be >= 1"):
        CDANModel(clf, "hidden", randomized_dim=0)
    with pytest.raises(ValueError, match="discriminator_units"):
        CDANModel(clf, "hidden", discriminator_units=(0,))
    with pytest.raises(ValueError, match="pass `predictions=`"):
        CDANModel(clf, "hidden", discriminator_units=(4,)).domain_loss([np.zeros((2, 8))], 1)

    inputs = keras.Input((6,))
    sigmoid = keras.layers.Dense(3, activation="sigmoid", name="scores")(inputs)
    with pytest.raises(ValueError, match=r"must end in a softmax.*'scores' \(Dense, activation"):
        CDANModel(keras.Model(inputs, sigmoid), "scores")

    # 262144 features x 10 classes: the full map would need a 2,621,440 x 1024 first layer.
    inputs = keras.Input((262144,))
    wide = keras.layers.Reshape((512, 512), name="wide")(inputs)
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(wide)
    huge = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(pooled))
    with pytest.raises(ValueError) as e:
        CDANModel(huge, "wide", randomized=False)
    assert "262144 x 10 = 2,621,440 wide" in str(e.value)
    assert "2,684,354,560 weights (10.0 GiB" in str(e.value)
    assert "`randomized=True`" in str(e.value)
    with pytest.raises(ValueError, match=r"\(262144 \+ 10\) x 2048 = 536,891,392 random weights"):
        CDANModel(huge, "wide", randomized_dim=2048)
