"""`spottune_network`: a functional model rebuilt with each chosen block replaced by a
`SpotTuneBlock` (frozen + fine-tuned copies), taking `[inputs, decisions]`.

The rest of the model (stem, layers between blocks, head) is copied once, with its weights, and
stays trainable (as in Guo et al. 2019, where the first layer and the classifier are trained).
The source model is not modified and shares no weights with the result.

Example:

>>> inputs = keras.Input((6, 3))
>>> x = keras.layers.LSTM(4, return_sequences=True, name="lstm_a")(inputs)
>>> x = keras.layers.LSTM(4, name="lstm_b")(x)
>>> model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
>>> net = spottune_network(model)
>>> [type(layer).__name__ for layer in net.layers[2:]]
['SpotTuneBlock', 'SpotTuneBlock', 'Dense']
"""

import keras

from kerastransfer._internals import keras_mask
from kerastransfer.methods.spottune.blocks import find_blocks
from kerastransfer.methods.spottune.spottune_block import SpotTuneBlock
from kerastransfer.models.graph import layer_inputs, mask_ids, replay


def _clone_layer(layer):
    return keras.layers.deserialize(keras.layers.serialize(layer))


def replay_layers(model, layer_names, tensors, block_for_first=None):
    """Call copies of `layer_names` of `model` (topological order, weights copied) on `tensors`
    (a dict id(old tensor) -> new tensor, updated in place).

    Layers that start a block are replaced by `block_for_first[name](new_input)`, whose result
    stands for the output of the block's last layer. Returns the (old, new) layer pairs."""
    copies = []

    def call(layer, inputs):
        if block_for_first and layer.name in block_for_first:
            block, last = block_for_first[layer.name]
            tensors[id(model.get_layer(last).output)] = block(inputs)
            return None
        new = _clone_layer(layer)
        outputs = new(inputs)
        new.set_weights(layer.get_weights())
        copies.append((layer, new))
        return outputs

    replay(model, tensors, call, layer_names)
    return copies


def block_model(model, block):
    """The layers of `block` (a `Block` of `model`) as a standalone model, with their weights."""
    first = model.get_layer(block.first)
    block_in = keras.tree.flatten(layer_inputs(first, mask_ids(model)))[0]
    inputs = keras.Input(block_in.shape[1:], dtype=block_in.dtype, name=f"{block.name}_input")
    tensors = {id(block_in): inputs}
    replay_layers(model, set(block.layers), tensors)
    outputs = tensors[id(model.get_layer(block.last).output)]
    return keras.Model(inputs, outputs, name=block.name)


def spottune_network(model, blocks=None, routing=True):
    """Rebuild `model` with SpotTune blocks.

    Args:
        model: a functional or Sequential Keras model with one input (pretrained weights).
        blocks: see `find_blocks` (None: found automatically).
        routing: passed to every `SpotTuneBlock`.

    Returns:
        A functional model `[inputs, decisions] -> outputs`, `decisions` of shape
        `(batch, num_blocks)` (1 picks the fine-tuned copy). Its `SpotTuneBlock`s are in
        block order.
    """
    found = find_blocks(model, blocks)
    if len(model.inputs) != 1:
        raise ValueError(
            f"SpotTune needs a model with one input (the policy reads it). Received "
            f"{len(model.inputs)} inputs."
        )
    source_in = model.inputs[0]
    inputs = keras.Input(source_in.shape[1:], dtype=source_in.dtype, name="inputs")
    decisions = keras.Input((len(found),), name="decisions")
    block_for_first = {}
    for i, block in enumerate(found):
        keeps_mask = keras_mask(model.get_layer(block.last).output) is not None
        spot = SpotTuneBlock.from_model(
            block_model(model, block), i, f"spottune_{block.name}", routing, keeps_mask
        )
        block_for_first[block.first] = (lambda x, spot=spot: spot([x, decisions]), block.last)
    inside = {n for b in found for n in b.layers}
    outside = {
        layer.name
        for layer in model.layers
        if layer.name not in inside and not isinstance(layer, keras.layers.InputLayer)
    }
    tensors = {id(source_in): inputs}
    replay_layers(model, outside | set(block_for_first), tensors, block_for_first)
    outputs = keras.tree.map_structure(lambda t: tensors[id(t)], model.outputs)
    if len(outputs) == 1:
        outputs = outputs[0]
    return keras.Model([inputs, decisions], outputs, name=f"{model.name}_spottune")


def spottune_blocks(network):
    """The `SpotTuneBlock`s of a SpotTune network, in block order."""
    blocks = sorted(
        (layer for layer in network.layers if isinstance(layer, SpotTuneBlock)),
        key=lambda b: b.index,
    )
    if not blocks:
        raise ValueError(f"`{network.name}` has no SpotTuneBlock.")
    return blocks
