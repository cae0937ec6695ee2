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
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

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
    if not (path / "mnist_small.npz").exists():
        pytest.skip(f"needs ../shared/data beside the checkout (looked in {path})")
    return path


@pytest.fixture(scope="session")
def imagenet_weights():
    """Places the real ImageNet MobileNetV2 weights in `$KERAS_HOME/models/` (under every input-size
    name Keras uses: the convolution weights do not depend on it), so `weights="imagenet"` loads
    offline. Skips where ../shared/weights is absent."""
    src = SHARED / "weights" / MOBILENET_FILE
    if not src.exists():
        pytest.skip(f"needs ../shared/weights beside the checkout (looked for {src})")
    models = pathlib.Path(os.environ["KERAS_HOME"]) / "models"
    models.mkdir(parents=True, exist_ok=True)
    for size in (96, 128, 160, 192, 224):
        target = models / MOBILENET_FILE.replace("_224_", f"_{size}_")
        if not target.exists():
            os.symlink(src, target)
    return models
