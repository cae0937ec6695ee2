"""Blocks of a functional model that SpotTune can duplicate: `find_blocks` and `Block`.

A block is a single-input, single-output subgraph of a functional model, named by its first and
last layer: every layer on a path from the input of `first` to the output of `last`. SpotTune
(Guo et al., 2019, "SpotTune: Transfer Learning through Adaptive Fine-tuning") keeps a frozen and a
fine-tuned copy of each block and lets a policy choose between them per input.

Blocks are found automatically in

- `keras.applications.MobileNetV2`: the inverted residual blocks with a skip connection
  (`block_N_expand` ... `block_N_add`);
- `keras.applications` ResNets: `convN_blockM_*` ... `convN_blockM_out`;
- stacks of recurrent layers (`LSTM`, `GRU`, `SimpleRNN`, `Bidirectional`): each layer is a block.

or given by the user as `(first, last)` layer-name pairs. A block that includes its skip connection
(`block_N_add`) computes `I F_t(x) + (1 - I) F_f(x) + x` exactly, since the skip is the same in both
copies.

Example:

>>> inputs = keras.Input((6, 3))
>>> x = keras.layers.LSTM(4, return_sequences=True, name="lstm_a")(inputs)
>>> x = keras.layers.LSTM(4, name="lstm_b")(x)
>>> model = keras.Model(inputs, keras.layers.Dense(2)(x))
>>> [block.name for block in find_blocks(model)]
['lstm_a', 'lstm_b']
"""

import dataclasses
import re

import keras

from kerastransfer.models.graph import ancestors, layer_inputs, mask_ids, producers

RECURRENT_TYPES = (keras.layers.RNN, keras.layers.Bidirectional)


@dataclasses.dataclass(frozen=True)
class Block:
    """A validated block: its `name`, `first` and `last` layer names, and `layers` (names of every
    layer of the subgraph, in the model's topological order)."""

    name: str
    first: str
    last: str
    layers: tuple


def subgraph(model, first, last, name=None):
    """Validate `(first, last)` as a single-input single-output subgraph of `model`.

    Returns:
        A `Block`.

    Raises:
        ValueError: naming the offending layer when a layer of the block takes a tensor from
            outside it (other than the input of `first`), when a layer outside the block uses a
            tensor from inside it (other than the output of `last`), or when `first` does not lead
            to `last`.
    """
    names = [layer.name for layer in model.layers]
    for n in (first, last):
        if n not in names:
            raise ValueError(
                f"Block boundary `{n}` is not a layer of model `{model.name}`. Layers are named "
                f"like {names[1:6]}... (blocks inside a nested model: build the network flat, e.g. "
                "`models.mobilenet_v2_classifier(..., flat=True)`, or any `keras.applications` "
                "model in `feature_extraction.pooled_body(..., flat=True)`)."
            )
    first_layer, last_layer = model.get_layer(first), model.get_layer(last)
    masks = mask_ids(model)
    inputs = keras.tree.flatten(layer_inputs(first_layer, masks))
    if len(inputs) != 1:
        raise ValueError(
            f"Block ({first!r}, {last!r}) must have a single input, but `{first}` takes "
            f"{len(inputs)} tensors. Start the block at a layer with one input."
        )
    block_in = inputs[0]
    made_by = producers(model)
    upstream = ancestors(block_in, made_by, masks)
    if first not in ancestors(keras.tree.flatten(last_layer.output)[0], made_by, masks):
        raise ValueError(
            f"Block ({first!r}, {last!r}): `{first}` does not lead to `{last}`. Name the first "
            f"and last layer of one block, in that order."
        )
    # Walk back from `last` to the block input.
    members, stack = set(), [last_layer]
    while stack:
        layer = stack.pop()
        if layer.name in members:
            continue
        if isinstance(layer, keras.layers.InputLayer) or layer.name in upstream:
            raise ValueError(
                f"Block ({first!r}, {last!r}) is not a single-input subgraph: it uses the output "
                f"of `{layer.name}`, which is outside the block (before `{first}`). Move the "
                f"block's first layer up so the block takes one tensor, or the skip inside it."
            )
        members.add(layer.name)
        for t in keras.tree.flatten(layer_inputs(layer, masks)):
            if t is not block_in:
                stack.append(made_by[id(t)])
    internal = {
        id(t) for n in members if n != last for t in keras.tree.flatten(model.get_layer(n).output)
    }
    for layer in model.layers:
        if layer.name in members or isinstance(layer, keras.layers.InputLayer):
            continue
        used = [t for t in keras.tree.flatten(layer_inputs(layer, masks)) if id(t) in internal]
        if used:
            raise ValueError(
                f"Block ({first!r}, {last!r}) is not a single-output subgraph: `{layer.name}`, "
                f"outside the block, uses the output of `{made_by[id(used[0])].name}` inside "
                f"it. End the block at a layer whose output is the only one leaving it."
            )
    if any(id(t) in internal for t in keras.tree.flatten(model.outputs)):
        raise ValueError(
            f"Block ({first!r}, {last!r}) is not a single-output subgraph: a model output "
            f"comes from inside it."
        )
    ordered = tuple(n for n in names if n in members)
    return Block(name or first, first, last, ordered)


