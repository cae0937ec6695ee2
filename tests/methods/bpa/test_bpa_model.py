"""BPAModel: Gamma-scaled gradients in `fit`, Gamma as saved state, refresh callback, strategies."""

import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.methods.bpa import BPAModel, GammaRefresh
from kerastransfer.models import small_cnn
from kerastransfer.optimizers import neon_optimizer

C = 3


def tiny_cnn(seed=1, name="tiny"):
    keras.utils.set_random_seed(seed)
    return small_cnn((12, 12, 1), C, filters=(4, 5), dense=8, dropout=0.0, name=name)


def plain_cnn(seed=3):
    """No BatchNormalization: per-replica batch statistics would differ from one device's."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(C, activation="softmax", name="head")(x))


def labelled(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, 12, 12, 1)).astype("float32"), (np.arange(n) % C).astype("int64")


def weights_by_path(model):
    return {
        v.path.split("/", 1)[-1] if v.path.startswith("bpa_") else v.path: v.numpy()
        for v in model.weights
    }


GAMMA1 = np.array([1.0, 0.5, 0.0, 0.25], "float32")
GAMMA2 = np.array([0.2, 1.0, 0.6, 0.0, 0.8], "float32")


def one_step(model, x, y, optimizer=None):
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(learning_rate=0.1),
        loss="sparse_categorical_crossentropy",
    )
    before = weights_by_path(model)
    model.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0)
    return before, weights_by_path(model)


def test_gradients_are_scaled_per_filter():
    x, y = labelled()
    _, plain_after = one_step(tiny_cnn(), x, y)
    bpa = BPAModel(tiny_cnn(), split_layers=["conv1", "conv2"])
    bpa.set_gamma({"conv1": GAMMA1, "conv2": GAMMA2})
    before, after = one_step(bpa, x, y)
    plain = {k: plain_after[k] - before[k] for k in plain_after}
    delta = {k: after[k] - before[k] for k in plain_after}
    g1, g2 = GAMMA1, GAMMA2
    expected_scale = {
        "conv1/kernel": g1,
        "conv1/bias": g1,
        "bn1/gamma": g1,
        "bn1/beta": g1,
        "conv2/kernel": g1[:, None] * g2,
        "conv2/bias": g2,
        "bn2/gamma": g2,
        "bn2/beta": g2,
        # Dense after Flatten (3x3x5, channels last): row r reads conv2's channel r % 5.
        "fc1/kernel": np.tile(g2, 9)[:, None],
    }
    for path, step in delta.items():
        scale = expected_scale.get(path, 1.0)
        np.testing.assert_allclose(step, plain[path] * scale, rtol=1e-4, atol=1e-7, err_msg=path)
    # Gamma 0 freezes the filter: conv1 filter 2, its BN parameters and conv2's input slice 2.
    assert np.all(delta["conv1/kernel"][..., 2] == 0) and delta["bn1/beta"][2] == 0
    assert np.all(delta["conv2/kernel"][:, :, 2, :] == 0)
    assert (
        np.abs(delta["conv1/kernel"][..., 0]).sum() > 0
        and np.abs(delta["head/kernel" if "head/kernel" in delta else "classifier/kernel"]).sum()
        > 0
    )
    scales = bpa.gamma_scales
    assert scales["conv1/kernel"].shape == (1, 1, 1, 4) and scales["conv2/kernel"].shape == (
        1,
        1,
        4,
        5,
    )


def test_neon_optimizer_map_composes():
    x, y = labelled()
    bpa = BPAModel(tiny_cnn(), split_layers="conv2")
    bpa.set_gamma({"conv2": GAMMA2})
    base = keras.optimizers.SGD(learning_rate=0.1)
    before, after = one_step(bpa, x, y, optimizer=neon_optimizer(["conv1", "bn1"], base))
    for path in ("conv1/kernel", "conv1/bias", "bn1/gamma", "bn1/beta"):
        np.testing.assert_array_equal(after[path], before[path])  # imported: lr 0
    moved = after["conv2/kernel"] - before["conv2/kernel"]
    assert np.all(moved[..., 3] == 0) and np.abs(moved[..., 1]).sum() > 0
    assert np.abs(after["classifier/kernel"] - before["classifier/kernel"]).sum() > 0


def test_refresh_callback_logs_history_and_tensorboard(tmp_path, capsys):
    x, y = labelled(30)
    bpa = BPAModel(tiny_cnn(), gamma="agreement")
    bpa.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    refresh = GammaRefresh((x, y), every=2, log_dir=tmp_path / "tb")
    history = bpa.fit(x, y, epochs=3, batch_size=10, verbose=0, callbacks=[refresh])
    assert refresh.refresh_epochs == [0, 2]
    assert bpa.gamma_refreshes == 2
    for stat in ("min", "mean", "max", "frozen"):
        assert len(history.history[f"gamma/conv1/{stat}"]) == 3
    assert history.history["gamma/conv1/max"][-1] == pytest.approx(1.0)  # "max" normalisation
    assert history.history["gamma/conv1/min"][-1] == pytest.approx(float(bpa.gamma["conv1"].min()))
    limited = GammaRefresh((x, y), max_batches=1)  # the (x, y) set in batches of 256: all 30
    bpa.fit(x, y, epochs=1, verbose=0, callbacks=[limited])
    assert bpa.last_confusions["conv1"].sum() == 4 * 30
    limited = GammaRefresh(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(10), max_batches=2, verbose=1
    )
    bpa.fit(x, y, epochs=1, verbose=0, callbacks=[limited])
    assert bpa.last_confusions["conv1"].sum() == 4 * 20
    assert "Epoch 1: Gamma refreshed (conv1: mean" in capsys.readouterr().out
    with pytest.raises(ValueError, match="max_batches"):
        GammaRefresh((x, y), max_batches=0)
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    with pytest.raises(ValueError, match="BPAModel"):
        plain = tiny_cnn()
        plain.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        plain.fit(x, y, epochs=1, verbose=0, callbacks=[GammaRefresh((x, y))])


def test_saved_gamma_reloads_in_a_fresh_process(tmp_path, run_python):
    x, y = labelled()
    bpa = BPAModel(
        tiny_cnn(), split_layers=["conv1", "conv2"], gamma="agreement", normalization="mean"
    )
    bpa.compile(optimizer=neon_optimizer(["conv1"]), loss="sparse_categorical_crossentropy")
    gamma = bpa.compute_gamma((x, y))
    bpa.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "bpa.keras"
    bpa.save(path)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import json, numpy as np, keras
        import kerastransfer  # registers BPAModel
        model = keras.saving.load_model({str(path)!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "pred.npy")!r}, model.predict(x, verbose=0))
        print(json.dumps({{"gamma": {{k: v.tolist() for k, v in model.gamma.items()}},
                          "refreshes": model.gamma_refreshes, "method": model.gamma_method,
                          "normalization": model.normalization, "split": model.split_layers,
                          "optimizer": type(model.optimizer).__name__}}))
        """
    )
    out = run_python(script)
    import json

    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded["split"] == ["conv1", "conv2"] and loaded["refreshes"] == 1
    assert (loaded["method"], loaded["normalization"]) == ("agreement", "mean")
    assert loaded["optimizer"] == "ScaledMultiOptimizer"
    for name, values in gamma.items():
        np.testing.assert_allclose(loaded["gamma"][name], values, rtol=1e-6)
    np.testing.assert_allclose(
        np.load(tmp_path / "pred.npy"), bpa.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("interrupted")


def test_backup_and_restore_resumes_with_the_same_gamma(tmp_path):
    x, y = labelled(30)

    def make():
        model = BPAModel(tiny_cnn(), gamma="agreement")
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
        return model

    first = make()
    refresh = GammaRefresh((x, y), every=10)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="interrupted"):
        first.fit(
            x, y, epochs=4, batch_size=10, verbose=0, callbacks=[refresh, backup, _Interrupt()]
        )
    gamma_at_interrupt = first.gamma["conv1"]
    assert refresh.refresh_epochs == [0]

    second = make()  # a fresh process would build the same model: initial Gamma is all ones
    np.testing.assert_array_equal(second.gamma["conv1"], np.ones(4))
    resumed = GammaRefresh((x, y), every=10)
    seen = []
    probe = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: seen.append((e, second.gamma["conv1"]))
    )
    second.fit(
        x,
        y,
        epochs=4,
        batch_size=10,
        verbose=0,
        callbacks=[resumed, probe, keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))],
    )
    assert [e for e, _ in seen] == [2, 3]  # resumed after the two finished epochs
    assert resumed.refresh_epochs == []  # no refresh due: the restored Gamma is kept
    np.testing.assert_array_equal(seen[0][1], gamma_at_interrupt)
    assert second.gamma_refreshes == 1


