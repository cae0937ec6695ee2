"""The functional graph walk (`kerastransfer.models.graph`) on small models: a residual `Add`, a
nested model, a masked LSTM stack, a shared layer."""

import keras
import numpy as np
import pytest

from kerastransfer.models.graph import (
    ancestors,
    consumers,
    flat_view,
    frontier,
    is_functional,
    layer_inputs,
    layer_paths,
    mask_ids,
    model_nodes,
    ordered_nodes,
    producers,
    replay,
)

L = keras.layers


def residual():
    """x -> a -> b -> add(a, b) -> out: `a` feeds `b` and skips over it to `add`."""
    inputs = keras.Input((4,), name="x")
    a = L.Dense(4, name="a")(inputs)
    b = L.Dense(4, name="b")(a)
    s = L.Add(name="add")([a, b])
    return keras.Model(inputs, L.Dense(2, name="out")(s), name="residual")


def nested():
    """A backbone (conv, relu, conv, add) called as one layer between a rescaling and a head."""
    inputs = keras.Input((6, 6, 2), name="inner_in")
    c1 = L.Conv2D(3, 3, padding="same", name="c1")(inputs)
    c2 = L.Conv2D(3, 3, padding="same", name="c2")(L.ReLU(name="relu")(c1))
    backbone = keras.Model(inputs, L.Add(name="skip")([c1, c2]), name="backbone")
    outer_in = keras.Input((6, 6, 2), name="image")
    x = backbone(L.Rescaling(0.5, name="scale")(outer_in))
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(outer_in, L.Dense(2, name="head")(x), name="outer")


def masked_lstm():
    inputs = keras.Input((5, 3), name="seq")
    x = L.Masking(0.0, name="mask")(inputs)
    x = L.LSTM(4, return_sequences=True, name="l1")(x)
    x = L.LSTM(4, name="l2")(x)
    return keras.Model(inputs, L.Dense(2, name="out")(x), name="lstm")


def names(nodes):
    return [node.operation.name for node in nodes]


def test_nodes_in_order_and_consumers_of_a_residual_graph():
    model = residual()
    a = model.get_layer("a").output
    assert names(ordered_nodes(model)) == ["x", "a", "b", "add", "out"]
    assert sorted(names(model_nodes(model))) == ["a", "add", "b", "out", "x"]
    assert sorted(names(consumers(model, a))) == ["add", "b"]
    assert names(consumers(model, model.outputs[0])) == []
    nodes = model_nodes(model)
    assert consumers(model, a, nodes) == consumers(model, a)


def test_frontier_is_the_skip_path():
    model = residual()
    a, b = (model.get_layer(n).output for n in ("a", "b"))
    # Above `b`, `add` also reads `a`, which comes from below `b`.
    assert frontier(model, b) == [a]
    assert frontier(model, a) == []  # everything above `a` reads only what `a` leads to


def test_producers_ancestors_and_layer_inputs():
    model = residual()
    made_by = producers(model)
    for layer in model.layers:
        assert made_by[id(layer.output)] is layer
    add = model.get_layer("add")
    assert layer_inputs(add) == [model.get_layer("a").output, model.get_layer("b").output]
    assert layer_inputs(model.get_layer("b")) is model.get_layer("a").output
    assert ancestors(add.output, made_by) == {"x", "a", "b", "add"}
    assert ancestors(model.get_layer("a").output, made_by) == {"x", "a"}


def test_masks_are_left_out_of_a_layers_inputs():
    model = masked_lstm()
    masks = mask_ids(model)
    assert len(masks) == 1  # the one mask of `mask`, carried by `l1` to `l2`
    l1, l2 = model.get_layer("l1"), model.get_layer("l2")
    assert len(keras.tree.flatten(l2.input)) == 2  # the sequence and its mask
    assert layer_inputs(l2, masks) is l1.output
    assert layer_inputs(l1, masks) is model.get_layer("mask").output
    made_by = producers(model)
    assert ancestors(model.outputs[0], made_by, masks) == {"seq", "mask", "l1", "l2", "out"}
    # The node view keeps the operations Keras records for the mask (not layers of the model).
    ops = names(ordered_nodes(model))
    assert {"seq", "mask", "l1", "l2", "out"} < set(ops) and len(ops) > 5


