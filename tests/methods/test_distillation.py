"""Knowledge distillation: logits views, the combined soft + hard loss, saving, bad input."""

import keras
import numpy as np
import pytest

from kerastransfer.methods.distillation import (
    DenseLogits,
    build_distiller,
    logits_model,
    soft_targets,
)
from kerastransfer.methods.feature_extraction import linear_classifier
from kerastransfer.models import small_cnn


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def dense_classifier(weights, bias, name):
    inputs = keras.Input((weights.shape[0],))
    layer = keras.layers.Dense(weights.shape[1], activation="softmax", name="classifier")
    model = keras.Model(inputs, layer(inputs), name=name)
    layer.set_weights([weights, bias])
    return model


def images(n=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, size, size, 1)).astype("float32"), rng.integers(0, 4, n)


# --- logits views -----------------------------------------------------------------------------


def test_logits_view_matches_probabilities_and_shares_weights():
    model = small_cnn((16, 16, 1), 4, filters=(2, 3), dense=8)
    view = logits_model(model)
    x, _ = images()
    np.testing.assert_allclose(
        softmax(view.predict(x, verbose=0)), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    assert {id(v) for v in view.weights} == {id(v) for v in model.weights}
    assert view.layers[-1].name == "classifier_logits"
    # An update of the probability model shows in the view: they are one set of variables.
    model.get_layer("classifier").bias.assign(np.arange(4, dtype="float32"))
    np.testing.assert_allclose(np.asarray(view.layers[-1].layer.bias), np.arange(4))


def test_logits_view_of_softmax_layer_model_and_of_logits_model():
    model = linear_classifier(6, 3, loss="softmax")  # Dense "scores" -> Softmax "probabilities"
    view = logits_model(model)
    assert view.output.name == model.get_layer("scores").output.name
    svm = linear_classifier(6, 3, loss="hinge")  # already outputs scores
    assert logits_model(svm) is svm


def test_logits_view_rejects_non_softmax_outputs():
    inputs = keras.Input((4,))
    sigmoid = keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid", name="out")(inputs))
    with pytest.raises(ValueError, match="'out'.*not a softmax.*Dense\\(num_classes"):
        logits_model(sigmoid)
    with pytest.raises(ValueError, match="wraps a keras.layers.Dense"):
        DenseLogits(keras.layers.Softmax())


def test_soft_targets_follow_the_lecture_formula():
    logits = np.array([[2.0, -1.0, 0.5, 4.0], [0.0, 0.0, 1.0, -3.0]], "float32")
    p = softmax(logits)
    for t in (1.0, 2.0, 5.0):
        formula = p ** (1 / t) / (p ** (1 / t)).sum(-1, keepdims=True)
        got = keras.ops.convert_to_numpy(soft_targets(p, t))
        np.testing.assert_allclose(got, formula, rtol=1e-5)
        np.testing.assert_allclose(got, softmax(logits / t), rtol=1e-5)
    # A higher temperature raises the non-target probabilities.
    assert soft_targets(p, 5.0)[0, 1] > soft_targets(p, 1.0)[0, 1]


# --- the combined loss --------------------------------------------------------------------------


def test_distiller_loss_is_weighted_hard_plus_t2_soft_by_hand():
    rng = np.random.default_rng(1)
    wt, bt = rng.normal(size=(3, 4)).astype("float32") * 2, rng.normal(size=4).astype("float32")
    ws, bs = rng.normal(size=(3, 4)).astype("float32"), rng.normal(size=4).astype("float32")
    x = rng.normal(size=(5, 3)).astype("float32")
    y = np.array([0, 1, 2, 3, 1])
    temperature, a = 3.0, 0.3
    teacher, student = dense_classifier(wt, bt, "teacher"), dense_classifier(ws, bs, "student")
    distiller = build_distiller(teacher, student, temperature=temperature, student_loss_weight=a)
    loss = distiller.compute_loss(x=x, y=y, y_pred=distiller(x), training=False)

    zt, zs = x @ wt + bt, x @ ws + bs
    hard = np.mean(-np.log(softmax(zs)[np.arange(5), y]))
    pt, ps = softmax(zt / temperature), softmax(zs / temperature)
    soft = temperature**2 * np.mean(np.sum(pt * np.log(pt / ps), axis=-1))
    # The lecture writes the soft term as the cross-entropy H(y', y^'): KL + the teacher's entropy.
    cross_entropy = temperature**2 * np.mean(-np.sum(pt * np.log(ps), axis=-1))
    entropy = temperature**2 * np.mean(-np.sum(pt * np.log(pt), axis=-1))
    np.testing.assert_allclose(soft, cross_entropy - entropy, rtol=1e-5)
    assert soft > 0.05 and hard > 0.05  # both terms matter in this check
    np.testing.assert_allclose(float(loss), a * hard + (1 - a) * soft, rtol=1e-5)
    np.testing.assert_allclose(float(distiller.student_loss_tracker.result()), hard, rtol=1e-5)
    np.testing.assert_allclose(float(distiller.distillation_loss_tracker.result()), soft, rtol=1e-5)


def test_fitting_the_distiller_trains_the_student_model_not_the_teacher():
    teacher = small_cnn((16, 16, 1), 4, filters=(2, 3), dense=8, name="teacher")
    student = small_cnn((16, 16, 1), 4, filters=(1, 2), dense=4, name="student")
    t0, s0 = teacher.get_weights(), student.get_weights()
    x, y = images(16)
    distiller = build_distiller(teacher, student, temperature=2.0, student_loss_weight=0.5)
    history = distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert history.history["distillation_loss"][0] > 0
    assert all(np.array_equal(a, b) for a, b in zip(t0, teacher.get_weights()))
    changed = [not np.array_equal(a, b) for a, b in zip(s0, student.get_weights())]
    assert any(changed)
    np.testing.assert_allclose(
        distiller.predict(x, verbose=0),
        logits_model(student).predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_views_and_distiller_save_and_load_without_unsafe_mode(tmp_path):
    teacher = small_cnn((16, 16, 1), 4, filters=(2, 3), dense=8, name="teacher")
    student = small_cnn((16, 16, 1), 4, filters=(1, 2), dense=4, name="student")
    x, y = images()
    view = logits_model(student)
    view.save(tmp_path / "view.keras")
    loaded = keras.models.load_model(tmp_path / "view.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), view.predict(x, verbose=0), rtol=1e-5)
    assert isinstance(loaded.layers[-1], DenseLogits)

    distiller = build_distiller(teacher, student, temperature=5.0, student_loss_weight=0.2)
    distiller.fit(x, y, epochs=1, verbose=0)
    distiller.save(tmp_path / "distiller.keras")
    back = keras.models.load_model(tmp_path / "distiller.keras")
    assert back.distillation_losses[0].temperature == 5.0
    assert isinstance(back.distillation_losses[0].loss, keras.losses.KLDivergence)
    assert back.student_loss_weight == 0.2
    np.testing.assert_allclose(
        back.predict(x, verbose=0), distiller.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0, -1.0, "4", True, float("nan")])
def test_bad_temperature_is_a_clear_error(temperature):
    teacher = small_cnn((16, 16, 1), 4, filters=(2, 3), dense=8, name="teacher")
    student = small_cnn((16, 16, 1), 4, filters=(1, 2), dense=4, name="student")
    with pytest.raises(ValueError, match="`temperature` must be"):
        build_distiller(teacher, student, temperature=temperature)
    with pytest.raises(ValueError, match="`temperature` must be"):
        soft_targets([[0.5, 0.5]], temperature)


def test_mismatched_models_and_weights_are_clear_errors():
    teacher = small_cnn((16, 16, 1), 4, filters=(2, 3), dense=8, name="teacher")
    with pytest.raises(ValueError, match="predicts 4 classes but the student 3.*num_classes=4"):
        build_distiller(teacher, small_cnn((16, 16, 1), 3, filters=(1, 2), dense=4))
    with pytest.raises(ValueError, match=r"input_shape=\(16, 16, 1\)"):
        build_distiller(teacher, small_cnn((20, 20, 1), 4, filters=(1, 2), dense=4))
    with pytest.raises(ValueError, match="student_loss_weight.*\\[0, 1\\]"):
        build_distiller(
            teacher, small_cnn((16, 16, 1), 4, filters=(1, 2), dense=4), student_loss_weight=1.5
        )


def test_fit_names_labels_out_of_range_and_wrong_image_sizes_before_training():
    teacher = small_cnn((12, 12, 1), 3, filters=(2, 3), dense=4)
    distiller = build_distiller(teacher, small_cnn((12, 12, 1), 3, filters=(1, 2), dense=4))
    x = np.zeros((4, 12, 12, 1), "float32")
    with pytest.raises(ValueError, match=r"^`y` must be class ids in 0..2.*labels \[3\]"):
        distiller.fit(x, np.array([0, 1, 2, 3]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^`x` must be of shape \(12, 12, 1\)"):
        distiller.fit(np.zeros((4, 14, 14, 1), "float32"), np.zeros(4), epochs=1, verbose=0)
