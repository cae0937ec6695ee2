import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kerastransfer.data import to_image_shape
from kerastransfer.export import atomic_write, export_serving
from kerastransfer.models import small_cnn


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = small_cnn((28, 28, 3), 4, filters=(4, 6), dense=8)
    rng = np.random.default_rng(0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(rng.uniform(0, 255, (32, 28, 28, 3)), rng.integers(0, 4, 32), verbose=0)
    path = export_serving(
        model, tmp_path_factory.mktemp("exports") / "model", raw_shape=(16, 16, 1)
    )
    return model, path


def test_export_serves_raw_images_in_a_fresh_process(exported, serve_in_fresh_process):
    model, path = exported
    images = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 1), dtype=np.uint8)
    expected = model(to_image_shape(images, (28, 28, 3)), training=False).numpy()
    for raw in (images, images.astype(np.float32)):  # `serve` and `serve_float`
        out = serve_in_fresh_process(path, raw)
        np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
        np.testing.assert_array_equal(out["label"], expected.argmax(-1))
        np.testing.assert_allclose(out["probabilities"].sum(-1), 1.0, atol=1e-5)


def test_saved_model_cli_shows_the_serve_signature(exported):
    _, path = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run(
        [cli, "show", "--dir", str(path), "--all"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "signature_def['serve']" in result.stdout
    assert "dtype: DT_UINT8" in result.stdout and "shape: (-1, 16, 16, 1)" in result.stdout


def test_export_is_atomic(tmp_path):
    target = tmp_path / "export"

    def good(version):
        def write(path):
            with open(os.path.join(path, "version"), "w") as f:
                f.write(version)

        return write

    def crash(path):
        with open(os.path.join(path, "version"), "w") as f:
            f.write("half")
        raise OSError("disk full")

    atomic_write(target, good("1"))
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, crash)
    assert (target / "version").read_text() == "1"
    atomic_write(target, good("2"))
    assert (target / "version").read_text() == "2"
    assert sorted(os.listdir(tmp_path)) == ["export"]  # no temporary folders left


def test_export_refuses_models_without_a_fixed_image_input(tmp_path):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ValueError, match="fixed image input"):
        export_serving(model, tmp_path / "x")
    with pytest.raises(ValueError, match="raw_shape"):
        export_serving(small_cnn(), tmp_path / "x", raw_shape=(28, 28, 2))


# ---- nothing silent: ownership, kills, empty batches -------------------------------------------


def test_export_never_replaces_what_it_did_not_write(tmp_path):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(FileExistsError, match="did not write.*Delete it yourself"):
        export_serving(small_cnn(filters=(4, 6), dense=8), precious)
    assert (precious / "thesis.txt").read_text() == "years of work"
    a_file = tmp_path / "model"
    a_file.write_text("not an export")
    with pytest.raises(FileExistsError, match="is a file"):
        atomic_write(a_file, lambda path: None)
    assert a_file.read_text() == "not an export"


_KILL_SCRIPT = """
import os, signal, sys
import kerastransfer.export.atomic as atomic
target, mode = sys.argv[1], sys.argv[2]
def write(version):
    def fill(path):
        for i in range(3):
            with open(os.path.join(path, f"part{i}"), "w") as f:
                f.write(version)
    return fill
atomic.atomic_write(target, write("1"))
if mode == "fallback":
    atomic._renameat2 = None  # a file system without RENAME_EXCHANGE
real_replace = os.replace
def replace(src, dst):
    if os.path.abspath(dst) == os.path.abspath(target):
        os.kill(os.getpid(), signal.SIGKILL)  # killed as the new export moves into place
    return real_replace(src, dst)
os.replace = replace
atomic.atomic_write(target, write("2"))
"""


def _complete_version(path):
    parts = {(path / f"part{i}").read_text() for i in range(3)}
    assert len(parts) == 1, parts
    return parts.pop()


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_a_kill_while_swapping_never_leaves_the_destination_without_an_export(tmp_path, mode):
    target = tmp_path / "export"
    result = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, str(target), mode],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if mode == "exchange":
        assert result.returncode == 0, result.stderr[-2000:]  # one atomic step: nothing to kill
        assert _complete_version(target) == "2"
    else:
        assert result.returncode == -9  # killed between the two renames
        from kerastransfer.export import recover

        recover(target)  # what the next export does first
        assert _complete_version(target) == "1"
        atomic_write(target, lambda path: open(os.path.join(path, "part0"), "w").close())
    assert sorted(os.listdir(tmp_path)) == ["export"]


