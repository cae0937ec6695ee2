"""Shared fixtures.

TensorFlow is configured here, before anything creates a device: two logical CPU devices so
`tf.distribute.MirroredStrategy` can be tested on a machine without GPUs. Only one strategy may
exist per process (a second one breaks collectives), hence the session-scoped `mirrored` fixture.
"""

import os
import pathlib
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Keras reads KERAS_HOME once, at import: point it at a private folder before anything imports it.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="kerastransfer-keras-home-")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("KERASTRANSFER_SHARED", REPO.parent / "shared"))
MOBILENET_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


@pytest.fixture(scope="session")
def mirrored():
    """The one MirroredStrategy of this test process, over two logical CPU devices."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def shared_data():
    """`../shared/data` (real MNIST, Fashion-MNIST, USPS); skips where it is absent."""
    path = SHARED / "data"
    if not (path / "mnist_small.npz").exists(): pytest.skip(f"needs ../shared/data beside the checkout (looked in {path})")  # noqa: E501,E701  # fmt: skip
    return path


@pytest.fixture(scope="session")
def imagenet_weights():
    """Places the real ImageNet MobileNetV2 weights in `$KERAS_HOME/models/` (under every input-size
    name Keras uses: the convolution weights do not depend on it), so `weights="imagenet"` loads
    offline. Skips where ../shared/weights is absent."""
    src = SHARED / "weights" / MOBILENET_FILE
    if not src.exists(): pytest.skip(f"needs ../shared/weights beside the checkout (looked for {src})")  # noqa: E501,E701  # fmt: skip
    models = pathlib.Path(os.environ["KERAS_HOME"]) / "models"
    models.mkdir(parents=True, exist_ok=True)
    for size in (96, 128, 160, 192, 224):
        target = models / MOBILENET_FILE.replace("_224_", f"_{size}_")
        if not target.exists():
            os.symlink(src, target)
    return models


_SERVE_SCRIPT = """
import sys, numpy as np, tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
images = np.load(sys.argv[2])
signature = "serve" if images.dtype == np.uint8 else "serve_float"
out = getattr(served, signature)(tf.constant(images))
np.savez(sys.argv[3], probabilities=out["probabilities"].numpy(), label=out["label"].numpy())
"""


def _run_python(script, *args):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="session")
def run_python():
    """`run(script, *args) -> CompletedProcess`: runs `python -c script args...` in a fresh
    process (nothing of this one imported or registered) and fails the test if it fails."""
    return _run_python


@pytest.fixture
def serve_in_fresh_process(tmp_path):
    """`serve(path, images) -> {"probabilities", "label"}`: loads a SavedModel export with
    `tf.saved_model.load` in a new Python process and runs its `serve` signature (uint8 images) or
    `serve_float` (float images), as a serving system would."""
    import numpy as np

    def serve(path, images):
        np.save(tmp_path / "serve_images.npy", images)
        _run_python(_SERVE_SCRIPT, path, tmp_path / "serve_images.npy", tmp_path / "served.npz")
        return dict(np.load(tmp_path / "served.npz"))

    return serve


RECIPES = REPO / "recipes"


def _load_module(path, name=None):
    import importlib.util
    import sys

    path = pathlib.Path(path)
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # a recipe imports its sibling `_common`
    spec = importlib.util.spec_from_file_location(name or f"loaded_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def copy_embedded():
    """`copy(name, path) -> path`: writes the embedded sample `name` ("usps", "mnist",
    "fashion_mnist") to the `.npz` file `path` as shipped (`x_train, y_train, x_test, y_test`,
    native uint8 images), as a user's own file; its folders are made."""
    import importlib.resources
    import shutil

    def copy(name, path):
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        embedded = importlib.resources.files("kerastransfer.data") / "embedded" / f"{name}.npz"
        with importlib.resources.as_file(embedded) as source:
            shutil.copyfile(source, path)
        return path

    return copy


@pytest.fixture(scope="session")
def load_module():
    """`load(path)`: imports a Python file that is not in a package (a test helper script)."""
    return _load_module


@pytest.fixture(scope="session")
def load_recipe():
    """`load(name)`: imports `recipes/<name>.py` as a module (its `main(argv)` runs the recipe)."""
    return lambda name: _load_module(RECIPES / f"{name}.py", f"recipe_{name}")


@pytest.fixture(scope="session")
def load_benchmark():
    """`load(name)`: imports `benchmarks/<name>.py` as a module (its `main(argv)` runs it)."""
    return lambda name: _load_module(REPO / "benchmarks" / f"{name}.py", f"benchmark_{name}")