def _check_recurrent(layer, following):
    if getattr(layer, "stateful", False) or getattr(
        getattr(layer, "forward_layer", None), "stateful", False
    ):
        raise ValueError(
            f"Recurrent layer `{layer.name}` is stateful: SpotTune routes each sample to one "
            f"copy, which breaks per-sample state across batches. Use stateful=False."
        )
    if getattr(layer, "return_state", False):
        raise ValueError(
            f"Recurrent layer `{layer.name}` returns its state: a SpotTune block has one output. "
            f"Use return_state=False."
        )
    if following is not None and not getattr(layer, "return_sequences", False):
        raise ValueError(
            f"Recurrent layer `{layer.name}` does not return sequences, but `{following.name}` "
            f"follows it and needs a sequence: set return_sequences=True on `{layer.name}`."
        )


def recurrent_blocks(model):
    """Each recurrent layer of `model` as a block, checked as a stack (every layer but a last one
    feeding another recurrent layer must return sequences; no stateful layers, no returned
    states). `model` may also be a list of recurrent layers, checked the same way."""
    if isinstance(model, (list, tuple)):
        layers = list(model)
        for i, layer in enumerate(layers):
            if not isinstance(layer, RECURRENT_TYPES):
                raise ValueError(
                    f"`layers[{i}]` must be a recurrent layer (LSTM, GRU, SimpleRNN, "
                    f"Bidirectional). Received: {type(layer).__name__}"
                )
            _check_recurrent(layer, layers[i + 1] if i + 1 < len(layers) else None)
        return [Block(layer.name, layer.name, layer.name, (layer.name,)) for layer in layers]
    layers = [layer for layer in model.layers if isinstance(layer, RECURRENT_TYPES)]
    made_by, masks = producers(model), mask_ids(model)
    for layer in layers:
        following = None
        for other in layers:
            if other is not layer and any(
                made_by.get(id(t)) is layer for t in keras.tree.flatten(layer_inputs(other, masks))
            ):
                following = other
        _check_recurrent(layer, following)
    return [subgraph(model, layer.name, layer.name) for layer in layers]


def residual_blocks(model):
    """The residual blocks of a `keras.applications` MobileNetV2 or ResNet, found by layer name."""
    names = [layer.name for layer in model.layers]
    pairs = []
    for n in names:
        m = re.fullmatch(r"block_(\d+)_add", n)
        if m:
            pairs.append((f"block_{m.group(1)}_expand", n, f"block_{m.group(1)}"))
            continue
        m = re.fullmatch(r"(conv\d+_block\d+)_out", n)
        if m:
            prefix = m.group(1) + "_"
            first = next(x for x in names if x.startswith(prefix))
            pairs.append((first, n, m.group(1)))
    return [subgraph(model, first, last, name) for first, last, name in pairs]


def find_blocks(model, blocks=None):
    """The blocks of `model`: given `(first, last)` pairs, or found automatically.

    Args:
        model: a functional Keras model (each layer called once).
        blocks: None for automatic discovery (residual blocks of `keras.applications`
            MobileNetV2 / ResNets, else every recurrent layer), or a list of `(first, last)`
            layer-name pairs, or a list of `Block`s.

    Returns:
        A list of `Block`s in topological order.
    """
    if not isinstance(model, keras.Model) or not getattr(model, "outputs", None):
        raise ValueError(
            f"`model` must be a functional (or Sequential) Keras model. Received: {type(model)}"
        )
    if blocks is None:
        found = residual_blocks(model) or recurrent_blocks(model)
        if not found:
            raise ValueError(
                f"No SpotTune blocks found in `{model.name}`: it has no MobileNetV2/ResNet "
                f"residual blocks and no recurrent layers. Pass `blocks=[(first, last), ...]`."
            )
    else:
        found = []
        for item in blocks:
            if isinstance(item, Block):
                item = (item.first, item.last, item.name)
            if isinstance(item, str) or len(item) not in (2, 3):
                raise ValueError(
                    f"Each block must be a (first, last) pair of layer names. Received: {item!r}"
                )
            found.append(subgraph(model, *item))
        if not found:
            raise ValueError("`blocks` is empty: name at least one (first, last) pair.")
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    found.sort(key=lambda b: order[b.last])
    seen = {}
    for block in found:
        for n in block.layers:
            if n in seen:
                raise ValueError(
                    f"Blocks `{seen[n]}` and `{block.name}` overlap (both hold `{n}`). Blocks "
                    f"must be disjoint."
                )
            seen[n] = block.name
    return found
