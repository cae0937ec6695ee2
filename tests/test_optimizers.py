import textwrap

import keras
import numpy as np
import pytest

from kerastransfer import optimizers, surgery
from kerastransfer.models import small_cnn

IMPORTED = ["conv1", "bn1", "conv2", "bn2", "fc1"]


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, 12, 12, 1)).astype("float32"), rng.integers(0, 3, n)


def nested_target(classes=3):
    """A target with its body nested in a sub-model, as a keras.applications backbone would be:
    its variable paths change on reload (`body/conv1/kernel` -> `conv1/kernel`)."""
    body = small_cnn((12, 12, 1), classes, filters=(4, 6), dense=8, name="body")
    body = surgery.cut_at(body, "dropout")
    inputs = keras.Input((12, 12, 1))
    outputs = keras.layers.Dense(classes, activation="softmax", name="classifier_new")(body(inputs))
    return keras.Model(inputs, outputs)


def transfer_pair():
    keras.utils.set_random_seed(0)
    source = small_cnn((12, 12, 1), 10, filters=(4, 6), dense=8)
    target = nested_target()
    report = surgery.import_matching_layers(source, target)
    assert report.imported == IMPORTED
    return target, report


def snapshot(model, names):
    return {n: [w.copy() for w in surgery.get_layer(model, n).get_weights()] for n in names}


def neon(report, lr=0.05):
    return optimizers.neon_optimizer(
        report, keras.optimizers.SGD(lr, momentum=0.9, weight_decay=0.0005)
    )


def test_imported_weights_stay_bit_identical_with_momentum_and_weight_decay():
    model, report = transfer_pair()
    before = snapshot(model, IMPORTED + ["classifier_new"])
    model.compile(neon(report), "sparse_categorical_crossentropy")
    model.fit(*data(), batch_size=16, epochs=3, verbose=0)
    after = snapshot(model, IMPORTED + ["classifier_new"])
    for name in ("conv1", "conv2", "fc1"):
        for a, b in zip(before[name], after[name]):
            np.testing.assert_array_equal(a, b)
    gamma, beta, moving_mean, moving_var = range(4)
    for name in ("bn1", "bn2"):
        np.testing.assert_array_equal(before[name][gamma], after[name][gamma])
        np.testing.assert_array_equal(before[name][beta], after[name][beta])
        # lr 0 is not trainable=False: the layers run in training mode, statistics adapt.
        assert not np.allclose(before[name][moving_mean], after[name][moving_mean])
        assert not np.allclose(before[name][moving_var], after[name][moving_var])
    assert not np.allclose(before["classifier_new"][0], after["classifier_new"][0])


def test_trainable_false_keeps_batch_norm_statistics():
    model, _ = transfer_pair()
    surgery.freeze_bottom_levels(model, 3)
    before = snapshot(model, ["bn1", "bn2"])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    model.fit(*data(), batch_size=16, epochs=2, verbose=0)
    after = snapshot(model, ["bn1", "bn2"])
    for name in ("bn1", "bn2"):
        for a, b in zip(before[name], after[name]):
            np.testing.assert_array_equal(a, b)


