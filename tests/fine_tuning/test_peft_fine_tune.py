"""`fine_tune` with the parameter-efficient methods ("lora", "dora", "bitfit"): what trains, the
report's parameter count, the merged export, resuming, the errors and `kerastransfer fit`."""

import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.cli import build_parser, main
from kerastransfer.fine_tuning import FineTuneConfig, build_transfer_model, fine_tune
from kerastransfer.fine_tuning.command_line import config_from_flags, fit_command_line
from kerastransfer.fine_tuning.training import train_transfer_model
from kerastransfer.methods.peft import AdaptedLayer, trainable_parameter_count
from kerastransfer.models import small_cnn
from kerastransfer.surgery import get_layer, iter_layers

DATA = "embedded:usps"  # 16x16 gray digits, converted to the source's 28x28 input
# The merged export against the adapted model: the same float32 function, the merged kernel
# computed once instead of at each call (float32 rounding; 0 measured on this model).
EXPORT_ATOL = 1e-5


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny source without dropout (conv1 5x5x1->4, conv2 5x5x4->6, fc1 294->16)."""
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("source") / "source.keras"
    small_cnn((28, 28, 1), 10, filters=(4, 6), dense=16, dropout=0.0).save(path)
    return str(path)


def _run(source, method, **kwargs):
    kwargs = {
        "samples_per_class": 5,
        "epochs": 2,
        "warmup_epochs": 3,
        "learning_rate": 1e-3,
        "patience": 5,
        "verbose": 0,
        **kwargs,
    }
    return fine_tune(source, DATA, method=method, **kwargs)


class _Weights(keras.callbacks.Callback):
    """Every weight of the model, by path, when `fit` begins and ends."""

    def on_train_begin(self, logs=None):
        self.begin = {v.path: np.array(v) for v in self.model.weights}

    def on_train_end(self, logs=None):
        self.end = {v.path: np.array(v) for v in self.model.weights}

    def moved(self):
        return {p for p in self.begin if not np.array_equal(self.begin[p], self.end[p])}


def _reported_parameters(report):
    match = re.search(r"trainable parameters: ([\d,]+) of ([\d,]+) \((\d+\.\d)%\)", str(report))
    assert match, str(report)
    trained, total = (int(g.replace(",", "")) for g in match.groups()[:2])
    assert float(match.group(3)) == pytest.approx(100 * trained / total, abs=0.05)
    return trained, total


def test_lora_trains_the_adapters_and_keeps_the_base_kernels_bit_identical(source):
    watch = _Weights()
    result = _run(source, "lora", rank=2, lora_alpha=4.0, callbacks=[watch])
    model, report = result.model, result.report
    adapted = [ly for ly in iter_layers(model) if isinstance(ly, AdaptedLayer)]
    assert [ly.name for ly in adapted] == ["conv1", "conv2", "fc1"]
    assert {(ly.rank, ly.scale) for ly in adapted} == {(2, 2.0)}  # alpha / rank
    moved = watch.moved()
    assert {f"{n}/lora_b" for n in ("conv1", "conv2", "fc1")} <= moved
    assert {"classifier_new/kernel", "classifier_new/bias"} <= moved
    assert not any(
        p.endswith(("/kernel", "/bias", "/gamma", "/beta"))
        for p in moved - {"classifier_new/kernel", "classifier_new/bias"}
    )
    imported = keras.saving.load_model(source)
    for name in ("conv1", "conv2", "fc1"):  # the source's weights, bit for bit
        base = get_layer(model, name).layer
        for got, want in zip(base.get_weights(), imported.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    assert report.method == "lora" and report.adaptation == "lora on 3 layers, rank 2, scale 2"
    assert _reported_parameters(report) == trainable_parameter_count(model)
    assert (report.trainable_parameters, report.total_parameters) == (
        trainable_parameter_count(model)
    )
    assert report.groups == {"new_layers": (pytest.approx(1e-3), len(model.trainable_weights))}


def test_the_report_counts_trainable_parameters_for_every_method(source):
    report = _run(source, "neon", epochs=1, warmup_epochs=1).report
    # neon: imported layers at rate 0 are not counted, the new head is
    head = 16 * 10 + 10
    assert _reported_parameters(report) == (head, report.total_parameters) and head > 0
    assert report.adaptation is None and "backbone trains" not in str(report)


_SERVE_AND_LOAD = """
import sys
import numpy as np, tensorflow as tf
import keras
import kerastransfer  # registers AdaptedLayer for the .keras file
images = np.load(sys.argv[3])
export = tf.saved_model.load(sys.argv[1])  # kept: its functions reference its variables
served = export.serve_float(tf.constant(images))["probabilities"]
model = keras.models.load_model(sys.argv[2])
resized = tf.image.resize(images, model.input_shape[1:3]).numpy()
np.savez(sys.argv[4], served=served.numpy(), loaded=model.predict(resized, verbose=0),
         layers=np.array([type(layer).__name__ for layer in model.layers[1].layers]))
