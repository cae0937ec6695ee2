"""Split layers: resolving them by name, in nested models too, and the graph they are probed on.

A *split layer* is a `Conv2D` whose d output channels define d single-filter networks: network k is
the model with every output channel of the split layer zeroed except channel k.

Names. A split layer of the top-level model is named as usual (`"conv1"`). A layer inside a nested
model (a `keras.applications` backbone called as one layer) is named by its path of layer names
joined by `/`, outermost first: `"mobilenetv2_1.00_96/Conv1"` is layer `Conv1` of the nested
model `mobilenetv2_1.00_96`. (Keras layer names never contain `/`, so a path is unambiguous.)
The default split layer is the first `Conv2D` met in layer order, nested models included.

Graph. Probes and the per-filter parameter walk run on `flat_view(model)`
(`kerastransfer.models.graph`): a functional model in which every nested functional model is
inlined. Its layers are the model's own layer objects (called once more on symbolic tensors), so its
variables are the model's variables. `split_node` is the node (the one call) of a split layer in
that graph.
"""

import difflib

import keras

from kerastransfer.models.graph import is_functional, layer_paths, model_nodes

# Layers the separable pass may chain between the split layer and the next convolution: they keep
# the channel axis of their input as it is (channel k in -> channel k out).
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


def check_functional(model):
    if not is_functional(model):
        raise ValueError(
            "Split layers need a functional Keras model (built with `keras.Model(inputs, "
            f"outputs)` or `keras.Sequential`). Received: {type(model).__name__}"
        )


def conv_paths(model):
    return [path for path, layer in layer_paths(model) if is_conv2d(layer)]


def _listing(names, limit=12):
    return str(names) if len(names) <= limit else f"{names[:limit]} and {len(names) - limit} more"


def get_nested_layer(model, path):
    """The layer of `model` at `path` (`"outer/inner/conv"`), with close matches on a miss."""
    current, walked = model, []
    for part in path.split("/"):
        if walked and not is_functional(current):
            raise ValueError(
                f"Split layer '{path}': '{'/'.join(walked)}' is a {type(current).__name__}, not "
                "a nested functional model, so it has no layer "
                f"'{part}'. Available Conv2D layers: {_listing(conv_paths(model))}"
            )
        names = [layer.name for layer in current.layers]
        if part not in names:
            candidates = [p for p, _ in layer_paths(model)]
            close = difflib.get_close_matches(path, candidates, n=3)
            raise ValueError(
                f"Split layer '{path}' is not a layer of model '{model.name}'."
                + (f" Did you mean {close}?" if close else "")
                + f" Available Conv2D layers: {_listing(conv_paths(model))} (layers of nested "
                "models are named by their path, e.g. 'backbone/conv')."
            )
        current = current.get_layer(part)
        walked.append(part)
    return current


def resolve_split_layer_paths(model, split_layers=None):
    """`[(path, Conv2D layer)]` of the split layers, in the order named.

    Args:
        model: a functional `keras.Model` (nested functional models allowed).
        split_layers: `None` (the first `Conv2D`, nested models included), a layer name or path,
            or a list of them.
    """
    check_functional(model)
    if split_layers is None:
        convs = [(p, layer) for p, layer in layer_paths(model) if is_conv2d(layer)]
        if not convs:
            raise ValueError(
                f"Model '{model.name}' has no Conv2D layer to split (the default split layer is "
                "the first Conv2D, nested models included)."
            )
        return [convs[0]]
    names = [split_layers] if isinstance(split_layers, str) else list(split_layers)
    if not names:
        raise ValueError("`split_layers` is empty: name at least one Conv2D layer, or pass None.")
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"`split_layers` must be layer names (strings). Received: {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"`split_layers` names a layer twice. Received: {names}")
    resolved = []
    for name in names:
        layer = get_nested_layer(model, name)
        if not is_conv2d(layer):
            raise ValueError(
                f"Split layer '{name}' is a {type(layer).__name__}, not a Conv2D: only "
                f"convolutional layers can be split into single-filter networks. Available "
                f"Conv2D layers: {_listing(conv_paths(model))}"
            )
        resolved.append((name, layer))
    return resolved


def resolve_split_layers(model, split_layers=None):
    """The `Conv2D` layers of `model` to split, in the order named.

    Args:
        model: a functional `keras.Model`.
        split_layers: `None` (the first `Conv2D` of the model, nested models included), a layer
            name, a path into nested models (`"backbone/conv"`), or a list of them.

    Returns:
        list of `keras.layers.Conv2D`.

    Raises:
        ValueError: a name that is not a layer of the model (with close matches and the
            available convolutional layers), or a layer that is not a `Conv2D`.
    """
    return [layer for _, layer in resolve_split_layer_paths(model, split_layers)]


def split_node(model, layer):
    """The node of `model`'s graph that calls split layer `layer` (its one call)."""
    nodes = [n for n in model_nodes(model) if n.operation is layer]
    if len(nodes) != 1:
        raise ValueError(
            f"Split layer '{layer.name}' is called {len(nodes)} times in model '{model.name}': a "
            "split layer must be used exactly once."
        )
    return nodes[0]
