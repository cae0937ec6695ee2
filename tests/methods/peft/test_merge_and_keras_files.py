"""Merged and adapted models agree; the adapted model round-trips through `.keras`, and the
merged one loads in a fresh Python process that never imports this package."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from kerastransfer.methods.peft import (
    AdaptedLayer,
    apply_dora,
    apply_lora,
    merge_adapters,
    trainable_parameter_count,
)
from kerastransfer.methods.peft.selection import leaf_layers

APPLY = {"lora": apply_lora, "dora": apply_dora}
# The merged model computes W' once, the adapted one at each call (same float32 ops): the two
# agree to float32 rounding of outputs of order 1.
TOLERANCE = dict(rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["lora", "dora"])
@pytest.mark.parametrize("kind", ["dense", "conv", "depthwise", "separable"])
def test_the_merged_model_matches_the_adapted_one(peft_models, kind, method):
    model = peft_models.one_layer(kind)
    adapted = APPLY[method](model, rank=2, alpha=4, seed=0)
    peft_models.randomize(adapted)
    merged = merge_adapters(adapted)
    x = peft_models.data(model)
    out = adapted.predict(x, verbose=0)
    np.testing.assert_allclose(merged.predict(x, verbose=0), out, **TOLERANCE)
    assert not np.allclose(out, model.predict(x, verbose=0), atol=1e-2)  # the update counts
    assert type(merged.get_layer("target")) is type(model.get_layer("target"))
    assert merged.count_params() == model.count_params()
    assert not any(isinstance(layer, AdaptedLayer) for _, layer in leaf_layers(merged))


def test_the_adapted_model_round_trips_through_a_keras_file(peft_models, tmp_path):
    adapted = apply_lora(peft_models.zoo(), rank=3, alpha=6, dropout=0.2, seed=5, train=["dense"])
    peft_models.randomize(adapted)
    adapted.save(tmp_path / "adapted.keras")
    loaded = keras.models.load_model(tmp_path / "adapted.keras")  # safe mode
    x = peft_models.data(adapted)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), adapted.predict(x, verbose=0))
    assert trainable_parameter_count(loaded) == trainable_parameter_count(adapted)
    layer = loaded.get_layer("separable")
    assert isinstance(layer, AdaptedLayer) and not layer.layer.trainable
    assert (layer.rank, layer.alpha, layer.dropout, layer.method) == (3, 6.0, 0.2, "lora")
    merged = merge_adapters(loaded)
    np.testing.assert_allclose(
        merged.predict(x, verbose=0), adapted.predict(x, verbose=0), **TOLERANCE
    )


LOAD_AND_PREDICT = """
import sys
import keras, numpy as np
model = keras.models.load_model(sys.argv[1])
assert "kerastransfer" not in sys.modules
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
print(",".join(type(layer).__name__ for layer in model.layers))
"""


def test_a_trained_merged_model_loads_in_a_fresh_process(peft_models, tmp_path):
    model = peft_models.zoo()
    adapted = apply_dora(model, rank=2, dropout=0.1, seed=0)
    adapted.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = peft_models.data(model, n=16)
    y = np.random.default_rng(2).normal(size=(16, 3)).astype("float32")
    adapted.fit(x, y, batch_size=8, epochs=2, verbose=0)
    merged = merge_adapters(adapted)
    expected = adapted.predict(x, verbose=0)
    assert not np.allclose(expected, model.predict(x, verbose=0), atol=1e-4)  # training counted
    np.testing.assert_allclose(merged.predict(x, verbose=0), expected, **TOLERANCE)

    merged.save(tmp_path / "merged.keras")
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, tmp_path / "merged.keras", tmp_path / "x.npy",
         tmp_path / "y.npy"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == (
        "InputLayer,Conv2D,DepthwiseConv2D,SeparableConv2D,GlobalAveragePooling2D,Dense"
    )
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, **TOLERANCE)


def test_merging_keeps_a_nested_model_nested(peft_models):
    inputs = keras.Input((8, 8, 4))
    inner = peft_models.zoo()
    outer = keras.Model(inputs, keras.layers.Dense(2, name="head")(inner(inputs)))
    adapted = apply_lora(outer, targets=["zoo/conv", "zoo/separable"], rank=2, train=["head"])
    peft_models.randomize(adapted)
    merged = merge_adapters(adapted)
    assert [type(layer).__name__ for layer in merged.layers] == [
        "InputLayer",
        "Functional",
        "Dense",
    ]
    assert type(merged.get_layer("zoo").get_layer("conv")) is keras.layers.Conv2D
    x = peft_models.data(outer)
    np.testing.assert_allclose(
        merged.predict(x, verbose=0), adapted.predict(x, verbose=0), **TOLERANCE
    )