class _Killed(BaseException):
    """The process died here: nothing after this file system operation happens."""


def _fill(version):
    def fill(path):
        for i in range(3):
            with open(os.path.join(path, f"part{i}"), "w") as f:
                f.write(version)

    return fill


def test_without_folder_exchange_a_kill_at_any_step_leaves_an_export(tmp_path, monkeypatch):
    """The fallback (no RENAME_EXCHANGE): the destination reads as a complete export, old or
    new, before and after every file system operation, and after a kill at any of them."""
    import shutil

    import kerastransfer.export.atomic as atomic

    monkeypatch.setattr(atomic, "_renameat2", None)  # a file system without RENAME_EXCHANGE
    target = tmp_path / "export"
    real = {name: getattr(os, name) for name in ("replace", "rename", "symlink", "unlink")}
    real["rmtree"] = shutil.rmtree
    state = {"ops": 0, "kill_at": None, "expected": None}

    def counted(name):
        def op(*args, **kwargs):
            if state["expected"] is not None:
                assert _complete_version(target) in state["expected"]  # what a reader sees
            if state["kill_at"] is not None and state["ops"] >= state["kill_at"]:
                raise _Killed
            state["ops"] += 1
            result = real[name](*args, **kwargs)
            if state["expected"] is not None:
                assert _complete_version(target) in state["expected"]
            return result

        return op

    for name in ("replace", "rename", "symlink", "unlink"):
        monkeypatch.setattr(os, name, counted(name))
    monkeypatch.setattr(shutil, "rmtree", counted("rmtree"))

    atomic_write(target, _fill("1"))
    assert os.path.islink(target)  # a link to a hidden export folder from the start
    state["ops"] = 0
    state["expected"] = {"1", "2"}
    atomic_write(target, _fill("2"))  # every step checked, none killed
    steps = state["ops"]
    assert _complete_version(target) == "2" and steps >= 3
    for kill_at in range(steps + 1):
        state.update(ops=0, kill_at=None, expected=None)
        atomic_write(target, _fill("1"))
        state.update(ops=0, kill_at=kill_at, expected={"1", "2"})
        try:
            atomic_write(target, _fill("2"))
        except _Killed:
            pass
        state.update(kill_at=None)
        assert _complete_version(target) in {"1", "2"}, kill_at  # no `recover` needed
        state.update(expected=None)
        atomic_write(target, _fill("3"))  # the next export cleans up what the kill left
        assert _complete_version(target) == "3"
        left = sorted(os.listdir(tmp_path))  # the link and the one folder it points to
        assert len(left) == 2 and left[0].startswith(".export.export-"), (kill_at, left)


def test_a_linked_export_loads_and_is_replaced_only_as_ours(tmp_path, monkeypatch):
    import tensorflow as tf

    import kerastransfer.export.atomic as atomic

    monkeypatch.setattr(atomic, "_renameat2", None)
    model = small_cnn((12, 12, 1), 3, filters=(2, 3), dense=4)
    path = export_serving(model, tmp_path / "model")
    path = export_serving(model, tmp_path / "model")  # replaces its own link
    assert os.path.islink(path)
    served = tf.saved_model.load(str(path))
    assert served.serve(tf.zeros((2, 12, 12, 1), tf.uint8))["label"].shape == (2,)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "foreign")  # a link we did not make
    with pytest.raises(FileExistsError, match="did not write"):
        atomic_write(tmp_path / "foreign", _fill("1"))


def test_serve_answers_an_empty_batch_with_empty_results(exported):
    import tensorflow as tf

    _, path = exported
    served = tf.saved_model.load(str(path))
    for signature, dtype in ((served.serve, tf.uint8), (served.serve_float, tf.float32)):
        out = signature(tf.zeros((0, 16, 16, 1), dtype))
        assert out["probabilities"].shape == (0, 4) and out["label"].shape == (0,)
    assert served.serve(tf.zeros((1, 16, 16, 1), tf.uint8))["label"].shape == (1,)