"""


def test_a_lora_export_is_the_merged_model_and_its_keras_file_loads_afresh(
    source, tmp_path, monkeypatch, run_python
):
    import kerastransfer.export as export_package

    exported = []
    real_export = export_package.export_serving
    monkeypatch.setattr(
        export_package,
        "export_serving",
        lambda model, *a, **k: exported.append(model) or real_export(model, *a, **k),
    )
    result = _run(source, "lora", rank=2, epochs=1, export=str(tmp_path / "export"))
    (served_model,) = exported
    assert not any(isinstance(ly, AdaptedLayer) for ly in iter_layers(served_model))
    assert type(get_layer(served_model, "conv1")) is keras.layers.Conv2D
    # the source's architecture: its 10-class classifier replaced by a 10-class one
    assert served_model.count_params() == keras.saving.load_model(source).count_params()

    result.model.save(tmp_path / "adapted.keras")
    images = np.random.default_rng(0).uniform(0, 255, (6, 16, 16, 1)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    out = tmp_path / "out.npz"
    run_python(
        _SERVE_AND_LOAD,
        tmp_path / "export",
        tmp_path / "adapted.keras",
        tmp_path / "images.npy",
        out,
    )
    out = np.load(out)
    want = result.model.predict(tf.image.resize(images, (28, 28)), verbose=0)
    np.testing.assert_allclose(out["served"], want, rtol=0, atol=EXPORT_ATOL)
    np.testing.assert_array_equal(out["loaded"], want)  # the .keras file: the adapted model
    assert "AdaptedLayer" in out["layers"]


def test_bitfit_trains_only_the_biases_and_the_head(source):
    watch = _Weights()
    result = _run(source, "bitfit", callbacks=[watch])
    expected = {"conv1/bias", "conv2/bias", "fc1/bias", "classifier_new/kernel"}
    assert watch.moved() == expected | {"classifier_new/bias"}
    report = result.report
    assert report.adaptation == "bitfit on 3 bias vectors"
    assert _reported_parameters(report) == trainable_parameter_count(result.model)
    assert report.trainable_parameters == 4 + 6 + 16 + 16 * 10 + 10


def test_dora_in_mixed_precision_computes_in_the_policy_and_exports(source, tmp_path):
    result = _run(
        source, "dora", rank=2, epochs=1, precision="mixed_bfloat16", export=str(tmp_path / "x")
    )
    layer = get_layer(result.model, "conv2")
    assert isinstance(layer, AdaptedLayer) and layer.compute_dtype == "bfloat16"
    assert {v.dtype for v in layer.adapter_weights} == {"float32"}
    assert np.all(np.isfinite(result.report.history["loss"]))
    assert (tmp_path / "x" / "saved_model.pb").exists()
    assert keras.config.dtype_policy().name == "float32"


def test_mistakes_are_named(source):
    with pytest.raises(ValueError, match=r"`rank` must be an integer >= 1. Received: rank=0"):
        fine_tune(source, DATA, method="lora", rank=0)
    with pytest.raises(
        ValueError,
        match=r"`rank` applies to methods 'lora' and 'dora' only. Received: rank=4 with "
        r"method 'neon'",
    ):
        fine_tune(source, DATA, method="neon", rank=4)
    with pytest.raises(ValueError, match="`lora_dropout` applies to methods 'lora' and 'dora'"):
        FineTuneConfig(method="bitfit", lora_dropout=0.1)
    with pytest.raises(ValueError, match="`lora_dropout` must be a number in"):
        FineTuneConfig(method="lora", lora_dropout=1)
    with pytest.raises(ValueError, match="`bpa` cannot be combined with method 'dora'"):
        FineTuneConfig(method="dora", bpa=True)
    with pytest.raises(ValueError, match="`imported_rate` does not apply to method 'bitfit'"):
        FineTuneConfig(method="bitfit", imported_rate=0.1)
    with pytest.raises(ValueError, match="`lora_targets` entry 'block_9_\\*' matches no layer"):
        _run(source, "lora", lora_targets=["block_9_*"], warmup_epochs=0)
    with pytest.raises(TypeError, match="Layer 'primary_body/relu1' .* cannot be adapted"):
        _run(source, "lora", lora_targets="relu1", warmup_epochs=0)
    with pytest.raises(ValueError, match="would train nothing of the backbone: `frozen_levels`"):
        _run(source, "lora", lora_targets=["conv1"], frozen_levels=1, warmup_epochs=0)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    no_bias = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
    with pytest.raises(ValueError, match="'bitfit' would train nothing .* no bias vector"):
        _run(no_bias, "bitfit", warmup_epochs=0)
    # train_transfer_model with a PEFT method needs the adapted model
    model, body, head, report = build_transfer_model(source, (28, 28, 1), 10)
    with pytest.raises(ValueError, match="pass it through `fine_tuning.adapt_transfer_model`"):
        train_transfer_model(model, body, head, report, None, FineTuneConfig(method="lora"))


class _Crash(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:  # before that epoch's backup (`BackupAndRestore` comes last)
            raise RuntimeError("killed")


@pytest.mark.slow  # ~10 s; the resume path of fine_tune: test_one_call.py
def test_a_killed_lora_run_resumes_to_the_uninterrupted_weights(source, tmp_path):
    options = dict(rank=2, lora_dropout=0.2, epochs=3, batch_size=16)
    whole = _run(source, "lora", **options)
    backup = str(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="killed"):
        _run(source, "lora", backup_dir=backup, callbacks=[_Crash()], **options)
    resumed = _run(source, "lora", backup_dir=backup, **options)
    assert resumed.report.warmup_epochs == 0
    assert [v.path for v in resumed.model.weights] == [v.path for v in whole.model.weights]
    for got, want in zip(resumed.model.get_weights(), whole.model.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert resumed.report.history == whole.report.history
    assert not os.path.exists(backup) or not os.listdir(backup)


@pytest.mark.slow  # two devices: ~15 s
def test_lora_on_two_devices_gives_the_one_device_result(source, mirrored):
    options = dict(rank=2, epochs=3, batch_size=64, dropout=0.0)
    one = _run(source, "lora", **options)
    two = _run(source, "lora", distribution=mirrored, **options)
    assert two.report.replicas == 2
    for a, b in zip(one.model.weights, two.model.weights):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=0, atol=1e-6, err_msg=a.path)


def _one_line(capsys, argv):
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_fit_method_lora_rank_2_and_bad_ranks(source, capsys):
    argv = ["fit", source, DATA, "--samples-per-class", "3", "--warmup-epochs", "1"]
    assert main([*argv, "--method", "lora", "--rank", "2", "--epochs", "1", "--verbose", "2"]) == 0
    out = capsys.readouterr().out
    assert "method lora" in out and "lora on 3 layers, rank 2, scale 1" in out
    assert re.search(r"trainable parameters: [\d,]+ of [\d,]+ \(\d+\.\d%\)", out)
    line = _one_line(capsys, [*argv, "--method", "lora", "--rank", "0"])
    assert "argument --rank: expected a positive integer, got '0'" in line and "--help" in line
    line = _one_line(capsys, [*argv, "--method", "neon", "--rank", "2"])
    assert line.startswith("kerastransfer fit: error: `rank` applies to methods 'lora' and")
    line = _one_line(capsys, [*argv, "--method", "dora", "--lora-dropout", "1.5"])
    assert "argument --lora-dropout: expected a number in [0, 1)" in line
    config = FineTuneConfig(
        method="dora", rank=4, lora_alpha=8.0, lora_dropout=0.1, lora_targets=["fc1", "conv*"]
    )
    command = fit_command_line("MobileNetV2", DATA, config)
    assert "--rank 4 --lora-alpha 8 --lora-dropout 0.1 --lora-targets fc1,conv*" in command
    assert config_from_flags(build_parser().parse_args(command.split()[1:])) == config