def test_saved_model_reloads_in_fresh_process_and_keeps_its_mapping(tmp_path, run_python):
    model, report = transfer_pair()
    model.compile(neon(report), "sparse_categorical_crossentropy")
    x, y = data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "transfer.keras"
    model.save(path)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        import kerastransfer  # registers ScaledMultiOptimizer
        from kerastransfer.surgery import get_layer
        model = keras.models.load_model({str(path)!r})  # safe_mode stays True
        opt = model.optimizer
        assert type(opt).__name__ == "ScaledMultiOptimizer", type(opt)
        assert int(opt.iterations) == 4, int(opt.iterations)
        rates = sorted(round(r, 6) for r in opt.learning_rates())
        assert rates == [0.0, 0.05], rates
        d = np.load({str(tmp_path / "data.npz")!r})
        names = ("conv1", "fc1", "classifier_new")
        before = {{n: get_layer(model, n).get_weights() for n in names}}
        model.fit(d["x"], d["y"], batch_size=16, epochs=2, verbose=0)
        for n in ("conv1", "fc1"):
            for a, b in zip(before[n], get_layer(model, n).get_weights()):
                assert np.array_equal(a, b), n
        head = get_layer(model, "classifier_new").get_weights()[0]
        assert not np.allclose(before["classifier_new"][0], head)
        print("OK", int(opt.iterations))
        """
    )
    assert "OK 12" in run_python(script).stdout


def test_reduce_lr_on_plateau_scales_every_group_and_keeps_zero():
    model, report = transfer_pair()
    optimizer = neon(report, lr=0.04)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    plateau = keras.callbacks.ReduceLROnPlateau(
        "loss", factor=0.5, patience=0, min_delta=1e9, min_lr=0
    )
    model.fit(*data(), batch_size=16, epochs=3, callbacks=[plateau], verbose=0)
    # Epoch 1 sets the baseline; epochs 2 and 3 each halve the rate. The lr-0 group stays 0.
    assert sorted(round(r, 6) for r in optimizer.learning_rates()) == [0.0, 0.01]
    assert float(optimizer.learning_rate) == pytest.approx(0.01)


def test_learning_rate_scheduler_keeps_discriminative_ratios():
    model, _ = transfer_pair()
    optimizer = optimizers.discriminative_optimizer(
        [["conv1", "bn1"], ["conv2", "bn2"], ["fc1"]], 1e-3, 1e-1, keras.optimizers.SGD()
    )
    model.compile(optimizer, "sparse_categorical_crossentropy")
    # Keras applies a schedule to each sub-optimizer's own rate: a relative schedule keeps ratios.
    schedule = keras.callbacks.LearningRateScheduler(
        lambda epoch, lr: lr if epoch == 0 else lr * 0.1
    )
    history = model.fit(*data(), batch_size=16, epochs=2, callbacks=[schedule], verbose=0)
    assert sorted(round(r, 8) for r in optimizer.learning_rates()) == [1e-4, 1e-3, 1e-2, 1e-2]
    assert {"learning_rate_group0", "learning_rate_group2"} <= set(history.history)


def test_setting_learning_rate_rescales_every_group():
    """What code that only knows `optimizer.learning_rate` (a custom warm-up, `LRFinder`) sees:
    the default group's rate; setting it rescales all groups, zero stays zero."""
    _, report = transfer_pair()
    optimizer = neon(report, lr=0.04)
    assert float(optimizer.learning_rate) == pytest.approx(0.04)
    optimizer.learning_rate = 0.01
    assert sorted(round(r, 6) for r in optimizer.learning_rates()) == [0.0, 0.01]
    frozen = optimizers.neon_optimizer(["conv1"], keras.optimizers.SGD(0.0))
    with pytest.raises(ValueError, match="learning rate 0"):
        frozen.learning_rate = 0.1


def test_setting_learning_rate_refuses_a_scheduled_group_and_changes_nothing():
    decay = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
    optimizer = optimizers.ScaledMultiOptimizer(
        keras.optimizers.OptimizerMap(
            keras.optimizers.SGD(0.1, name="base"),
            {
                "conv1/.*": keras.optimizers.SGD(0.2, name="plain"),
                "fc1/.*": keras.optimizers.SGD(decay, name="scheduled"),
            },
        )
    )
    with pytest.raises(TypeError, match="'scheduled' follows a LearningRateSchedule"):
        optimizer.learning_rate = 0.01
    np.testing.assert_allclose(optimizer.learning_rates(), [0.2, 0.1, 0.1], rtol=1e-6)


def test_optimizer_for_gives_each_variable_its_group():
    model = small_cnn((12, 12, 1), 3, filters=(4, 6), dense=8)
    optimizer = optimizers.neon_optimizer(["conv1"], keras.optimizers.SGD(0.1, name="new"))
    group = {v.path: optimizer.optimizer_for(v).name for v in model.trainable_variables}
    assert group["conv1/kernel"] == "imported_lr0"
    assert group["classifier/kernel"] == "new"