def test_exporting_a_training_wrapper_exports_the_model_it_wraps(tmp_path):
    import tensorflow as tf

    from kerastransfer.methods.bpa import BPAModel
    from kerastransfer.methods.domain_adaptation import DANModel

    net = small_cnn((12, 12, 1), 3, filters=(2, 3), dense=4)
    images = np.random.default_rng(0).uniform(0, 255, (2, 12, 12, 1)).astype("float32")
    expected = net(images, training=False).numpy()
    for wrapper in (BPAModel(net), DANModel(net, ["fc1"])):
        path = export_serving(wrapper, tmp_path / type(wrapper).__name__)
        served = tf.saved_model.load(str(path))
        out = served.serve_float(tf.constant(images))["probabilities"].numpy()
        np.testing.assert_allclose(out, expected, atol=1e-5)


def test_a_subclassed_model_without_an_input_shape_is_named(tmp_path):
    class Plain(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="has none. Export the functional model it wraps"):
        export_serving(Plain(name="plain"), tmp_path / "x")


# ---- ONNX and LiteRT -------------------------------------------------------------------------


def test_onnx_and_litert_give_the_keras_probabilities_in_their_runtimes(tmp_path):
    from kerastransfer.export import load_predictor, verify_export

    keras.utils.set_random_seed(1)
    model = small_cnn((28, 28, 1), 3, filters=(4, 6), dense=8)
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.uniform(0, 255, (24, 28, 28, 1)), rng.integers(0, 3, 24), verbose=0)
    path = export_serving(
        model,
        tmp_path / "all",
        raw_shape=(20, 20, 1),
        formats=("saved_model", "onnx", "litert"),
        class_names=["a", "b", "c"],
    )
    assert {"model.onnx", "model.tflite", "saved_model.pb"} <= set(os.listdir(path))
    images = rng.integers(0, 256, (6, 20, 20, 1), dtype=np.uint8)
    diffs = verify_export(model, path, images, atol=1e-4)  # each runtime in a fresh process
    assert set(diffs) == {"saved_model", "onnx", "litert"} and max(diffs.values()) <= 1e-4
    expected = model(to_image_shape(images, (28, 28, 1)), training=False).numpy()
    onnx = load_predictor(os.path.join(path, "model.onnx"))
    assert onnx.format == "onnx" and onnx.class_names == ["a", "b", "c"]
    assert onnx.labels(onnx(images)) == [["a", "b", "c"][i] for i in expected.argmax(-1)]


class _PythonOp(keras.layers.Layer):
    """A layer calling back into Python: no converter can put it in a file."""

    def call(self, x):
        import tensorflow as tf

        y = tf.numpy_function(lambda a: a * 2, [x], tf.float32, stateful=False)
        y.set_shape(x.shape)
        return y


@pytest.mark.parametrize("fmt", ["litert", "onnx"])
def test_a_layer_a_format_cannot_hold_is_named(tmp_path, fmt):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = _PythonOp(name="python_callback")(keras.layers.Dense(3, name="dense")(x))
    model = keras.Model(inputs, keras.layers.Softmax()(x))
    with pytest.raises(ValueError, match=r"layer 'python_callback' \(_PythonOp\)"):
        export_serving(model, tmp_path / "x", formats=("saved_model", fmt))
    assert not os.path.exists(tmp_path / "x")  # nothing half-written


def test_bad_export_arguments_and_unreadable_exports_are_named(tmp_path, exported):
    from kerastransfer.export import load_predictor

    model = small_cnn((12, 12, 1), 3, filters=(2, 3), dense=4)
    with pytest.raises(ValueError, match=r"`raw_shape` must be .*positive integers or None"):
        export_serving(model, tmp_path / "a", raw_shape=(-1, 12, 1))
    binary = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(1, "sigmoid")]
    )
    with pytest.raises(ValueError, match=r"2 or more classes.*Dense\(2, activation='softmax'\)"):
        export_serving(binary, tmp_path / "b")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match=r"inside '.*file', which is a file"):
        export_serving(model, tmp_path / "file" / "export")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no SavedModel"):
        load_predictor(tmp_path / "empty")
    (tmp_path / "model.tflite").write_text("garbage")
    with pytest.raises(ValueError, match=r"Cannot read .*model.tflite' as a LiteRT.*again"):
        load_predictor(tmp_path / "model.tflite")
    predictor = load_predictor(exported[1])
    images = np.full((2, 16, 16, 1), np.nan, np.float32)
    with pytest.raises(ValueError, match=r"`images` must be finite.*images \[0, 1\]"):
        predictor(images)
