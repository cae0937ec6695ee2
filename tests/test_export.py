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
    path = export_serving(model, tmp_path_factory.mktemp("exports") / "model", raw_shape=(16, 16, 1))
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
    result = subprocess.run([cli, "show", "--dir", str(path), "--all"], capture_output=True, text=True, timeout=300)
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