def test_discriminative_and_layerwise_rates():
    rates = optimizers.geometric_rates(1e-4, 1e-2, 3)
    np.testing.assert_allclose(rates, [1e-4, 1e-3, 1e-2])
    model = small_cnn((12, 12, 1), 3, filters=(4, 6), dense=8)
    opt = optimizers.layerwise_decay_optimizer(model, 0.1, 0.5)
    model.compile(opt, "sparse_categorical_crossentropy")
    model.fit(*data(16), verbose=0)
    by_variable = {
        v.path: float(opt._optimizer_map(v).learning_rate) for v in model.trainable_variables
    }
    assert by_variable["classifier/kernel"] == pytest.approx(0.1)
    assert by_variable["fc1/kernel"] == pytest.approx(0.05)
    assert by_variable["bn2/gamma"] == pytest.approx(0.025)
    assert by_variable["conv1/kernel"] == pytest.approx(0.0125)


def test_bad_maps_are_refused():
    with pytest.raises(ValueError, match="empty"):
        optimizers.discriminative_optimizer([["conv1"], []], 1e-4, 1e-2)
    with pytest.raises(ValueError, match="more than one group"):
        optimizers.discriminative_optimizer([["conv1"], ["conv1"]], 1e-4, 1e-2)
    with pytest.raises(ValueError, match="low <= high"):
        optimizers.discriminative_optimizer([["conv1"]], 1e-2, 1e-4)
    with pytest.raises(ValueError, match="decay"):
        optimizers.layerwise_decay_optimizer(small_cnn(), 0.1, 1.5)
    with pytest.raises(ValueError, match="empty"):
        optimizers.neon_optimizer([])


def test_neon_map_under_mirrored_strategy(mirrored):
    x, y = data(64)
    with mirrored.scope():
        model, report = transfer_pair()
        model.compile(neon(report), "sparse_categorical_crossentropy")
    before = snapshot(model, ["conv1", "fc1", "classifier_new"])
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    after = snapshot(model, ["conv1", "fc1", "classifier_new"])
    for name in ("conv1", "fc1"):
        for a, b in zip(before[name], after[name]):
            np.testing.assert_array_equal(a, b)
    assert not np.allclose(before["classifier_new"][0], after["classifier_new"][0])
    assert model.optimizer.iterations.numpy() == 4


