import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from kerastransfer.cli import build_parser, main
from kerastransfer.fine_tuning import FineTuneConfig
from kerastransfer.models import small_cnn


def _error_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, no traceback
    return lines[0]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["fit", "MobileNetV2", "embedded:usps", "--method", "bogus"],
            "invalid choice: 'bogus' (choose from 'neon', 'discriminative'",
        ),
        (["fit", "MobileNetV2", "embedded:usps", "--epochs", "x"], "--epochs: expected a positive"),
        (["fit", "MobileNetV2", "embedded:usps", "--epochs", "0"], "--epochs: expected a positive"),
        (
            ["fit", "MobileNetV2", "embedded:usps", "--dropout", "1.5"],
            "--dropout: expected a number",
        ),
        (["fit", "MobileNetV2", "embedded:usps", "--formats", "saved_model,pdf"], "--formats"),
        (["fit", "MobileNetV2"], "required: data"),
        (
            ["fit", "MobileNetV2", "embedded:usps", "--devices", "0"],
            "--devices: expected a positive",
        ),
        (
            ["fit", "MobileNetV2", "embedded:usps", "--precision", "float16"],
            "--precision: invalid choice: 'float16' (choose from 'float32', 'mixed_float16'",
        ),
        (["fit", "MobileNetV2", "embedded:usps", "--bogus-flag"], "unrecognized arguments"),
        (["tune", "--trials", "-3"], "--trials: expected a positive integer"),
        # wrong forms that reached the run before (#18): named at the flag, before any data
        (
            ["fit", "MobileNetV2", "embedded:usps", "--learning-rate", "inf"],
            "argument --learning-rate: expected a positive number, got 'inf'",
        ),
        (
            ["fit", "MobileNetV2", "embedded:usps", "--warmup-learning-rate", "1e999"],
            "argument --warmup-learning-rate: expected a positive number",
        ),
        (
            ["fit", "MobileNetV2", "embedded:usps", "--augment", "flip,bogus"],
            "argument --augment: expected auto, none, a preset",
        ),
        (["fit", "MobileNetV2", "embedded:usps", "--image-size", "9x9"], "--image-size: expected"),
        (["fit", "MobileNetV2", "embedded:usps", "--groups", "2.5"], "--groups: expected a posit"),
        (["fit", "MobileNetV2", "embedded:usps", "--devices", "x"], "--devices: expected a posit"),
        (["gap", "m.keras", "--source", "s", "--target", "t", "--batch-size", "x"], "--batch-size"),
        (["gap", "m.keras", "--source", "s", "--target", "t", "--batches", "0"], "--batches: exp"),
        (["gap", "m.keras", "--source", "s", "--target", "t", "--seed", "-3"], "--seed: expected"),
        (["gap", "m.keras", "--source", "s", "--target", "t", "--layers", ","], "--layers: exp"),
        (["gap", "m.keras", "--source", "s"], "required: --target"),
        (["bogus"], "invalid choice: 'bogus'"),
        ([], "required: command"),
    ],
)
def test_wrong_forms_exit_2_with_one_line_naming_the_fix(capsys, argv, expected):
    line = _error_line(capsys, argv)
    assert expected in line and "--help" in line


def test_missing_data_and_unloadable_sources_exit_2_with_one_line(capsys, tmp_path):
    line = _error_line(capsys, ["fit", "MobileNetV2", str(tmp_path / "no_such_folder")])
    assert "No dataset at" in line and "embedded:" in line
    line = _error_line(capsys, ["fit", "MobileNetV2", "embedded:usps", "--augment", "flipp"])
    assert "argument --augment: expected auto" in line and "did you mean 'flip'" in line
    line = _error_line(capsys, ["fit", str(tmp_path / "missing.keras"), "embedded:usps"])
    assert "missing.keras" in line
    line = _error_line(capsys, ["fit", "MobileNetV9", "embedded:usps"])
    assert "Did you mean" in line and "MobileNetV2" in line
    line = _error_line(capsys, ["predict", str(tmp_path / "nothing"), "x.png"])
    assert "No export at" in line


def test_more_devices_than_there_are_exit_2_with_one_line(capsys):
    from kerastransfer.fine_tuning.devices import visible_gpus

    n = str(max(len(visible_gpus()), 1) + 1)  # one more than there are
    line = _error_line(capsys, ["fit", "MobileNetV2", "embedded:usps", "--devices", n])
    assert line.startswith(f"kerastransfer fit: error: argument --devices: {n} devices asked for")
    assert "--help" in line
    # the command's terminal: TensorFlow's device start-up lines (a CUDA probe) stay off it
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "kerastransfer", "fit", "MobileNetV2", "embedded:usps"]
        + ["--devices", n],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 2 and result.stderr == line + "\n", result.stderr


