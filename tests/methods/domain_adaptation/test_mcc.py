"""MCCModel and `mcc_weight`: the loss by hand, training, no target labels, strategy, reload in a
fresh process, MCC added to DAN / DANN, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.losses import minimum_class_confusion
from kerastransfer.methods.domain_adaptation import (
    AdaptationRamp,
    DANModel,
    DANNModel,
    MCCModel,
    paired_dataset,
)


def compiled(model):
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    return model


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def mcc_numpy(logits, temperature=2.5):
    """The formula of Jin et al. (2020), term by term, in float64."""
    y = softmax(np.asarray(logits, "float64") / temperature)
    batch, classes = y.shape
    certainty = 1 + np.exp(np.sum(y * np.log(y), axis=1))  # 1 + exp(-H)
    w = np.diag(batch * certainty / certainty.sum())
    c = y.T @ w @ y
    c = c / c.sum(axis=0, keepdims=True)  # C~_jj' = C_jj' / sum_i C_ij'
    return (c.sum() - np.trace(c)) / classes


@pytest.mark.parametrize("temperature", [2.5, 1.0])
def test_loss_matches_the_formula_from_logits_and_from_probabilities(temperature):
    logits = (3 * np.random.default_rng(0).normal(size=(6, 4))).astype("float32")
    expected = mcc_numpy(logits, temperature)
    assert 0 < expected < 1
    got = minimum_class_confusion(logits, temperature)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    probabilities = softmax(logits.astype("float64")).astype("float32")
    got = minimum_class_confusion(probabilities, temperature, from_logits=False)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = minimum_class_confusion(variable, temperature)
    gradient = tape.gradient(loss, variable).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0


def test_models_add_the_weighted_loss_of_the_target_half(dense_classifier):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 6)).astype("float32")  # 6 source rows, 4 target rows
    mcc = MCCModel(dense_classifier(classes=4, logits=True), mcc_weight=0.7, temperature=2.0)
    logits = mcc.classifier(x).numpy()
    loss = mcc.adaptation_loss(logits, [], 6)
    assert float(loss) == pytest.approx(0.7 * mcc_numpy(logits[6:], 2.0), rel=1e-5)
    assert float(mcc.mcc_tracker.result()) == pytest.approx(mcc_numpy(logits[6:], 2.0), rel=1e-5)

    # Any method takes `mcc_weight`: DANN's domain loss plus 0.5 x MCC of its target predictions.
    dann = DANNModel(dense_classifier(classes=4), "hidden", discriminator_dropout=0, mcc_weight=0.5)
    probabilities, hidden = dann.taps(x)  # the classifier's output and the tapped layer's
    probabilities = probabilities.numpy()
    domain = float(dann.domain_loss([hidden], 6))
    loss = dann.adaptation_loss(probabilities, [hidden], 6)
    expected = domain + 0.5 * mcc_numpy(np.log(probabilities[6:]))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    again = DANNModel.from_config(dann.get_config())
    assert (again.mcc_weight, again.temperature) == (0.5, 2.5)
    assert "mcc_weight" not in DANModel(dense_classifier(classes=4), "hidden").get_config()


def test_fit_moves_weights_and_logs_the_mcc_loss(image_classifier, toy_domain):
    source, target = toy_domain(64, 0, 0), toy_domain(64, 60, 1)[0]
    model = compiled(MCCModel(image_classifier(), mcc_weight=AdaptationRamp(4)))
    before = [w.numpy().copy() for w in model.classifier.weights]
    history = model.fit(paired_dataset(source, target, batch_size=32), epochs=2, verbose=0)
    assert sorted(history.history) == ["loss", "mcc_loss"]
    assert np.isfinite(history.history["loss"]).all()
    assert all(0 < v < 1 for v in history.history["mcc_loss"])
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(before, model.classifier.weights))

    dan = compiled(DANModel(image_classifier(), ["hidden"], mcc_weight=1.0))
    history = dan.fit(paired_dataset(source, target, batch_size=32), epochs=1, verbose=0)
    assert sorted(history.history) == ["loss", "mcc_loss", "mmd"]


def test_shuffled_target_labels_give_identical_weights(
    weights_under_shuffled_target_labels, image_classifier
):
    first, second = weights_under_shuffled_target_labels(
        lambda: compiled(MCCModel(image_classifier()))
    )
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


_RELOAD = """
import sys, numpy as np, keras
import kerastransfer.methods.domain_adaptation  # registers the classes
model = keras.saving.load_model(sys.argv[1])
x = np.load(sys.argv[2])
np.save(sys.argv[3], model.predict(x, verbose=0))
print(type(model).__name__, model.mcc_weight.total_steps, model.temperature, model.layer_names)
"""


def test_trains_under_mirrored_strategy_and_reloads_in_a_fresh_process(
    mirrored, tmp_path, run_python, image_classifier, toy_domain
):
    source, target = toy_domain(64, 0, 0), toy_domain(64, 60, 1)[0]
    with mirrored.scope():
        model = compiled(
            MCCModel(image_classifier(), mcc_weight=AdaptationRamp(8), temperature=3.0)
        )
    before = [w.numpy().copy() for w in model.classifier.weights]
    history = model.fit(paired_dataset(source, target, batch_size=16), epochs=2, verbose=0)
    assert np.isfinite(history.history["mcc_loss"]).all()
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(before, model.classifier.weights))

    path = tmp_path / "mcc.keras"
    model.save(path)
    x = target[:5].astype("float32")
    np.save(tmp_path / "x.npy", x)
    result = run_python(_RELOAD, path, tmp_path / "x.npy", tmp_path / "p.npy")
    assert "MCCModel 8 3.0 []" in result.stdout
    np.testing.assert_allclose(
        np.load(tmp_path / "p.npy"), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_bad_input_is_a_clear_error(dense_classifier):
    clf = dense_classifier(classes=4)
    for temperature in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="`temperature` must be a finite number > 0"):
            MCCModel(clf, temperature=temperature)
    with pytest.raises(TypeError, match="`temperature` must be a number > 0"):
        MCCModel(clf, temperature="warm")
    with pytest.raises(ValueError, match="`temperature` must be a finite number > 0"):
        minimum_class_confusion(np.zeros((2, 3)), temperature=0)
    with pytest.raises(ValueError, match="`mcc_weight` must be a finite number >= 0"):
        MCCModel(clf, mcc_weight=-1)
    with pytest.raises(TypeError, match="`mcc_weight` must be a number >= 0 or a schedule"):
        MCCModel(clf, mcc_weight=None)
    with pytest.raises(ValueError, match="`temperature` must be a finite number > 0"):
        DANNModel(clf, "hidden", mcc_weight=1.0, temperature=0)

    inputs = keras.Input((6,))
    sigmoid = keras.layers.Dense(3, activation="sigmoid", name="scores")(inputs)
    with pytest.raises(ValueError, match=r"must end in a softmax.*'scores' \(Dense, activation"):
        MCCModel(keras.Model(inputs, sigmoid))
    with pytest.raises(ValueError, match="must end in a softmax"):
        DANModel(keras.Model(inputs, sigmoid), "scores", mcc_weight=1.0)