def test_names_matching_no_layer_are_refused_when_the_optimizer_is_built():
    x, y = data(16)
    cases = [
        (
            optimizers.neon_optimizer(["Conv1", "bn1"]),
            r"group 'imported_lr0': 'Conv1' \(did you mean 'conv1'\?\)",
        ),
        (
            optimizers.discriminative_optimizer([["conv1"], ["fc9"]], 1e-3, 1e-2),
            r"group 'group1': 'fc9' \(did you mean 'fc1'\?\)",
        ),
    ]
    for optimizer, message in cases:
        model, _ = transfer_pair()
        before = snapshot(model, ["conv1", "fc1"])
        model.compile(optimizer, "sparse_categorical_crossentropy")
        with pytest.raises(ValueError, match=message):
            model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        for name, weights in before.items():  # refused before the first step
            for a, b in zip(weights, surgery.get_layer(model, name).get_weights()):
                np.testing.assert_array_equal(a, b)
    model, _ = transfer_pair()
    surgery.get_layer(model, "conv1").trainable = False
    model.compile(optimizers.neon_optimizer(["conv1", "conv2"]), "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"'conv1'.*frozen layer \(trainable=False\)"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    # A map for layers unfrozen later (GradualUnfreezing) says so; layer-wise maps know the model.
    model.compile(
        optimizers.neon_optimizer(["conv1", "conv2"], allow_frozen=True),
        "sparse_categorical_crossentropy",
    )
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    layerwise = optimizers.layerwise_decay_optimizer(model, 0.1, 0.5)
    model.compile(layerwise, "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert "body/conv1/kernel" not in {v.path for v in model.trainable_variables}
    assert len(layerwise.optimizers) == 4


def test_strings_where_lists_of_names_belong_are_refused():
    with pytest.raises(ValueError, match=r"not a string .* Wrap it: \['conv1'\]"):
        optimizers.neon_optimizer("conv1")
    with pytest.raises(
        ValueError, match=r"`groups\[0\]` must be a list of layer names, not a string"
    ):
        optimizers.discriminative_optimizer(["conv1", "conv2"], 1e-3, 1e-2)
    with pytest.raises(ValueError, match="not a MultiOptimizer|single optimizer"):
        optimizers.neon_optimizer(["conv1"], optimizers.neon_optimizer(["conv2"]))


def test_absolute_learning_rate_scheduler_leaves_the_zero_group_at_zero():
    model, report = transfer_pair()
    optimizer = neon(report, lr=0.05)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    before = snapshot(model, IMPORTED + ["classifier_new"])
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch: 0.02)  # absolute, every group
    with pytest.warns(UserWarning, match="rate-0 group .* stays 0"):
        history = model.fit(*data(), batch_size=16, epochs=2, callbacks=[schedule], verbose=0)
    assert sorted(round(r, 6) for r in optimizer.learning_rates()) == [0.0, 0.02]
    assert history.history["learning_rate_imported_lr0"] == [0.0, 0.0]
    after = snapshot(model, IMPORTED + ["classifier_new"])
    for name in ("conv1", "conv2", "fc1"):
        for a, b in zip(before[name], after[name]):
            np.testing.assert_array_equal(a, b)
    assert not np.allclose(before["classifier_new"][0], after["classifier_new"][0])


def test_negative_learning_rates_are_refused():
    _, report = transfer_pair()
    optimizer = neon(report, lr=0.04)
    with pytest.raises(ValueError, match="`learning_rate` must be >= 0"):
        optimizer.learning_rate = -0.01
    assert sorted(round(r, 6) for r in optimizer.learning_rates()) == [0.0, 0.04]
    with pytest.raises(ValueError, match="must be >= 0"):
        optimizers.neon_optimizer(["conv1"], keras.optimizers.SGD(-0.01))
    with pytest.raises(ValueError, match="`learning_rate` must be >= 0"):
        optimizers.layerwise_decay_optimizer(small_cnn(), -0.1, 0.5)
    with pytest.raises(ValueError, match="`low` must be >= 0"):
        optimizers.discriminative_optimizer([["conv1"]], -1e-3, 1e-2)


def test_base_schedules_survive_as_scaled_schedules_and_reload(tmp_path):
    decay = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
    model, _ = transfer_pair()
    optimizer = optimizers.discriminative_optimizer(
        [["conv1", "bn1"], ["conv2", "bn2"]], 1e-3, 1e-2, keras.optimizers.SGD(decay)
    )
    model.compile(optimizer, "sparse_categorical_crossentropy")
    np.testing.assert_allclose(optimizer.learning_rates(), [1e-3, 1e-2, 1e-2], rtol=1e-6)
    model.fit(*data(), batch_size=16, epochs=1, verbose=0)  # 4 steps: every rate halves
    np.testing.assert_allclose(optimizer.learning_rates(), [5e-4, 5e-3, 5e-3], rtol=1e-5)
    path = tmp_path / "scheduled.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)  # safe_mode: no lambdas in the config
    assert all(
        isinstance(o._learning_rate, optimizers.ScaledSchedule)
        for o in reloaded.optimizer.optimizers
    )
    np.testing.assert_allclose(reloaded.optimizer.learning_rates(), [5e-4, 5e-3, 5e-3], rtol=1e-5)
    layerwise = optimizers.layerwise_decay_optimizer(
        small_cnn((12, 12, 1), 3, filters=(4, 6), dense=8), decay, 0.5
    )
    np.testing.assert_allclose(
        sorted(layerwise.learning_rates()), [0.0125, 0.025, 0.05, 0.1], rtol=1e-6
    )


def test_inverse_decay_matches_the_formula_serializes_and_refuses_bad_values():
    from kerastransfer.optimizers import InverseDecay

    schedule = InverseDecay(0.1, gamma=0.01, power=0.5)
    steps = np.array([0, 1, 10, 1234])
    np.testing.assert_allclose(
        [float(schedule(int(t))) for t in steps], 0.1 * (1 + 0.01 * steps) ** -0.5, rtol=1e-6
    )
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(again, InverseDecay) and float(again(1234)) == float(schedule(1234))
    for kwargs in ({"initial_learning_rate": 0}, {"initial_learning_rate": 0.1, "gamma": -1},
                   {"initial_learning_rate": 0.1, "power": float("nan")}):  # fmt: skip
        with pytest.raises(ValueError, match="must be a finite number"):
            InverseDecay(**kwargs)