def test_a_shared_layer_has_a_node_per_call_and_a_layer_view_of_its_first_call():
    inputs = keras.Input((4,))
    shared = L.Dense(4, name="shared")
    once = shared(inputs)
    model = keras.Model(inputs, shared(once))
    assert names(model_nodes(model)).count("shared") == 2  # one node per call
    assert layer_inputs(shared) is inputs
    made_by = producers(model)
    assert made_by[id(once)] is shared and id(model.outputs[0]) not in made_by
    with pytest.raises(ValueError, match="`never` has no inputs: it was never called"):
        layer_inputs(L.Dense(2, name="never"))


def test_nested_models_are_walked_and_inlined():
    model = nested()
    backbone = model.get_layer("backbone")
    assert is_functional(backbone) and not is_functional(model.get_layer("gap"))
    assert not is_functional(L.Dense(2))
    assert [path for path, _ in layer_paths(model)] == [
        "image",
        "scale",
        "backbone",
        "backbone/inner_in",
        "backbone/c1",
        "backbone/relu",
        "backbone/c2",
        "backbone/skip",
        "gap",
        "head",
    ]
    view = flat_view(model)
    assert view is flat_view(model)  # cached
    assert [layer.name for layer in view.layers] == [
        "image",
        "scale",
        "c1",
        "relu",
        "c2",
        "skip",
        "gap",
        "head",
    ]
    assert view.get_layer("c1") is backbone.get_layer("c1")  # the model's own layers
    assert {id(v) for v in view.weights} == {id(v) for v in model.weights}
    x = np.random.default_rng(0).uniform(size=(3, 6, 6, 2)).astype("float32")
    np.testing.assert_array_equal(view([x]), model(x))
    # In the view the skip inside the backbone is a skip path like any other.
    c1, c2 = (view.get_layer(n) for n in ("c1", "c2"))
    c2_out = next(n for n in model_nodes(view) if n.operation is c2).output_tensors[0]
    c1_out = next(n for n in model_nodes(view) if n.operation is c1).output_tensors[0]
    assert frontier(view, c2_out) == [c1_out]


def test_flat_view_of_a_model_without_nesting_is_its_graph():
    model = residual()
    assert flat_view(model) is model
    sequential = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    assert [type(layer) for layer in flat_view(sequential).layers][1:] == [L.Dense]
    with pytest.raises(ValueError, match="`model` must be a functional Keras model"):
        flat_view(keras.Sequential([L.Dense(2)]))  # not built: no graph


def test_replay_calls_the_layers_again_on_new_tensors():
    model = masked_lstm()
    new_in = keras.Input((5, 3), name="again")
    tensors = replay(model, {id(model.inputs[0]): new_in}, lambda layer, x: layer(x))
    again = keras.Model(new_in, tensors[id(model.outputs[0])])
    assert [layer.name for layer in again.layers][1:] == ["mask", "l1", "l2", "out"]
    x = np.random.default_rng(1).normal(size=(4, 5, 3)).astype("float32")
    x[:, 3:] = 0.0  # masked steps: the replayed LSTMs compute the mask from their input
    np.testing.assert_array_equal(again(x), model(x))

    # Only some layers, as copies; `call` may record its outputs itself and return None.
    source = residual()
    block_in = keras.Input((4,), name="block_in")
    called = []

    def call(layer, inputs):
        called.append(layer.name)
        if layer.name == "add":
            return None
        return L.Identity(name=f"{layer.name}_copy")(inputs)

    a = source.get_layer("a").output
    tensors = replay(source, {id(a): block_in}, call, {"b", "add"})
    assert called == ["b", "add"]
    copy = keras.Model(block_in, tensors[id(source.get_layer("b").output)])
    assert [layer.name for layer in copy.layers] == ["block_in", "b_copy"]
    assert id(source.get_layer("add").output) not in tensors
