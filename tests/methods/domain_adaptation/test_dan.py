"""DANModel: training, target labels never read, optimizer maps, callbacks, strategy, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.losses import MultiKernelMMD
from kerastransfer.methods.domain_adaptation import AdaptationRamp, DANModel, paired_dataset
from kerastransfer.optimizers import neon_optimizer


def compiled(model, optimizer=None):
    model.compile(
        optimizer or keras.optimizers.SGD(0.05, momentum=0.9),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def weights(model):
    return [w.numpy().copy() for w in model.classifier.weights]


def test_fit_moves_weights_logs_mmd_and_adaptation_lowers_the_gap(image_classifier, toy_domain):
    source, target = toy_domain(96, 0, 0), toy_domain(96, 60, 1)[0]
    gaps = {}
    for weight in (0.0, 10.0):
        model = compiled(DANModel(image_classifier(), ["hidden"], domain_loss_weight=weight))
        before = weights(model)
        ds = paired_dataset(source, target, batch_size=32, seed=0)
        history = model.fit(ds, epochs=6, verbose=0)
        gaps[weight] = history.history["mmd"][-1]
        assert all(np.isfinite(history.history["loss"]))
        assert any(not np.array_equal(a, b) for a, b in zip(before, weights(model)))
    assert gaps[10.0] < 0.5 * gaps[0.0], gaps


def test_zero_weight_trains_exactly_like_the_source_only_classifier(image_classifier, toy_domain):
    source, target = toy_domain(64, 0, 0), toy_domain(64, 60, 1)[0]
    ds = paired_dataset(source, target, batch_size=32, shuffle=False)
    dan = compiled(DANModel(image_classifier(seed=3), ["hidden"], domain_loss_weight=0.0))
    dan.fit(ds, epochs=2, verbose=0)
    plain = compiled(image_classifier(seed=3))
    plain.fit(ds.map(lambda x, y: (x[0], y)), epochs=2, verbose=0)
    for a, b in zip(dan.classifier.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_shuffled_target_labels_give_identical_weights(
    weights_under_shuffled_target_labels, image_classifier
):
    first, second = weights_under_shuffled_target_labels(
        lambda: compiled(DANModel(image_classifier(), ["hidden", "probabilities"]))
    )
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_target_labels_in_a_batch_are_refused(image_classifier, toy_domain):
    (x_s, y_s), (x_t, y_t) = toy_domain(8, 0, 0), toy_domain(8, 60, 1)
    model = compiled(DANModel(image_classifier(), ["hidden"]))
    with pytest.raises(ValueError, match="source labels alone"):
        model.fit((x_s, x_t), (y_s, y_t), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="images only"):
        model((x_s.astype("float32"), (x_t.astype("float32"), y_t)))


def test_neon_optimizer_map_keeps_the_backbone_bit_identical_under_a_ramp(
    image_classifier, toy_domain
):
    source, target = toy_domain(64, 0, 0), toy_domain(64, 60, 1)[0]
    model = DANModel(image_classifier(), ["hidden"], domain_loss_weight=AdaptationRamp(4))
    compiled(model, neon_optimizer(["conv"], keras.optimizers.SGD(0.05, momentum=0.9)))
    conv, head = (
        model.classifier.get_layer(n).kernel.numpy().copy() for n in ("conv", "probabilities")
    )
    model.fit(paired_dataset(source, target, batch_size=32), epochs=2, verbose=0)
    np.testing.assert_array_equal(model.classifier.get_layer("conv").kernel.numpy(), conv)
    assert not np.array_equal(model.classifier.get_layer("probabilities").kernel.numpy(), head)
    assert int(model.optimizer.iterations) == 4
    assert float(model.scheduled(model.domain_loss_weight)) == pytest.approx(1.0, abs=1e-4)


def test_callbacks_see_the_mmd_and_drive_the_learning_rate(image_classifier, toy_domain):
    source, target = toy_domain(64, 0, 0), toy_domain(64, 60, 1)[0]
    model = compiled(DANModel(image_classifier(), ["hidden"]), keras.optimizers.SGD(0.1))
    seen = []
    callbacks = [
        keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1)),
        keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(logs["mmd"])),
    ]
    model.fit(
        paired_dataset(source, target, batch_size=32), epochs=3, verbose=0, callbacks=callbacks
    )
    assert len(seen) == 3 and all(np.isfinite(seen))
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1 / 3)


def test_trains_under_mirrored_strategy(mirrored, image_classifier, toy_domain):
    source, target = toy_domain(64, 0, 0), toy_domain(64, 60, 1)[0]
    with mirrored.scope():
        model = compiled(DANModel(image_classifier(), ["hidden"], domain_loss_weight=1.0))
    before = weights(model)
    history = model.fit(paired_dataset(source, target, batch_size=16), epochs=2, verbose=0)
    assert np.isfinite(history.history["mmd"]).all() and history.history["mmd"][-1] > 0
    assert any(not np.array_equal(a, b) for a, b in zip(before, weights(model)))


def test_mixed_precision_trains_with_float32_mmd(image_classifier, toy_domain):
    source, target = toy_domain(32, 0, 0), toy_domain(32, 60, 1)[0]
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = compiled(DANModel(image_classifier(), ["hidden"]))
        history = model.fit(paired_dataset(source, target, batch_size=16), epochs=1, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.classifier.get_layer("hidden").compute_dtype == "float16"
    assert np.isfinite(history.history["loss"]).all() and np.isfinite(history.history["mmd"]).all()


_RELOAD = """
import sys, numpy as np, keras
import kerastransfer.methods.domain_adaptation  # registers the classes
model = keras.saving.load_model(sys.argv[1])
x = np.load(sys.argv[2])
np.save(sys.argv[3], model.predict(x, verbose=0))
print(type(model).__name__, model.mmd.estimate, model.domain_loss_weight.total_steps,
      model.layer_names)
