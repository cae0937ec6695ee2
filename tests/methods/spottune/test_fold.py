"""Folding blocks whose policy always picks one copy: same answers, smaller export."""

import keras
import numpy as np
import pytest

from kerastransfer.export import export_serving
from kerastransfer.methods.spottune import SpotTuneBlock, SpotTuneModel, fold_blocks


def conv_source():
    keras.utils.set_random_seed(0)
    L = keras.layers
    inputs = keras.Input((8, 8, 3), name="image")
    x = L.Rescaling(1 / 255.0, name="scale")(inputs)
    x = L.Conv2D(4, 3, padding="same", name="stem")(x)
    for b in (1, 2):
        h = L.Conv2D(4, 3, padding="same", activation="relu", name=f"b{b}_conv")(x)
        x = L.Add(name=f"b{b}_add")([x, h])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="head")(x))


def policy(block1_rule):
    """Block 1: always tuned ("always") or tuned iff the image is bright ("bright");
    block 2: always frozen."""
    inputs = keras.Input((8, 8, 3), name="spottune_policy_input")
    x = keras.layers.GlobalAveragePooling2D(name="spottune_policy_gap")(inputs)
    x = keras.layers.Dense(4, name="spottune_policy_logits")(x)
    out = keras.layers.Reshape((2, 2), name="spottune_policy_rs")(x)
    model = keras.Model(inputs, out, name="spottune_policy")
    kernel = np.zeros((3, 4), "float32")
    bias = np.array([0, 1, 1, 0], "float32")
    if block1_rule == "bright":
        kernel[:, 1], bias[1] = 0.1, -0.1 * 128 * 3
    model.get_layer("spottune_policy_logits").set_weights([kernel, bias])
    return model


def perturbed(model):
    rng = np.random.default_rng(1)
    for block in model.blocks:
        block.tuned.set_weights(
            [w + rng.normal(0, 0.3, w.shape).astype("float32") for w in block.tuned.get_weights()]
        )
    return model


def images(n=6):
    rng = np.random.default_rng(2)
    return np.concatenate(
        [rng.uniform(0, 60, (n // 2, 8, 8, 3)), rng.uniform(190, 255, (n - n // 2, 8, 8, 3))]
    ).astype("float32")


def test_every_block_folds_into_a_plain_model(tmp_path, serve_in_fresh_process):
    model = perturbed(
        SpotTuneModel.from_model(
            conv_source(), [("b1_conv", "b1_add"), ("b2_conv", "b2_add")], policy=policy("always")
        )
    )
    x = images()
    folded, report = fold_blocks(model, x)
    assert report["folded"] == {"b1_conv": "tuned", "b2_conv": "frozen"} and report["kept"] == []
    assert not isinstance(folded, SpotTuneModel)
    assert not any(isinstance(layer, SpotTuneBlock) for layer in folded.layers)
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    # One copy of each block (4*4*9 + 4 weights) and the policy (3*4 + 4) are gone.
    assert report["params_before"] - report["params_after"] == 2 * (4 * 4 * 9 + 4) + 16
    assert report["bytes_saved"] == 4 * (report["params_before"] - report["params_after"])
    path = export_serving(folded, tmp_path / "folded")
    served = serve_in_fresh_process(path, x.astype("uint8"))
    np.testing.assert_allclose(
        served["probabilities"],
        model.predict(x.astype("uint8").astype("float32"), verbose=0),
        atol=1e-5,
    )


def test_blocks_the_policy_still_splits_stay_routed(tmp_path):
    model = perturbed(
        SpotTuneModel.from_model(
            conv_source(), [("b1_conv", "b1_add"), ("b2_conv", "b2_add")], policy=policy("bright")
        )
    )
    x = images()
    np.testing.assert_array_equal(model.decisions(x).numpy()[:, 0], [0, 0, 0, 1, 1, 1])
    folded, report = fold_blocks(model, x)
    assert report["folded"] == {"b2_conv": "frozen"} and report["kept"] == ["b1_conv"]
    assert isinstance(folded, SpotTuneModel) and folded.block_names == ["b1_conv"]
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    folded.save(tmp_path / "folded.keras")
    reloaded = keras.saving.load_model(tmp_path / "folded.keras")
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
    # The folded model shares no weights with the original.
    model.blocks[0].tuned.set_weights([w * 0 for w in model.blocks[0].tuned.get_weights()])
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), folded.predict(x, verbose=0))
    with pytest.raises(ValueError, match="must be a SpotTuneModel"):
        fold_blocks(conv_source(), x)
    with pytest.raises(ValueError, match="empty"):
        fold_blocks(model, x[:0])
