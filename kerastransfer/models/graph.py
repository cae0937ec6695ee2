"""The functional graph of a Keras model: who makes and who reads a tensor, the layers upstream of
it, and the graph called again on new tensors.

One graph, two views:

- Nodes, one per layer call: `model_nodes`, `ordered_nodes`, `consumers`, `frontier` and
  `flat_view`. A layer called twice has two nodes, and the operations Keras records to compute
  masks have nodes too. Keras has no public accessor for the nodes of a model: they come from
  `kerastransfer._internals` (`functional_graph`, `nodes_by_depth`), and are read through the
  public attributes of Keras's `Node` (`operation`, `arguments`, `input_tensors`,
  `output_tensors`).
- Layers: `mask_ids`, `layer_inputs`, `producers`, `ancestors` and `replay`. They read
  `Model.layers` (in topological order), `layer.input` and `layer.output`, which Keras gives for
  the first call of a layer only: they are for models whose layers are each called once. They
  leave the Keras masks out of a layer's inputs: a layer called again computes its mask from its
  new input.

`is_functional` and `layer_paths` see through nested functional models (a `keras.applications`
backbone called as one layer); `flat_view` inlines them.

Example:

>>> inputs = keras.Input((4,), name="x")
>>> a = keras.layers.Dense(4, name="a")(inputs)
>>> b = keras.layers.Dense(4, name="b")(a)
>>> model = keras.Model(inputs, keras.layers.Add(name="add")([a, b]))
>>> sorted(node.operation.name for node in consumers(model, a))
['add', 'b']
>>> producers(model)[id(b)].name, sorted(ancestors(b, producers(model)))
('b', ['a', 'b', 'x'])
"""

import weakref

import keras

from kerastransfer._internals import functional_graph, keras_mask, nodes_by_depth


def is_functional(layer):
    """Whether `layer` is a functional Keras model (or a built `keras.Sequential`): a model whose
    graph can be walked, also where it is nested in another model as one layer."""
    return isinstance(layer, keras.Model) and functional_graph(layer) is not None


def layer_paths(model, prefix=""):
    """`(path, layer)` of every layer of `model`, nested functional models walked depth first.

    A path is the layer names from `model` down, joined by `/` (`"backbone/conv"`); a nested
    model is listed before its layers.
    """
    found = []
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        found.append((path, layer))
        if is_functional(layer):
            found.extend(layer_paths(layer, prefix=f"{path}/"))
    return found


# -- nodes ----------------------------------------------------------------------------------------


def model_nodes(model):
    """Every node of `model`'s functional graph, in no set order (`ordered_nodes`: inputs first)."""
    return [node for nodes in nodes_by_depth(functional_graph(model)).values() for node in nodes]


def ordered_nodes(model):
    """Every node of `model`'s functional graph, inputs first (a topological order)."""
    by_depth = nodes_by_depth(functional_graph(model))
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def consumers(model, tensor, nodes=None):
    """Nodes of `model`'s graph that take `tensor` as an input (`nodes`: `model_nodes(model)`,
    when already at hand)."""
    nodes = model_nodes(model) if nodes is None else nodes
    return [n for n in nodes if any(t is tensor for t in n.input_tensors)]


def frontier(model, tensor):
    """Tensors from below `tensor` that the part of `model` above it also reads (skip paths)."""
    nodes = model_nodes(model)
    downstream, queue = [], [tensor]
    while queue:
        current = queue.pop()
        for node in consumers(model, current, nodes):
            if not any(node is n for n in downstream):
                downstream.append(node)
                queue.extend(node.output_tensors)
    produced = [t for n in downstream for t in n.output_tensors] + [tensor]
    result = []
    for node in downstream:
        for t in node.input_tensors:
            if not any(t is p for p in produced) and not any(t is f for f in result):
                result.append(t)
    return result


_FLAT_VIEWS = weakref.WeakKeyDictionary()


def _inline(graph, tensors):
    """Calls the layers of `graph` on the symbolic tensors `tensors` maps its tensors to."""
    for node in ordered_nodes(graph):
        op = node.operation
        if isinstance(op, keras.layers.InputLayer):
            continue
        args, kwargs = node.arguments.fill_in(tensors)
        if is_functional(op):
            inner = functional_graph(op)
            for t, value in zip(inner.inputs, keras.tree.flatten(args)):
                tensors[id(t)] = value
            _inline(inner, tensors)
            outputs = [tensors[id(t)] for t in inner.outputs]
        else:
            outputs = keras.tree.flatten(op(*args, **kwargs))
        for t, value in zip(node.outputs, outputs):
            tensors[id(t)] = value


