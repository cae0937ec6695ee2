"""A MobileNetV2 backbone nested in a functional model with a new head: adapted by layer class
and by path pattern, outputs unchanged before training, the original model left as it was."""

import keras
import numpy as np

from kerastransfer.methods.peft import (
    AdaptedLayer,
    apply_dora,
    apply_lora,
    merge_adapters,
    trainable_parameter_count,
)
from kerastransfer.methods.peft.selection import leaf_layers

L = keras.layers


def adapter_count(layer, r):
    """LoRA parameters of a plain Conv2D or DepthwiseConv2D layer at rank r."""
    kh, kw, c, out = layer.kernel.shape
    if isinstance(layer, L.DepthwiseConv2D):
        return r * (kh * kw + c * out)
    return r * (kh * kw * c + out)


def test_lora_by_layer_class_in_a_nested_backbone(mobilenet_with_head):
    model = mobilenet_with_head
    adapted = apply_lora(
        model, targets=[L.DepthwiseConv2D, L.Conv2D], rank=4, seed=0, train=["head"]
    )
    backbone = adapted.layers[1]
    assert isinstance(backbone, keras.Model) and backbone.name == model.layers[1].name
    convs = [
        (path, layer)
        for path, layer in leaf_layers(model)
        if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D))
    ]
    assert len(convs) == 52  # 35 Conv2D + 17 DepthwiseConv2D
    new = dict(leaf_layers(adapted))
    assert all(isinstance(new[path], AdaptedLayer) for path, _ in convs)
    assert not any(isinstance(layer, AdaptedLayer) for _, layer in leaf_layers(model))

    expected = sum(adapter_count(layer, 4) for _, layer in convs) + 1280 * 2 + 2
    assert trainable_parameter_count(adapted)[0] == expected
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        adapted.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
    assert type(merge_adapters(adapted).layers[1].get_layer("Conv1")) is L.Conv2D


def test_dora_by_path_pattern_skips_what_it_cannot_adapt(mobilenet_with_head):
    model = mobilenet_with_head
    backbone = model.layers[1].name
    adapted = apply_dora(model, targets=[f"{backbone}/block_1_*"], rank=2)
    chosen = [p for p, layer in leaf_layers(adapted) if isinstance(layer, AdaptedLayer)]
    assert chosen == [
        f"{backbone}/block_1_{name}" for name in ("expand", "depthwise", "project")
    ]  # the pattern also matches BatchNormalization, ReLU and padding layers: left alone
    x = np.random.default_rng(1).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        adapted.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    assert not any(layer.trainable for p, layer in leaf_layers(adapted) if p not in chosen)
