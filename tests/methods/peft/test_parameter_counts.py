"""The trainable parameters are exactly the adapters' (LoRA, DoRA) or the biases (BitFit)."""

import keras
import pytest

from kerastransfer.methods.peft import (
    AdaptedLayer,
    apply_bitfit,
    apply_dora,
    apply_lora,
    max_rank,
    trainable_parameter_count,
)

L = keras.layers
APPLY = {"lora": apply_lora, "dora": apply_dora}


def expected_count(kind, r, method):
    """r (rows + cols) per kernel matrix, plus cols magnitudes per kernel for DoRA."""
    dora = method == "dora"
    if kind == "dense":  # kernel (5, 6)
        return r * (5 + 6) + 6 * dora
    if kind == "conv":  # kernel (3, 3, 4, 6) as (36, 6)
        return r * (3 * 3 * 4 + 6) + 6 * dora
    if kind == "depthwise":  # kernel (3, 3, 4, 2) as (9, 8)
        return r * (3 * 3 + 4 * 2) + 4 * 2 * dora
    # separable: depthwise (3, 3, 4, 3) as (9, 12) at rank min(r, 9); pointwise (12, 12) at r
    return min(r, 9) * (9 + 12) + r * (12 + 12) + (12 + 12) * dora


RANKS = {"dense": (1, 5), "conv": (3, 6), "depthwise": (2, 8), "separable": (4, 10)}
CASES = [(kind, r) for kind, ranks in RANKS.items() for r in ranks]


@pytest.mark.parametrize("method", ["lora", "dora"])
@pytest.mark.parametrize("kind, rank", CASES)
def test_trainable_count_is_the_formula(peft_models, kind, rank, method):
    model = peft_models.one_layer(kind)
    adapted = APPLY[method](model, rank=rank)
    trainable, total = trainable_parameter_count(adapted)
    base_total = trainable_parameter_count(model)[1]
    assert trainable == expected_count(kind, rank, method)
    assert total == base_total + trainable  # the base weights are all there, frozen
    layer = adapted.get_layer("target")
    assert isinstance(layer, AdaptedLayer)
    assert not layer.layer.trainable and all(not v.trainable for v in layer.layer.weights)


def test_max_rank_of_each_form(peft_models):
    ranks = {kind: max_rank(peft_models.one_layer(kind).get_layer("target")) for kind in RANKS}
    # min(5, 6); min(36, 6); min(9, 8) for 4 channels x 2; pointwise min(12, 12)
    assert ranks == {"dense": 5, "conv": 6, "depthwise": 8, "separable": 12}
    layer = L.DepthwiseConv2D(3, depth_multiplier=4)
    layer.build((None, 8, 8, 16))
    assert max_rank(layer) == 9  # 9 spatial values per filter, 64 filters


def bias_and_norm_model():
    inputs = keras.Input((6, 6, 3))
    x = L.Conv2D(4, 3, name="conv")(inputs)  # bias 4
    x = L.BatchNormalization(name="bn")(x)  # gamma, beta 4 + 4
    x = L.Conv2D(5, 1, use_bias=False, name="conv_no_bias")(x)
    x = L.Flatten()(x)
    x = L.LayerNormalization(name="ln")(x)  # gamma, beta 80 + 80
    return keras.Model(inputs, L.Dense(2, name="dense")(x))  # bias 2


def test_bitfit_counts_the_biases_and_with_the_option_the_norm_parameters():
    model = bias_and_norm_model()
    assert trainable_parameter_count(apply_bitfit(model))[0] == 4 + 2
    tuned = apply_bitfit(model, normalization=True)
    assert trainable_parameter_count(tuned)[0] == 4 + 2 + 8 + 160
    assert trainable_parameter_count(tuned)[1] == trainable_parameter_count(model)[1]
    names = sorted(v.path for v in tuned.trainable_weights)
    assert names == ["bn/beta", "bn/gamma", "conv/bias", "dense/bias", "ln/beta", "ln/gamma"]
    head = apply_bitfit(model, train=["dense"])
    assert trainable_parameter_count(head)[0] == 4 + 80 * 2 + 2


def test_train_keeps_a_head_fully_trainable(peft_models):
    model = peft_models.zoo()
    adapted = apply_lora(model, targets=["conv", "depthwise"], rank=2, train=["dense"])
    dense = model.get_layer("dense")
    assert (
        trainable_parameter_count(adapted)[0] == 2 * (36 + 6) + 2 * (9 + 12) + dense.count_params()
    )
    frozen = [adapted.get_layer("separable"), adapted.get_layer("pool")]
    assert not any(layer.trainable for layer in frozen)