def flat_view(model):
    """`model` with every nested functional model inlined: the same layer objects (hence the
    same variables), one functional graph. Returns the model's own graph when nothing is nested.
    Cached per model: inlining calls each layer once more on symbolic tensors."""
    if not is_functional(model):
        raise ValueError(
            "`model` must be a functional Keras model (built with `keras.Model(inputs, outputs)` "
            f"or a built `keras.Sequential`). Received: {type(model).__name__}"
        )
    graph = functional_graph(model)
    if not any(is_functional(layer) for layer in graph.layers):
        return graph
    view = _FLAT_VIEWS.get(model)
    if view is None:
        tensors = {id(t): t for t in graph.inputs}
        _inline(graph, tensors)
        outputs = [tensors[id(t)] for t in graph.outputs]
        view = keras.Model(graph.inputs, outputs, name=f"{model.name}_flat")
        _FLAT_VIEWS[model] = view
    return view


# -- layers ---------------------------------------------------------------------------------------


def _outputs(layer):
    """The output tensors of `layer`'s first call (a list); None for a layer never called."""
    try:
        return keras.tree.flatten(layer.output)
    except (AttributeError, ValueError):
        return None


def mask_ids(model):
    """ids of the Keras mask tensors of `model`'s graph (functional Keras passes a mask to a
    layer as a tensor argument, so it appears in `layer.input`)."""
    ids = set()
    for layer in model.layers:
        for t in _outputs(layer) or []:
            mask = keras_mask(t)
            if mask is not None:
                ids.add(id(mask))
    return ids


def layer_inputs(layer, masks=()):
    """The data inputs of `layer`'s first call (the tensors whose ids are in `masks`, its Keras
    masks, left out): one tensor, or a list."""
    try:
        inputs = layer.input
    except (AttributeError, ValueError) as e:
        raise ValueError(
            f"Layer `{layer.name}` has no inputs: it was never called on symbolic tensors. "
            f"Received: {e}"
        ) from None
    flat = [t for t in keras.tree.flatten(inputs) if id(t) not in masks]
    if len(flat) == len(keras.tree.flatten(inputs)):
        return inputs
    return flat[0] if len(flat) == 1 else flat


def producers(model):
    """`{id(tensor): layer}`: the layer of `model` that outputs each tensor (of a layer called
    more than once, the outputs of its first call)."""
    found = {}
    for layer in model.layers:
        for t in _outputs(layer) or []:
            found[id(t)] = layer
    return found


def ancestors(tensor, producers, masks=()):
    """Names of every layer upstream of `tensor`, its producer included.

    Args:
        tensor: a tensor of a model's graph.
        producers: `producers(model)`.
        masks: `mask_ids(model)`: the walk does not go up through masks.
    """
    seen, stack = set(), [tensor]
    while stack:
        layer = producers.get(id(stack.pop()))
        if layer is None or layer.name in seen:
            continue
        seen.add(layer.name)
        if not isinstance(layer, keras.layers.InputLayer):
            stack.extend(keras.tree.flatten(layer_inputs(layer, masks)))
    return seen


def replay(model, tensors, call, layers=None):
    """Calls the layers of `model` again, in topological order, on the tensors `tensors` maps.

    For each layer but the `InputLayer`s (only those named in `layers`, when given), `call(layer,
    inputs)` gets `layer_inputs(layer)` mapped through `tensors`, and returns what stands for the
    layer's outputs: `tensors` maps them (it is updated in place). A `call` that returns None has
    recorded what it made in `tensors` itself. `call=lambda layer, x: layer(x)` calls the model's
    own layers (same variables); a `call` may call copies, or anything else, instead.

    Args:
        model: a functional model, each of its layers called once.
        tensors: `{id(tensor of model): new tensor}`, holding at least the inputs of the first
            layer replayed.
        call: `fn(layer, inputs)`.
        layers: names of the layers to call (a set), or None for all.

    Returns:
        `tensors`.
    """
    masks = mask_ids(model)
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or (
            layers is not None and layer.name not in layers
        ):
            continue
        inputs = keras.tree.map_structure(lambda t: tensors[id(t)], layer_inputs(layer, masks))
        outputs = call(layer, inputs)
        if outputs is not None:
            for old, new in zip(keras.tree.flatten(layer.output), keras.tree.flatten(outputs)):
                tensors[id(old)] = new
    return tensors
