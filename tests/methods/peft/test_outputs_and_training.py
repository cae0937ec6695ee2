"""A fresh adapter changes nothing; training moves the adapters only; dropout acts on the adapter
path only."""

import keras
import numpy as np
import pytest

from kerastransfer.methods.peft import AdaptedLayer, apply_dora, apply_lora

APPLY = {"lora": apply_lora, "dora": apply_dora}
RANK = {"dense": 3, "conv": 3, "depthwise": 5, "separable": 10}


@pytest.mark.parametrize("method", ["lora", "dora"])
@pytest.mark.parametrize("kind", ["dense", "conv", "depthwise", "separable"])
def test_a_fresh_adapter_leaves_the_outputs_unchanged(peft_models, kind, method):
    model = peft_models.one_layer(kind)
    adapted = APPLY[method](model, rank=RANK[kind], alpha=16, seed=1)
    x = peft_models.data(model)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(adapted.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)
    layer = adapted.get_layer("target")
    assert all(not np.any(v.numpy()) for v in layer.adapter_weights if "lora_b" in v.name)
    if method == "dora":  # m = ||W|| per output unit: per (channel, multiplier) for depthwise
        kernel = model.get_layer("target").weights[-2 if kind == "separable" else 0].numpy()
        depthwise = kind == "depthwise"
        columns = kernel.reshape(9, -1) if depthwise else kernel.reshape(-1, kernel.shape[-1])
        magnitude = layer.adapter_weights[-1].numpy()
        np.testing.assert_allclose(magnitude, np.linalg.norm(columns, axis=0), rtol=1e-6)


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_training_moves_the_adapters_and_not_the_base(peft_models, method):
    model = peft_models.zoo()
    adapted = APPLY[method](model, rank=2, dropout=0.1, seed=0)
    layers = [adapted.get_layer(n) for n in ("conv", "depthwise", "separable", "dense")]
    base_before = [[v.numpy().copy() for v in layer.layer.weights] for layer in layers]
    adapters_before = [[v.numpy().copy() for v in layer.adapter_weights] for layer in layers]
    original = [v.numpy().copy() for v in model.weights]

    adapted.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    x = peft_models.data(model, n=24)
    y = np.random.default_rng(1).normal(size=(24, 3)).astype("float32")
    adapted.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 3 steps

    for layer, base, adapters in zip(layers, base_before, adapters_before):
        for v, old in zip(layer.layer.weights, base):
            np.testing.assert_array_equal(v.numpy(), old)  # bit-identical base
        for v, old in zip(layer.adapter_weights, adapters):
            assert not np.array_equal(v.numpy(), old), f"{layer.name}/{v.name} did not move"
    for v, old in zip(model.weights, original):  # the model adapted is a copy
        np.testing.assert_array_equal(v.numpy(), old)


def test_the_base_stays_frozen_when_the_whole_model_is_set_trainable(peft_models):
    adapted = apply_lora(peft_models.zoo(), rank=2)
    adapted.trainable = True
    trainable = {id(v) for v in adapted.trainable_weights}
    for name in ("conv", "depthwise", "separable", "dense"):
        layer = adapted.get_layer(name)
        assert not any(id(v) in trainable for v in layer.layer.weights)
        assert all(id(v) in trainable for v in layer.adapter_weights)


def test_dropout_acts_on_the_adapter_path_only(peft_models):
    model = peft_models.one_layer("conv")
    adapted = apply_lora(model, rank=2, dropout=0.5, seed=0)
    x = peft_models.data(model)
    # B = 0: the adapter path adds nothing, so dropout leaves the base output exact in training
    np.testing.assert_allclose(adapted(x, training=True), model(x), rtol=1e-6, atol=1e-6)
    peft_models.randomize(adapted)
    layer = adapted.get_layer("target")
    merged = keras.ops.conv(x, layer.merged_kernel()) + layer.layer.bias
    np.testing.assert_allclose(adapted(x, training=False), merged, rtol=1e-5, atol=1e-5)
    assert not np.allclose(adapted(x, training=True), merged, atol=1e-3)  # dropout is active
    plain = apply_lora(model, rank=2, seed=0)
    peft_models.randomize(plain)
    np.testing.assert_array_equal(plain(x, training=True), plain(x, training=False))


def test_an_adapted_layer_alone_wraps_a_built_base():
    base = keras.layers.SeparableConv2D(4, 3)
    base.build((None, 6, 6, 2))
    adapted = AdaptedLayer(base, rank=2, method="dora", seed=3)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(adapted(x), base(x), rtol=1e-6, atol=1e-6)
    assert adapted.name == base.name and not base.trainable
    depthwise, pointwise = adapted.merged_kernel()
    assert depthwise.shape == (3, 3, 2, 1) and pointwise.shape == (1, 1, 2, 4)