def test_devices_and_precision_reach_fine_tune(monkeypatch):
    import importlib

    package = importlib.import_module("kerastransfer.fine_tuning")  # the package, not the function
    calls = []
    monkeypatch.setattr(package, "fine_tune", lambda *a, **k: calls.append(k))
    argv = ["fit", "x.keras", "embedded:usps", "--devices", "1", "--precision", "mixed_bfloat16"]
    assert main(argv) == 0
    assert calls[0]["distribution"] == 1 and calls[0]["precision"] == "mixed_bfloat16"
    assert calls[0]["config"] == FineTuneConfig()  # every flag at fine_tune's default
    assert main(argv[:3] + ["--method", "neon", "--groups", "2", "--train-normalization"]) == 0
    assert calls[1]["distribution"] is None and calls[1]["precision"] is None
    assert calls[1]["config"] == FineTuneConfig(method="neon", groups=2, train_normalization=True)


def _png_folder(root, per_class=8):
    """Two classes of 20x20 RGB PNGs: dark and bright squares."""
    rng = np.random.default_rng(0)
    for name, level in (("dark", 40), ("bright", 210)):
        os.makedirs(root / name)
        for i in range(per_class):
            image = np.clip(rng.normal(level, 20, (20, 20, 3)), 0, 255).astype("uint8")
            keras.utils.save_img(str(root / name / f"{i}.png"), image)
    return root


def test_fit_on_a_folder_of_pngs_trains_exports_and_predicts(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    source = small_cnn((28, 28, 3), 10, filters=(4, 6), dense=16)
    source.save(tmp_path / "source.keras")
    images = _png_folder(tmp_path / "images")
    export = tmp_path / "export"
    rc = main(
        [
            "fit",
            str(tmp_path / "source.keras"),
            str(images),
            "--epochs",
            "2",
            "--warmup-epochs",
            "30",
            "--validation-split",
            "0.2",
            "--batch-size",
            "4",
            "--export",
            str(export),
            "--formats",
            "saved_model,onnx,litert",
            "--verbose",
            "0",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert {"saved_model.pb", "model.onnx", "model.tflite"} <= set(os.listdir(export))
    probe = [str(images / "dark" / "0.png"), str(images / "bright" / "0.png")]
    labels = {}
    for target in (export, export / "model.onnx", export / "model.tflite"):
        assert main(["predict", str(target), *probe]) == 0
        out = capsys.readouterr().out.strip().splitlines()
        assert [line.split("\t")[0] for line in out] == probe
        labels[str(target)] = [line.split("\t")[1] for line in out]
    assert all(
        v in (["dark", "bright"], ["bright", "bright"], ["dark", "dark"]) for v in labels.values()
    )
    assert len({tuple(v) for v in labels.values()}) == 1  # three runtimes, one answer
    # a second export onto the same folder replaces our own export
    assert (
        main(
            [
                "fit",
                str(tmp_path / "source.keras"),
                str(images),
                "--epochs",
                "1",
                "--warmup-epochs",
                "1",
                "--validation-split",
                "0.2",
                "--export",
                str(export),
                "--verbose",
                "0",
            ]
        )
        == 0
    )


def test_existing_commands_still_work(capsys):
    assert main(["data", "embedded:usps"]) == 0
    assert "classes: 10" in capsys.readouterr().out
    parser = build_parser()
    assert parser.parse_args(["inspect", "x.keras"]).command == "inspect"


_INSTALLED = os.path.join(os.path.dirname(sys.executable), "kerastransfer")


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "kerastransfer.cli"],
        [sys.executable, "-m", "kerastransfer"],
        pytest.param(
            [_INSTALLED],
            marks=pytest.mark.skipif(
                not os.path.exists(_INSTALLED), reason="no console script next to this Python"
            ),
        ),
    ],
    ids=["python -m kerastransfer.cli", "python -m kerastransfer", "console script"],
)
def test_the_installed_command_exits_2_with_exactly_one_line(command):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [*command, "fit", "MobileNetV2", "embedded:usps", "--method", "bogus"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 2
    # TensorFlow's native start-up lines are kept off the command's stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("kerastransfer fit: error: argument --method")


def test_a_library_import_keeps_tensorflows_own_output():
    script = "import kerastransfer, os; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    import_only = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
    )
    assert import_only.returncode == 0
    assert import_only.stdout.strip() == "None"  # the library does not change TF's logging


@pytest.mark.parametrize(
    "command, script",
    [
        ("bench", "benchmarks/bpa.py"),
        ("bench-dan", "benchmarks/domain_adaptation.py"),
        ("bench-spottune", "benchmarks/spottune.py"),
    ],
)
def test_a_moved_benchmark_command_exits_2_naming_its_script(capsys, command, script):
    assert main([command, "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"python {script}" in err[0], err
    assert (pathlib.Path(__file__).parents[1] / script).is_file()
