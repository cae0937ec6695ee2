"""Per-filter slices on real layer shapes, and exact masked passes on them."""

import warnings

import keras
import numpy as np
import pytest

from kerastransfer.methods.bpa import BPAModel
from kerastransfer.methods.bpa.channel_slices import channel_slices
from kerastransfer.methods.bpa.filter_costs import filter_confusions
from kerastransfer.methods.bpa.probing import filter_probe

C = 3
L = keras.layers


def head(x, pool="gap"):
    x = L.GlobalAveragePooling2D(name="gap")(x) if pool == "gap" else L.Flatten(name="flat")(x)
    return L.Dense(C, activation="softmax", name="head")(x)


def build(body, shape=(10, 10, 3), seed=4):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    split = L.Conv2D(4, 3, padding="same", name="split")(L.Rescaling(1 / 255)(inputs))
    return keras.Model(inputs, body(split, inputs), name="net")


def depthwise(s, _):
    x = L.ReLU()(L.BatchNormalization(name="bn")(s))
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = L.ReLU(name="relu_dw")(x)
    x = L.BatchNormalization(name="bn_dw")(x)  # BN after the activation
    return head(L.Conv2D(5, 1, name="pw")(x))


def separable(s, _):
    return head(L.SeparableConv2D(6, 3, name="sep")(L.ReLU()(s)), pool="flatten")


def grouped(s, _):
    return head(L.Conv2D(6, 3, groups=2, name="grouped")(L.ReLU()(s)), pool="flatten")


def add_branches(s, _):
    a = L.ReLU(name="a")(s)
    b = L.BatchNormalization(name="bn_b")(s)
    x = L.BatchNormalization(name="bn_sum")(L.Add(name="add")([a, b]))
    return head(L.Conv2D(5, 3, name="after_add")(x))


def flatten_dense(s, _):
    return head(L.MaxPooling2D(5)(L.ReLU()(s)), pool="flatten")


def gap_dense(s, _):
    return head(L.BatchNormalization(name="bn")(s))


def concatenated(s, inputs):
    other = L.Conv2D(3, 3, padding="same", name="other")(inputs)
    x = L.Concatenate(name="cat")([other, L.ReLU()(s)])
    return head(L.Conv2D(5, 3, name="after_cat")(x))


def owners(model, name="split"):
    found, unscaled = channel_slices(model, model.get_layer(name))
    return {v.path: o for v, o in found}, [v.path for v in unscaled]


def test_depthwise_pointwise_and_bn_after_activation():
    found, unscaled = owners(build(depthwise))
    k = np.arange(4)
    assert not unscaled
    np.testing.assert_array_equal(found["dw/kernel"].ravel(), k)  # kernel[:, :, k, :]
    assert found["dw/kernel"].shape == (1, 1, 4, 1)
    moved = np.repeat(k, 2)  # depth multiplier 2: channel k -> outputs 2k, 2k+1
    for path in ("dw/bias", "bn_dw/gamma", "bn_dw/beta"):
        np.testing.assert_array_equal(found[path], moved)
    np.testing.assert_array_equal(found["pw/kernel"].ravel(), moved)
    assert "pw/bias" not in found and "head/kernel" not in found


def test_separable_grouped_flatten_gap_concatenate_and_add():
    found, _ = owners(build(separable))
    np.testing.assert_array_equal(found["sep/depthwise_kernel"].ravel(), np.arange(4))
    np.testing.assert_array_equal(found["sep/pointwise_kernel"].ravel(), np.arange(4))
    found, _ = owners(build(grouped))
    # 2 groups of 2 input channels, 3 outputs each: channel k reads kernel[:, :, k % 2, group].
    expected = np.array([[0, 0, 0, 2, 2, 2], [1, 1, 1, 3, 3, 3]])
    np.testing.assert_array_equal(found["grouped/kernel"][0, 0], expected)
    found, _ = owners(build(flatten_dense))
    np.testing.assert_array_equal(found["head/kernel"].ravel(), np.tile(np.arange(4), 4))
    found, _ = owners(build(gap_dense))
    np.testing.assert_array_equal(found["head/kernel"].ravel(), np.arange(4))
    found, _ = owners(build(concatenated))
    np.testing.assert_array_equal(found["after_cat/kernel"].ravel(), [-1, -1, -1, 0, 1, 2, 3])
    found, _ = owners(build(add_branches))
    for path in ("bn_b/gamma", "bn_sum/gamma", "bn_sum/beta"):
        np.testing.assert_array_equal(found[path], np.arange(4))
    np.testing.assert_array_equal(found["after_add/kernel"].ravel(), np.arange(4))


def mixing(s, _):
    x = L.Softmax(axis=-1, name="channel_softmax")(s)
    x = L.Conv2D(5, 3, name="after_softmax")(x)
    return head(L.Reshape((8, 8, 5), name="reshape")(L.BatchNormalization(name="bn")(x)))


def test_mixed_channels_warn_once_and_are_listed():
    model = build(mixing)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bpa = BPAModel(model, split_layers="split")
    messages = [str(w.message) for w in caught if "not scaled by Gamma" in str(w.message)]
    assert len(messages) == 1 and "after_softmax/kernel" in messages[0]
    assert bpa.unscaled_variables == ["after_softmax/kernel", "after_softmax/bias"]
    assert set(bpa.gamma_scales) == {"split/kernel", "split/bias"}


def naive_confusions(model, name, x, y):
    """d full passes, split layer's other filters zeroed in its weights."""
    layer = model.get_layer(name) if "/" not in name else None
    if layer is None:
        outer, inner = name.split("/")
        layer = model.get_layer(outer).get_layer(inner)
    weights = layer.get_weights()
    out = []
    for k in range(layer.filters):
        keep = np.zeros(layer.filters, "float32")
        keep[k] = 1
        layer.set_weights([w * keep for w in weights])
        pred = np.argmax(keras.ops.convert_to_numpy(model(x, training=False)), axis=-1)
        m = np.zeros((C, C), np.int64)
        np.add.at(m, (y, pred), 1)
        out.append(m)
    layer.set_weights(weights)
    return np.stack(out)


@pytest.mark.parametrize(
    "body", [depthwise, separable, grouped, add_branches, flatten_dense, gap_dense, concatenated]
)
def test_masked_passes_are_exact(body):
    model = build(body)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, (24, 10, 10, 3)).astype("float32"), np.arange(24) % C
    probe = filter_probe(model, "split")
    (batched,) = filter_confusions([probe], (x, y), batch_size=12)
    np.testing.assert_array_equal(batched, naive_confusions(model, "split", x, y))


def sgd_step(model, x, y):
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    before = {v.path: v.numpy() for v in model.trainable_weights}
    model.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0)
    return {p: v.numpy() - before[p] for p, v in ((v.path, v) for v in model.trainable_weights)}


@pytest.mark.parametrize("body", [depthwise, grouped])
def test_gradients_scaled_by_owner(body):
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 255, (12, 10, 10, 3)).astype("float32"), np.arange(12) % C
    plain = sgd_step(build(body), x, y)
    gamma = np.array([1.0, 0.0, 0.5, 0.25], "float32")
    bpa = BPAModel(build(body), split_layers="split")
    bpa.set_gamma({"split": gamma})
    moved = sgd_step(bpa, x, y)
    found, _ = owners(bpa.network)
    for path, step in plain.items():
        owner = found.get(path)
        scale = 1.0 if owner is None else np.where(owner >= 0, gamma[np.maximum(owner, 0)], 1.0)
        np.testing.assert_allclose(moved[path], step * scale, rtol=1e-4, atol=1e-7, err_msg=path)