"""


def test_saves_and_reloads_in_a_fresh_process_without_unsafe_mode(
    tmp_path, run_python, image_classifier, toy_domain
):
    source, target = toy_domain(64, 0, 0), toy_domain(64, 60, 1)[0]
    model = compiled(
        DANModel(
            image_classifier(),
            ["conv", "hidden"],
            domain_loss_weight=AdaptationRamp(8, maximum=2.0),
            mmd=MultiKernelMMD(estimate="linear"),
        )
    )
    model.fit(paired_dataset(source, target, batch_size=32), epochs=1, verbose=0)
    path = tmp_path / "dan.keras"
    model.save(path)
    x = target[:5].astype("float32")
    np.save(tmp_path / "x.npy", x)
    result = run_python(_RELOAD, path, tmp_path / "x.npy", tmp_path / "p.npy")
    assert "DANModel linear 8 ['conv', 'hidden']" in result.stdout
    np.testing.assert_allclose(
        np.load(tmp_path / "p.npy"), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    # In process too: training resumes from the reloaded optimizer state.
    again = keras.saving.load_model(path)
    assert int(again.optimizer.iterations) == 2
    again.fit(paired_dataset(source, target, batch_size=32), epochs=1, verbose=0)
    assert int(again.optimizer.iterations) == 4


def test_bad_input_is_a_clear_error(image_classifier):
    clf = image_classifier()
    with pytest.raises(ValueError, match=r"\['nope'\] are not layers"):
        DANModel(clf, ["hidden", "nope"])
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        DANModel(clf, "hidden", domain_loss_weight=-0.1)
    with pytest.raises(TypeError, match="no lambdas"):
        DANModel(clf, "hidden", domain_loss_weight=lambda step: 1.0)
    with pytest.raises(TypeError, match="MultiKernelMMD"):
        DANModel(clf, "hidden", mmd="mmd")
    model = DANModel(clf, "hidden")
    with pytest.raises(ValueError, match=r"target images have shape \(6, 6, 1\)"):
        model((np.zeros((2, 8, 8, 1), "float32"), np.zeros((2, 6, 6, 1), "float32")))


def test_fit_names_bad_halves_and_labels_before_training(image_classifier, toy_domain):
    model = DANModel(image_classifier(), ["hidden"])
    model.compile("adam", "sparse_categorical_crossentropy")
    (xs, ys), (xt, _) = toy_domain(8, 0, 1), toy_domain(8, 40, 2)
    with pytest.raises(ValueError) as e:
        model.fit((xs, xt), ys + 3, epochs=1, verbose=0)
    assert str(e.value).startswith("The source labels `y` must be class ids in 0..2")
    big = toy_domain(8, 40, 2, shape=(9, 9, 1))[0]
    with pytest.raises(ValueError) as e:
        model.fit((xs, big), ys, epochs=1, verbose=0)
    assert str(e.value).startswith("The target images of `x` must be of shape (8, 8, 1)")
    paired = tf.data.Dataset.from_tensor_slices(((xs, big), ys)).batch(4)
    with pytest.raises(ValueError, match=r"^The target images of `x` must be of shape"):
        model.fit(paired, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^`y` must be class ids in 0..2"):
        model.evaluate(xs, ys + 3, verbose=0)
    late = tf.data.Dataset.from_tensor_slices(((xs, xt), ys + 3)).batch(4)  # read in the graph
    with pytest.raises(ValueError, match=r"^The labels must be class ids in 0..2.*Remap"):
        model.fit(late, epochs=1, verbose=0)
