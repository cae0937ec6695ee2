"""`fine_tune` under two logical CPU devices and in mixed precision (`fine_tuning.devices`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.fine_tuning import fine_tune
from kerastransfer.fine_tuning.devices import (
    PRECISIONS,
    float32_copy,
    precision_scope,
    resolve_distribution,
    resolve_precision,
    visible_gpus,
)
from kerastransfer.models import small_cnn
from kerastransfer.surgery import get_layer

DATA = "embedded:usps"  # 16x16 gray digits, converted to the source's 28x28 input
# Weights after 3 epochs on 1 and on 2 devices differ by ~2e-8 (float32 reduction order).
WEIGHT_ATOL = 1e-6


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny source without dropout: a dropout mask is drawn per replica, so a run with dropout
    cannot match its one-device run."""
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("source") / "source.keras"
    small_cnn((28, 28, 1), 10, filters=(4, 6), dense=16, dropout=0.0).save(path)
    return str(path)


def _run(source, **kwargs):
    kwargs = {
        "samples_per_class": 5,  # 50 training images
        # One full batch per epoch: under a strategy Keras iterates the (reshuffled) pipeline
        # once more before training, so the order differs; a full batch's gradient does not
        # depend on it.
        "batch_size": 64,
        "epochs": 3,
        "warmup_epochs": 3,
        "dropout": 0.0,
        "patience": 5,
        "verbose": 0,
        **kwargs,
    }
    return fine_tune(source, DATA, **kwargs)


class _Optimizer(keras.callbacks.Callback):
    """The training model's optimizer at the end of `fit`."""

    def on_train_end(self, logs=None):
        self.optimizer = self.model.optimizer


def _weights(model):
    return {v.path: np.array(v) for v in model.weights}


@pytest.mark.parametrize(
    "method, bpa",
    [("discriminative", True), ("gradual", False)],
    ids=["discriminative+bpa", "gradual"],
)
def test_two_devices_give_the_one_device_result(source, mirrored, method, bpa):
    one = _run(source, method=method, bpa=bpa)
    two = _run(source, method=method, bpa=bpa, distribution=mirrored)
    assert (one.report.replicas, two.report.replicas) == (1, 2)
    w1, w2 = _weights(one.model), _weights(two.model)
    assert w1.keys() == w2.keys()
    for path in w1:
        np.testing.assert_allclose(w2[path], w1[path], rtol=0, atol=WEIGHT_ATOL, err_msg=path)
    h1, h2 = one.report.history, two.report.history
    np.testing.assert_allclose(h2["loss"], h1["loss"], rtol=1e-5)
    np.testing.assert_allclose(h2["val_loss"], h1["val_loss"], rtol=1e-5)
    assert two.report.val_accuracy == pytest.approx(one.report.val_accuracy, abs=1e-6)
    assert two.report.test_accuracy == pytest.approx(one.report.test_accuracy, abs=1e-6)
    source_weights = _weights(keras.saving.load_model(source))
    if method == "gradual":
        assert h2["trainable_levels"] == h1["trainable_levels"] == [1.0, 2.0, 3.0]
        assert not np.array_equal(w2["fc1/kernel"], source_weights["fc1/kernel"])
    else:  # BPA: Gamma computed across the replicas, the first convolution trained
        gammas = [k for k in h2 if k.startswith("gamma/") and k.endswith("/conv1/mean")]
        assert len(gammas) == 1 and h2[gammas[0]] == pytest.approx(h1[gammas[0]], rel=1e-6)
        assert not np.array_equal(w2["conv1/kernel"], source_weights["conv1/kernel"])
    assert "2 replicas" in str(two.report)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_exports_a_float32_model(
    source, precision, tmp_path, serve_in_fresh_process
):
    watch = _Optimizer()
    export = tmp_path / "export"
    formats = ("saved_model", "onnx") if precision == "mixed_bfloat16" else ("saved_model",)
    result = _run(
        source,
        method="discriminative",
        precision=precision,
        epochs=2,
        batch_size=16,
        learning_rate=1e-3,
        callbacks=[watch],
        export=str(export),
        export_formats=formats,
    )
    assert keras.config.dtype_policy().name == "float32"  # restored
    model, report = result.model, result.report
    assert report.precision == precision and f"dtype policy {precision}" in str(report)
    compute = precision.removeprefix("mixed_")
    assert get_layer(model, "conv1").compute_dtype == compute
    assert get_layer(model, "classifier_new").compute_dtype == "float32"
    assert np.all(np.isfinite(report.history["loss"])) and len(report.history["loss"]) == 2
    if precision == "mixed_float16":  # loss scaling around the per-layer map
        assert isinstance(watch.optimizer, keras.optimizers.LossScaleOptimizer)
        assert type(watch.optimizer.inner_optimizer).__name__ == "ScaledMultiOptimizer"
    else:
        assert type(watch.optimizer).__name__ == "ScaledMultiOptimizer"
    assert len([rate for rate, count in report.groups.values() if count]) == 4  # groups seen

    images = (np.random.default_rng(0).random((4, 16, 16, 1)) * 255).astype("uint8")
    served = serve_in_fresh_process(str(export), images)
    assert served["probabilities"].dtype == np.float32
    np.testing.assert_allclose(served["probabilities"].sum(axis=1), 1.0, atol=1e-5)
    mixed = model.predict(tf.image.resize(images.astype("float32"), (28, 28)), verbose=0)
    np.testing.assert_allclose(served["probabilities"], mixed, atol=0.05)  # float32 vs mixed
    if "onnx" in formats:  # a bfloat16 graph would not load in onnxruntime
        from kerastransfer.export import load_predictor

        onnx = load_predictor(str(export / "model.onnx"))
        x = tf.image.resize(images.astype("float32"), (28, 28)).numpy()
        np.testing.assert_allclose(onnx(x), served["probabilities"], atol=1e-4)


