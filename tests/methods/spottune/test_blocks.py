"""Finding and validating SpotTune blocks: keras.applications residual blocks, recurrent stacks,
user (first, last) pairs, and clear errors for boundaries that are not single-input
single-output subgraphs."""

import keras
import pytest

from kerastransfer.methods.spottune import find_blocks
from kerastransfer.methods.spottune.blocks import recurrent_blocks

L = keras.layers


def test_mobilenet_v2_inverted_residual_blocks_with_a_skip():
    model = keras.applications.MobileNetV2((32, 32, 3), alpha=0.35, include_top=False, weights=None)
    blocks = find_blocks(model)
    assert [b.name for b in blocks] == [f"block_{n}" for n in (2, 4, 5, 7, 8, 9, 11, 12, 14, 15)]
    for b in blocks:
        assert b.first == f"{b.name}_expand" and b.last == f"{b.name}_add"
        assert all(n.startswith(f"{b.name}_") for n in b.layers) and len(b.layers) == 9


def test_resnet_blocks_include_the_projection_shortcut():
    model = keras.applications.ResNet50(input_shape=(32, 32, 3), include_top=False, weights=None)
    blocks = find_blocks(model)
    assert len(blocks) == 16 and blocks[0].name == "conv2_block1"
    assert "conv2_block1_0_conv" in blocks[0].layers  # the 1x1 shortcut of the first block
    assert blocks[-1].last == "conv5_block3_out"


def residual_mlp():
    inputs = keras.Input((4,), name="x")
    a = L.Dense(4, name="a")(inputs)
    b = L.Dense(4, name="b")(a)
    c = L.Dense(4, name="c")(b)
    s = L.Add(name="skip")([c, a])
    d = L.Dense(4, name="d")(s)
    side = L.Add(name="side")([d, b])
    return keras.Model(inputs, L.Dense(2, name="out")(side))


def test_user_pairs_are_validated_as_single_input_single_output_subgraphs():
    model = residual_mlp()
    (block,) = find_blocks(model, [("d", "d")])
    assert block.layers == ("d",)
    with pytest.raises(ValueError, match="not a single-input subgraph: it uses the output of `a`"):
        find_blocks(model, [("c", "skip")])  # the skip reads `a`, from before the block
    with pytest.raises(ValueError, match="not a single-output subgraph: `side`"):
        find_blocks(model, [("b", "skip")])  # `side` reads `b`, from inside the block
    with pytest.raises(ValueError, match="`d` does not lead to `c`"):
        find_blocks(model, [("d", "c")])
    with pytest.raises(ValueError, match="`nope` is not a layer of model"):
        find_blocks(model, [("nope", "d")])
    with pytest.raises(ValueError, match="must have a single input, but `skip` takes 2"):
        find_blocks(model, [("skip", "skip")])
    with pytest.raises(ValueError, match="overlap"):
        find_blocks(model, [("a", "a"), ("a", "a")])
    with pytest.raises(ValueError, match=r"\(first, last\) pair"):
        find_blocks(model, ["a"])
    with pytest.raises(ValueError, match="No SpotTune blocks found"):
        find_blocks(model)


def test_recurrent_stack_checks():
    inputs = keras.Input((5, 3))
    x = L.Masking(0.0)(inputs)
    x = L.LSTM(4, return_sequences=True, name="l1")(x)
    x = L.Bidirectional(L.GRU(4, return_sequences=True), name="bi")(x)
    x = L.SimpleRNN(4, name="top")(x)
    model = keras.Model(inputs, L.Dense(2)(x))
    assert [b.name for b in find_blocks(model)] == ["l1", "bi", "top"]
    with pytest.raises(ValueError, match="`l1` does not return sequences, but `l2` follows it"):
        recurrent_blocks([L.LSTM(4, name="l1"), L.LSTM(4, name="l2")])
    with pytest.raises(ValueError, match="returns its state"):
        recurrent_blocks([L.LSTM(4, return_state=True, name="s")])
    with pytest.raises(ValueError, match="must be a recurrent layer"):
        recurrent_blocks([L.Dense(3)])
    assert [
        b.name
        for b in recurrent_blocks([L.GRU(3, return_sequences=True, name="g"), L.LSTM(3, name="h")])
    ] == ["g", "h"]