def test_mixed_bfloat16():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        x, y = labelled()
        bpa = BPAModel(tiny_cnn())
        assert bpa.network.get_layer("conv1").compute_dtype == "bfloat16"
        bpa.compile(
            optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)),
            loss="sparse_categorical_crossentropy",
        )
        gamma = bpa.compute_gamma((x, y))["conv1"]
        assert np.all(np.isfinite(gamma)) and gamma.max() == pytest.approx(1.0)
        gamma = np.array([1.0, 0.0, 0.5, 1.0], "float32")
        bpa.set_gamma({"conv1": gamma})
        kernel = bpa.network.get_layer("conv1").kernel.numpy()
        history = bpa.fit(x, y, epochs=1, batch_size=12, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        moved = bpa.network.get_layer("conv1").kernel.numpy() - kernel
        assert np.all(moved[..., 1] == 0) and np.abs(moved[..., 0]).sum() > 0
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.config.dtype_policy().name == previous.name


def test_mirrored_step_matches_one_device(mirrored):
    x, y = labelled(16)
    gamma = {"conv1": np.array([1.0, 0.3, 0.0, 0.7], "float32")}

    def run(strategy):
        with strategy.scope():
            bpa = BPAModel(plain_cnn(), split_layers="conv1", gamma="agreement")
            bpa.set_gamma(gamma)
            bpa.compile(
                optimizer=keras.optimizers.SGD(learning_rate=0.5),
                loss="sparse_categorical_crossentropy",
            )
        history = bpa.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        return bpa, history.history["loss"][0], {v.path: v.numpy() for v in bpa.network.weights}

    single, loss1, w1 = run(tf.distribute.get_strategy())
    double, loss2, w2 = run(mirrored)
    assert loss2 == pytest.approx(loss1, rel=1e-5)  # the reported loss is the global-batch mean
    for path in w1:
        np.testing.assert_allclose(w2[path], w1[path], atol=1e-5, err_msg=path)
    assert (
        np.abs(w1["conv1/kernel"] - plain_cnn().get_layer("conv1").kernel.numpy())[..., 0].sum() > 0
    )
    # Gamma from confusion matrices summed across the replicas equals the one-device Gamma.
    g1 = single.compute_gamma((x, y))["conv1"]
    g2 = double.compute_gamma(tf.data.Dataset.from_tensor_slices((x, y)).batch(8))["conv1"]
    np.testing.assert_allclose(g2, g1, rtol=1e-6)
    # ... and the refresh callback runs inside `fit` under the strategy.
    refresh = GammaRefresh(tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
    double.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[refresh])
    assert refresh.refresh_epochs == [0] and double.gamma_refreshes == 2


def test_invalid_arguments():
    with pytest.raises(ValueError, match="`gamma` must be one of"):
        BPAModel(tiny_cnn(), gamma="l2")
    with pytest.raises(ValueError, match="normalization"):
        BPAModel(tiny_cnn(), normalization="softmax")
    with pytest.raises(ValueError, match="'conv9'.*Available Conv2D layers"):
        BPAModel(tiny_cnn(), split_layers=["conv9"])
    model = BPAModel(tiny_cnn())
    with pytest.raises(ValueError, match="Unknown split layers"):
        model.set_gamma({"conv2": np.ones(5)})
    with pytest.raises(ValueError, match="4 finite non-negative"):
        model.set_gamma({"conv1": np.ones(3)})
    with pytest.raises(ValueError, match="functional keras.Model"):
        BPAModel(keras.layers.Dense(3))


# ---- bad data: named in Python before any graph runs (#18) -----------------------------------


def _first_line(excinfo):
    text = str(excinfo.value)
    assert "in user code" not in text and "Graph execution" not in text, text
    return text.splitlines()[0]


def _dataset(x, y, batch=8):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def test_fit_names_labels_out_of_range_and_wrong_image_sizes():
    x, y = labelled(16)
    model = BPAModel(tiny_cnn())
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = weights_by_path(model)
    bad = y.copy()
    bad[3] = C
    with pytest.raises(ValueError) as e:
        model.fit(x, bad, epochs=1, verbose=0)
    line = _first_line(e)
    assert f"`y` must be class ids in 0..{C - 1}" in line and f"labels [{C}]" in line
    assert "Remap the labels" in line
    after = weights_by_path(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)  # checked before any step
    # a dataset whose first batch is fine: the step's error, re-raised as one line
    late = y.copy()
    late[-1] = -1
    with pytest.raises(ValueError, match=f"labels must be class ids in 0..{C - 1}.*Remap"):
        model.fit(_dataset(x, late), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(x, y, validation_data=(x, bad), epochs=1, verbose=0)
    big = np.zeros((16, 16, 16, 1), "float32")
    for data in ((big, y), (_dataset(big, y),)):
        with pytest.raises(ValueError) as e:
            model.fit(*data, epochs=1, verbose=0)
        line = _first_line(e)
        assert "must be of shape (12, 12, 1)" in line and "images of shape (16, 16, 1)" in line
        assert "to_image_shape" in line
    with pytest.raises(ValueError, match="yields images only"):
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="must be class ids in 0"):
        model.evaluate(x, bad, verbose=0)


def test_gamma_names_labels_out_of_range_instead_of_counting_them_as_no_class():
    x, y = labelled(16)
    y[5] = C + 2
    model = BPAModel(tiny_cnn())
    for data in ((x, y), _dataset(x, y)):
        with pytest.raises(ValueError) as e:
            model.compute_gamma(data)
        line = _first_line(e)
        assert "labels of the labelled set for Gamma must be class ids in 0..2" in line
        assert f"labels [{C + 2}]" in line
    assert model.gamma_refreshes == 0


def test_gamma_refresh_checks_its_set_before_training():
    x, y = labelled(16)
    model = BPAModel(tiny_cnn())
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    bad = y.copy()
    bad[0] = 7
    cases = [
        (GammaRefresh((x, bad)), "labels of GammaRefresh's `data` must be class ids in 0..2"),
        (
            GammaRefresh(tf.data.Dataset.from_tensor_slices(x).batch(8)),
            "must yield (images, labels) batches; it yields images only",
        ),
        (
            GammaRefresh((np.zeros((16, 14, 14, 1), "float32"), y)),
            "images of GammaRefresh's `data` must be of shape (12, 12, 1)",
        ),
        (
            GammaRefresh(_dataset(np.zeros((16, 14, 14, 1), "float32"), y), samples_per_class=2),
            "images of GammaRefresh's `data` must be of shape (12, 12, 1)",
        ),
    ]
    for refresh, expected in cases:
        with pytest.raises(ValueError) as e:
            model.fit(x, y, epochs=1, verbose=0, callbacks=[refresh])
        assert expected in _first_line(e)
    assert model.gamma_refreshes == 0