def test_float32_copy_and_precision_scope():
    model = small_cnn((28, 28, 1), 3, filters=(4, 6), dense=16)
    assert float32_copy(model) is model
    with precision_scope("mixed_bfloat16") as name:
        assert name == keras.config.dtype_policy().name == "mixed_bfloat16"
        mixed = small_cnn((28, 28, 1), 3, filters=(4, 6), dense=16)
    assert keras.config.dtype_policy().name == "float32"
    copy = float32_copy(mixed)
    assert {layer.compute_dtype for layer in copy.layers if layer.weights} == {"float32"}
    for a, b in zip(copy.weights, mixed.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    with pytest.raises(RuntimeError), precision_scope("mixed_float16"):
        raise RuntimeError("inside")
    assert keras.config.dtype_policy().name == "float32"
    assert resolve_precision(None) == "float32" and PRECISIONS[0] == "float32"


def test_resolve_distribution(mirrored):
    assert resolve_distribution(mirrored) is mirrored
    with mirrored.scope():
        assert resolve_distribution(None) is mirrored  # the caller's strategy
    if not visible_gpus():
        assert resolve_distribution(None).num_replicas_in_sync == 1
        assert resolve_distribution("auto") is tf.distribute.get_strategy()
        assert resolve_distribution(1) is tf.distribute.get_strategy()
        with pytest.raises(
            ValueError, match=r"`distribution` must be at most .* no GPU is visible.*Received: 8"
        ):
            resolve_distribution(8)
    for bad in (0, -2, 1.5, True, "two", "gpu"):
        with pytest.raises(ValueError, match="`distribution` must be None, 'auto'"):
            resolve_distribution(bad)


def test_wrong_devices_and_precision_fail_before_any_work(source):
    with pytest.raises(ValueError, match="`precision` must be None or one of .*Received: 'fp16'"):
        fine_tune(source, DATA, precision="fp16")
    if len(visible_gpus()) < 64:
        with pytest.raises(ValueError, match="`distribution` must be at most"):
            fine_tune(source, DATA, distribution=64)
    # an error inside the run leaves the caller's dtype policy as it was
    with pytest.raises(ValueError, match="frozen_levels"):
        _run(source, precision="mixed_bfloat16", frozen_levels=9, warmup_epochs=0)
    assert keras.config.dtype_policy().name == "float32"
