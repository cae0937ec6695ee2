"""A LoRA-adapted network, merged, serves the adapted probabilities from SavedModel, ONNX and
LiteRT, each run in its own runtime in a fresh process."""

import os

import keras
import numpy as np

from kerastransfer.export import export_serving, verify_export
from kerastransfer.methods.peft import AdaptedLayer, apply_lora, merge_adapters


def test_merged_lora_exports_match_the_adapted_model_in_every_runtime(tmp_path):
    keras.utils.set_random_seed(3)
    L = keras.layers
    inputs = keras.Input((12, 12, 1))
    x = L.Rescaling(1 / 255)(inputs)
    x = L.Conv2D(6, 3, activation="relu", name="conv")(x)
    x = L.DepthwiseConv2D(3, activation="relu", name="depthwise")(x)
    x = L.SeparableConv2D(8, 3, activation="relu", name="separable")(x)
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(3, activation="softmax", name="head")(x)
    adapted = apply_lora(keras.Model(inputs, outputs), rank=2, seed=0)
    rng = np.random.default_rng(0)
    for layer in adapted.layers:
        if isinstance(layer, AdaptedLayer):  # a trained, nonzero update
            for weight in layer.adapter_weights:
                weight.assign(rng.normal(0, 0.3, weight.shape).astype("float32"))
    merged = merge_adapters(adapted)
    assert not any(isinstance(layer, AdaptedLayer) for layer in merged.layers)
    path = export_serving(
        merged, tmp_path / "lora", raw_shape=(12, 12, 1), formats=("saved_model", "onnx", "litert")
    )
    assert {"model.onnx", "model.tflite", "saved_model.pb"} <= set(os.listdir(path))
    images = rng.integers(0, 256, (5, 12, 12, 1), dtype=np.uint8)
    diffs = verify_export(adapted, path, images, atol=1e-4)  # against the unmerged model
    assert set(diffs) == {"saved_model", "onnx", "litert"} and max(diffs.values()) <= 1e-4
