"""The `kerastransfer` command and the recipes print only their own output: TensorFlow's native
start-up lines are hidden (kerastransfer/_command_startup.py) and come back with
`TF_CPP_MIN_LOG_LEVEL=0`, or when something fails."""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from kerastransfer.export import export_serving
from kerastransfer.models import small_cnn

REPO = pathlib.Path(__file__).resolve().parents[1]
STARTUP = REPO / "kerastransfer" / "_command_startup.py"
# absl's line prefix (I0000 00:00:...), and the lines of a CPU machine's import and CUDA probe
NATIVE = re.compile(
    r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN custom operations|Could not find cuda drivers"
    r"|This TensorFlow binary is optimized|failed call to cuInit",
    re.MULTILINE,
)


def _run(argv, *, show=False, cwd=None, env=None):
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERASTRANSFER_QUIET_STARTUP")
        },
        **(env or {}),
    }
    if show:
        env["TF_CPP_MIN_LOG_LEVEL"] = "0"
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env=env, cwd=cwd or REPO
    )


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    keras.utils.set_random_seed(0)
    export_serving(small_cnn((8, 8, 1), 2, filters=(2,), dense=4), root / "export")
    keras.utils.save_img(str(root / "image.png"), np.zeros((8, 8, 1), "uint8"))
    return root / "export", root / "image.png"


def test_kerastransfer_predict_prints_only_its_own_lines(tiny_export):
    export, image = tiny_export
    argv = [sys.executable, "-m", "kerastransfer", "predict", str(export), str(image)]
    quiet = _run(argv)  # imports TensorFlow, lists devices (the CUDA probe), runs the model
    assert quiet.returncode == 0, quiet.stderr
    assert not NATIVE.search(quiet.stdout + quiet.stderr), quiet.stderr
    assert quiet.stdout.startswith(f"{image}\t") and quiet.stdout.count("\n") == 1
    shown = _run(argv, show=True)
    assert shown.returncode == 0 and shown.stdout == quiet.stdout
    assert NATIVE.search(shown.stderr), shown.stderr


def test_a_recipe_prints_only_its_own_lines(tmp_path):
    argv = [sys.executable, "recipes/bpa_paper.py", "--help"]
    quiet = _run(argv)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("usage: ")
    assert not NATIVE.search(quiet.stdout + quiet.stderr), quiet.stderr
    shown = _run(argv, show=True)
    assert shown.returncode == 0 and shown.stdout == quiet.stdout
    assert NATIVE.search(shown.stderr), shown.stderr
    tiny = ["--pairs", "usps:mnist", "--seeds", "1", "--samples-per-class", "3"]
    tiny += ["--primary-epochs", "1", "--epochs", "1", "--saved-models", str(tmp_path)]
    run = _run([sys.executable, "recipes/bpa_paper.py", *tiny])  # training, the table printed
    assert run.returncode == 0, run.stderr
    assert "Tables 2-3" in run.stdout
    assert not NATIVE.search(run.stdout + run.stderr), run.stderr


# A block that prints a native line (os.write to fd 2) and a Python warning, then ends as asked;
# the module is loaded from its file, without the package (and TensorFlow).
_BLOCK = f"""
import importlib.util, os, signal, sys, time, warnings
spec = importlib.util.spec_from_file_location("startup", {str(STARTUP)!r})
startup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(startup)
os.environ["KERASTRANSFER_QUIET_STARTUP"] = "1"
with startup.quiet_native_output():
    os.write(2, b"I0000 00:00:1.0 1 native.cc:1] a native line\\n")
    warnings.warn("a Python warning")
    if sys.argv[1] == "raise":
        raise RuntimeError("the import failed")
    if sys.argv[1] == "abort":
        os.abort()
    if sys.argv[1] == "interrupt":  # Ctrl-C reaches the keeper too: it goes on
        os.kill(startup._keeper.pid, signal.SIGINT)
        time.sleep(0.2)
        raise KeyboardInterrupt
# after the block: one of the benign lines (dropped), then any other native line (shown)
os.write(2, b"E0000 00:00:1796515527.6 20107 cuda_platform.cc:52] failed call to cuInit: "
            b"INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\\n")
os.write(2, b"E0000 00:00:1.0 1 native.cc:2] a line after the block\\n")
print("done", startup._keeper.pid)
"""


@pytest.mark.parametrize("end", ["ok", "raise", "abort", "interrupt"])
def test_captured_lines_come_back_when_the_block_fails(end):
    result = _run([sys.executable, "-c", _BLOCK, end])
    assert "UserWarning: a Python warning" in result.stderr  # Python's output is not captured
    if end == "ok":
        assert result.returncode == 0 and result.stdout.startswith("done "), result.stderr
        assert "a native line" not in result.stderr and "cuInit" not in result.stderr
        assert result.stderr.endswith("native.cc:2] a line after the block\n"), result.stderr
        keeper = pathlib.Path("/proc", result.stdout.split()[1])
        assert not keeper.exists() or "zombie" not in (keeper / "status").read_text()
    else:  # an exception (lines before its traceback) or a crash: the lines are shown
        assert result.returncode != 0 and "a native line" in result.stderr, result.stderr
    if end in ("raise", "interrupt"):
        assert result.stderr.index("a native line") < result.stderr.index("Traceback")


# A training run whose tf.data pipeline TensorFlow rewrites under op determinism (a random
# augmentation layer's seed generator is a stateful op): TensorFlow logs "NodeDef mentions
# attribute use_unbounded_threadpool ..." at E level in the middle of the run.
_TRAINING = """
import os
print("start", flush=True)
import kerastransfer  # first, as a recipe does
import keras
import tensorflow as tf
tf.config.experimental.enable_op_determinism()
keras.utils.set_random_seed(0)
data = kerastransfer.data.load_dataset(
    "embedded:mnist", samples_per_class=4, batch_size=8, augment="digits"
)
print("loaded", flush=True)
model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10)])
model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(data.train, epochs=1, verbose=0)
print("fitted", flush=True)
"""


@pytest.mark.parametrize("show", [False, True], ids=["quiet", "TF_CPP_MIN_LOG_LEVEL=0"])
def test_a_training_run_prints_no_native_line(show):
    env = {"KERASTRANSFER_QUIET_STARTUP": "1"}
    result = _run([sys.executable, "-c", _TRAINING], show=show, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "start\nloaded\nfitted\n"
    node_def = r"node_def_util.cc:\d+\] NodeDef mentions attribute use_unbounded_threadpool"
    if show:
        assert re.search(node_def, result.stderr), result.stderr
    else:
        assert not NATIVE.search(result.stdout + result.stderr), result.stderr


def test_any_other_native_line_still_shows():
    script = (
        "import os\nimport kerastransfer\n"
        "os.write(2, b'E0000 00:00:1.0 1 something.cc:1] a real error\\n')\nprint('after')\n"
    )
    result = _run([sys.executable, "-c", script], env={"KERASTRANSFER_QUIET_STARTUP": "1"})
    assert result.returncode == 0 and result.stdout == "after\n", result.stderr
    assert NATIVE.findall(result.stderr) == ["E0000 "], result.stderr
    assert "E0000 00:00:1.0 1 something.cc:1] a real error\n" in result.stderr


def test_a_library_import_is_untouched():
    spec = importlib.util.spec_from_file_location("startup", STARTUP)
    startup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(startup)
    assert not startup.running_as_command()  # pytest imports kerastransfer as a library
    result = _run([sys.executable, "-c", "import kerastransfer"], show=False)
    assert result.returncode == 0 and NATIVE.search(result.stderr), result.stderr
