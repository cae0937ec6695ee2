"""Split layers: resolving them by name and finding the parameters that belong to each filter.

A *split layer* is a `Conv2D` of a functional model whose d output channels define d single-filter
networks: network k is the model with every output channel of the split layer zeroed except
channel k. The graph helpers here (`model_nodes`, `consumers`, `split_node`, `frontier`) walk a
functional model's nodes; they read Keras's functional graph (`_nodes_by_depth`), which has no
public name: that access is kept in `model_nodes` alone.
"""

import difflib

import keras

# Layers that keep the channel axis of their input as it is (channel k in -> channel k out).
CHANNEL_PRESERVING = (
    keras.layers.BatchNormalization,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.PReLU,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.UpSampling2D,
    keras.layers.Identity,
)


def is_conv2d(layer):
    return isinstance(layer, keras.layers.Conv2D) and not isinstance(
        layer,
        (keras.layers.Conv2DTranspose, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D),
    )


def _graph(model):
    """The functional graph of `model` (a `Sequential` keeps one once built)."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    return model


def check_functional(model):
    if not isinstance(model, keras.Model) or not hasattr(_graph(model), "_nodes_by_depth"):
        raise ValueError(
            "Split layers need a functional Keras model (built with `keras.Model(inputs, "
            f"outputs)` or `keras.Sequential`). Received: {type(model).__name__}"
        )


def resolve_split_layers(model, split_layers=None):
    """The `Conv2D` layers of `model` to split, in the order named.

    Args:
        model: a functional `keras.Model`.
        split_layers: `None` (the first `Conv2D` of the model), a layer name, or a list of names.

    Returns:
        list of `keras.layers.Conv2D`.

    Raises:
        ValueError: a name that is not a layer of the model (with close matches and the
            available convolutional layers), or a layer that is not a `Conv2D`.
    """
    check_functional(model)
    convs = [layer for layer in model.layers if is_conv2d(layer)]
    conv_names = [layer.name for layer in convs]
    if split_layers is None:
        if not convs:
            nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
            hint = (
                f" Nested models {nested} hold layers of their own: split layers must be layers "
                "of the top-level model (flatten the model first)." if nested else ""
            )
            raise ValueError(
                f"Model '{model.name}' has no Conv2D layer to split (the default split layer is "
                f"the first Conv2D).{hint}"
            )
        return [convs[0]]
    names = [split_layers] if isinstance(split_layers, str) else list(split_layers)
    if not names:
        raise ValueError("`split_layers` is empty: name at least one Conv2D layer, or pass None.")
    if len(set(names)) != len(names):
        raise ValueError(f"`split_layers` names a layer twice. Received: {names}")
    all_names = [layer.name for layer in model.layers]
    resolved = []
    for name in names:
        if name not in all_names:
            close = difflib.get_close_matches(name, all_names, n=3)
            raise ValueError(
                f"Split layer '{name}' is not a layer of model '{model.name}'."
                + (f" Did you mean {close}?" if close else "")
                + f" Available Conv2D layers: {conv_names}"
            )
        layer = model.get_layer(name)
        if not is_conv2d(layer):
            raise ValueError(
                f"Split layer '{name}' is a {type(layer).__name__}, not a Conv2D: only "
                f"convolutional layers can be split into single-filter networks. Available "
                f"Conv2D layers: {conv_names}"
            )
        resolved.append(layer)
    return resolved


def model_nodes(model):
    """Every node of `model`'s functional graph.

    Keras has no public accessor for a functional model's nodes: this reads `_nodes_by_depth`,
    the one private attribute the package touches, here only.
    """
    return [node for nodes in _graph(model)._nodes_by_depth.values() for node in nodes]


def consumers(model, tensor, nodes=None):
    """Nodes of `model`'s graph that take `tensor` as an input."""
    nodes = model_nodes(model) if nodes is None else nodes
    return [n for n in nodes if any(t is tensor for t in n.input_tensors)]


def split_node(model, layer):
    nodes = [n for n in model_nodes(model) if n.operation is layer]
    if len(nodes) != 1:
        raise ValueError(
            f"Split layer '{layer.name}' is called {len(nodes)} times in model '{model.name}': a "
            "split layer must be used exactly once."
        )
    return nodes[0]


def filter_parameters(model, layer):
    """The variables holding layer `layer`'s filters, with the axis that indexes the filter.

    Returns:
        list of `(variable, axis)`: the split kernel (axis -1) and bias (0); a directly following
        BatchNormalization's gamma and beta (0); the next Conv2D's kernel (axis 2), found through
        channel-preserving layers (activations, pooling, dropout, padding).
    """
    params = [(layer.kernel, layer.kernel.ndim - 1)]
    if layer.use_bias:
        params.append((layer.bias, 0))
    d = layer.filters
    nodes = model_nodes(model)
    tensor = split_node(model, layer).output_tensors[0]
    first = True
    while True:
        next_nodes = consumers(model, tensor, nodes)
        if len(next_nodes) != 1:
            break  # the channel feeds several branches (or none): no single "next" layer
        op = next_nodes[0].operation
        if first and isinstance(op, keras.layers.BatchNormalization) and op.axis in (-1, 3):
            if op.scale:
                params.append((op.gamma, 0))
            if op.center:
                params.append((op.beta, 0))
        first = False
        if is_conv2d(op):
            if op.groups == 1 and op.kernel.shape[2] == d:
                params.append((op.kernel, 2))
            break
        if not isinstance(op, CHANNEL_PRESERVING):
            break
        tensor = next_nodes[0].output_tensors[0]
    return params


def broadcast_shape(variable, axis):
    """The shape of a multiplier of `variable` holding one value per filter along `axis`."""
    shape = [1] * len(variable.shape)
    shape[axis] = variable.shape[axis]
    return tuple(shape)


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
