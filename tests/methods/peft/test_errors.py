"""Each bad input is refused early, with a message that says what and where."""

import keras
import pytest

from kerastransfer.methods.peft import (
    AdaptedLayer,
    apply_bitfit,
    apply_dora,
    apply_lora,
    merge_adapters,
)

L = keras.layers


def conv_bn_model():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, name="conv")(inputs)
    x = L.BatchNormalization(name="bn")(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=3, name="depthwise")(x)
    return keras.Model(inputs, L.Dense(2, name="dense")(L.Flatten()(x)))


@pytest.mark.parametrize("apply", [apply_lora, apply_dora])
def test_bad_rank_alpha_and_dropout(apply):
    model = conv_bn_model()
    with pytest.raises(ValueError, match=r"`rank` must be an integer >= 1. Received: rank=0"):
        apply(model, rank=0)
    with pytest.raises(ValueError, match=r"`rank` must be an integer >= 1. Received: rank=2.5"):
        apply(model, rank=2.5)
    with pytest.raises(ValueError, match="`alpha` must be None"):
        apply(model, alpha=0)
    with pytest.raises(ValueError, match=r"`dropout` must be a number in \[0, 1\)"):
        apply(model, dropout=1.0)


def test_a_rank_too_large_for_a_layer_names_it_and_its_maximum():
    model = conv_bn_model()
    with pytest.raises(
        ValueError,
        match=r"at most 9 for layer 'depthwise' \(DepthwiseConv2D, kernel \(3, 3, 4, 3\): a "
        r"depthwise filter has only 9 spatial values\).*"
        r"Received: rank=10",
    ):
        apply_lora(model, targets=["depthwise"], rank=10)
    with pytest.raises(ValueError, match=r"at most 4 for layer 'conv' \(Conv2D, kernel "
                       r"\(3, 3, 3, 4\): as a matrix it is 27 x 4\)"):  # fmt: skip
        apply_lora(model, rank=5)


def test_targets_that_match_nothing_list_the_layers():
    model = conv_bn_model()
    with pytest.raises(ValueError, match=r"'convolution' matches no layer. The layers: conv, bn"):
        apply_lora(model, targets=["convolution"])
    with pytest.raises(ValueError, match=r"'SeparableConv2D' matches no layer"):
        apply_lora(model, targets=[L.SeparableConv2D])
    with pytest.raises(ValueError, match=r"'b\*' matches no supported layer, only bn"):
        apply_lora(model, targets=["b*"])
    with pytest.raises(ValueError, match=r"`train` entry 'hed' matches no layer"):
        apply_lora(model, train=["hed"])
    with pytest.raises(TypeError, match="`targets` entries must be layer names"):
        apply_lora(model, targets=[3])


def test_an_unsupported_layer_named_explicitly_is_refused():
    model = conv_bn_model()
    message = r"'bn' \(BatchNormalization\) cannot be adapted: the supported layer types are " + (
        "Dense, Conv2D, DepthwiseConv2D, SeparableConv2D"
    )
    with pytest.raises(TypeError, match=message):
        apply_lora(model, targets=["conv", "bn"])
    with pytest.raises(TypeError, match=message):
        apply_dora(model, targets=[L.BatchNormalization])


def test_adapting_twice_is_refused():
    adapted = apply_lora(conv_bn_model(), targets=["conv"], rank=2)
    for targets in (None, ["conv"]):
        with pytest.raises(ValueError, match=r"'conv' \(AdaptedLayer, lora\) is already adapted"):
            apply_dora(adapted, targets=targets, rank=2)
    with pytest.raises(ValueError, match="already adapted"):
        AdaptedLayer(adapted.get_layer("conv"))
    with pytest.raises(ValueError, match="holds adapted layers"):
        apply_bitfit(adapted)


def test_merging_twice_or_without_adapters_is_refused():
    model = conv_bn_model()
    with pytest.raises(ValueError, match="has no adapted layer to merge"):
        merge_adapters(model)
    merged = merge_adapters(apply_lora(model, rank=2))
    with pytest.raises(ValueError, match="has no adapted layer to merge"):
        merge_adapters(merged)


def test_bitfit_on_a_model_without_bias_is_refused():
    inputs = keras.Input((4,))
    x = L.Dense(3, use_bias=False)(inputs)
    model = keras.Model(inputs, L.Dense(2, use_bias=False)(x), name="no_bias")
    with pytest.raises(ValueError, match="'no_bias' has no bias vector: BitFit would leave no"):
        apply_bitfit(model)
    with pytest.raises(ValueError, match="no bias vector nor normalization gamma/beta"):
        apply_bitfit(model, normalization=True)


def test_other_bad_models_and_overlaps():
    class Custom(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    custom = Custom()
    custom(keras.ops.ones((1, 3)))
    with pytest.raises(TypeError, match="must be a functional or Sequential Keras model"):
        apply_lora(custom)
    with pytest.raises(ValueError, match="both in `targets` and in `train`: dense"):
        apply_lora(conv_bn_model(), targets=["dense"], train=["dense"])
