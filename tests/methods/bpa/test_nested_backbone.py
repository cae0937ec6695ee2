"""BPA on a nested `keras.applications` backbone: MobileNetV2 with ImageNet weights, 32x32."""

import warnings

import keras
import numpy as np
import pytest

from kerastransfer.methods.bpa import BPAModel
from kerastransfer.methods.bpa.split_layers import resolve_split_layers
from kerastransfer.models import mobilenet_v2_classifier

C = 3
SHAPE = (32, 32, 3)


def classifier(seed=0):
    keras.utils.set_random_seed(seed)
    return mobilenet_v2_classifier(SHAPE, C, weights="imagenet", dropout=0.0)


def images(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n,) + SHAPE).astype("float32"), np.arange(n) % C


@pytest.fixture(scope="module")
def backbone_name(imagenet_weights):
    return classifier().layers[2].name  # "mobilenetv2_1.00_32"


def test_nested_names_resolve(backbone_name):
    model = classifier()
    inner = model.get_layer(backbone_name)
    assert resolve_split_layers(model) == [inner.get_layer("Conv1")]  # default: first Conv2D
    assert resolve_split_layers(model, f"{backbone_name}/block_1_expand") == [
        inner.get_layer("block_1_expand")
    ]
    with pytest.raises(ValueError, match=r"Did you mean.*Conv1"):
        resolve_split_layers(model, f"{backbone_name}/Conv2")
    with pytest.raises(ValueError, match="is a DepthwiseConv2D, not a Conv2D"):
        resolve_split_layers(model, f"{backbone_name}/expanded_conv_depthwise")


def test_bpa_on_imagenet_mobilenet_v2(backbone_name):
    x, y = images()
    split = f"{backbone_name}/Conv1"
    model = classifier()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every channel of Conv1 is tracked: no warning
        bpa = BPAModel(model, split_layers=split, gamma="agreement")
    assert bpa.unscaled_variables == []
    scales = bpa.gamma_scales
    assert scales["Conv1/kernel"].shape == (1, 1, 1, 32)
    assert scales["expanded_conv_depthwise/kernel"].shape == (1, 1, 32, 1)
    assert scales["expanded_conv_project/kernel"].shape == (1, 1, 32, 1)
    assert {"bn_Conv1/gamma", "expanded_conv_depthwise_BN/beta"} <= set(scales)
    # The variables scaled are the model's own (the flat view shares them).
    own = {id(v) for v in model.weights}
    assert all(id(v) in own for v, _, _ in bpa._scales.entries)

    # Exact masked passes on the nested graph: full passes with the other filters zeroed
    # (every 4th filter, to keep the test fast).
    gamma = bpa.compute_gamma((x, y))[split]
    assert gamma.shape == (32,) and gamma.max() == pytest.approx(1.0)
    conv1 = model.get_layer(backbone_name).get_layer("Conv1")
    (kernel,) = conv1.get_weights()
    naive, checked = [], range(0, 32, 4)
    for k in checked:
        conv1.set_weights([kernel * (np.arange(32) == k)])
        pred = np.argmax(model(x, training=False).numpy(), axis=-1)
        naive.append(np.bincount(y * C + pred, minlength=C * C).reshape(C, C))
    conv1.set_weights([kernel])
    np.testing.assert_array_equal(bpa.last_confusions[split][list(checked)], np.stack(naive))

    # One step: filter k's parameters move by Gamma_k times the plain step.
    gamma = np.linspace(0, 1, 32).astype("float32")
    bpa.set_gamma({split: gamma})
    plain = classifier()
    deltas = []
    for net in (plain, bpa):
        net.compile(
            optimizer=keras.optimizers.SGD(0.01),
            loss="sparse_categorical_crossentropy",
            run_eagerly=True,  # one step: tracing MobileNetV2 would cost more than the step
        )
        before = {v.path: v.numpy() for v in net.trainable_weights}
        net.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0)
        deltas.append({v.path: v.numpy() - before[v.path] for v in net.trainable_weights})
    for path, axis in (
        ("Conv1/kernel", 3),
        ("expanded_conv_depthwise/kernel", 2),
        ("expanded_conv_project/kernel", 2),
        ("bn_Conv1/gamma", 0),
    ):
        shape = [1] * deltas[0][path].ndim
        shape[axis] = 32
        np.testing.assert_allclose(
            deltas[1][path],
            deltas[0][path] * gamma.reshape(shape),
            rtol=2e-3,
            atol=1e-6,
            err_msg=path,
        )
    np.testing.assert_allclose(
        deltas[1]["block_1_expand/kernel"], deltas[0]["block_1_expand/kernel"], rtol=2e-3, atol=1e-6
    )


def test_nested_split_saves_and_loads(backbone_name, tmp_path):
    split = f"{backbone_name}/Conv1"
    bpa = BPAModel(classifier(), split_layers=split)
    gamma = np.linspace(0, 1, 32).astype("float32")
    bpa.set_gamma({split: gamma})
    x, _ = images(2)
    bpa.save(tmp_path / "bpa.keras")  # after the flat view called every layer once more
    loaded = keras.saving.load_model(tmp_path / "bpa.keras")
    assert loaded.split_layers == [split]
    np.testing.assert_allclose(loaded.gamma[split], gamma, rtol=1e-6)
    scale = loaded.gamma_scales["expanded_conv_project/kernel"]
    np.testing.assert_allclose(scale.ravel(), gamma, rtol=1e-6)
    np.testing.assert_allclose(loaded(x, training=False), bpa(x, training=False), atol=1e-5)
