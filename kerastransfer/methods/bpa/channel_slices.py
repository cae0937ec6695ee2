"""The parameters of each filter of a split layer: every per-channel slice that consumes it.

Filter k of a split `Conv2D` owns its kernel[..., k] and bias[k], and every parameter slice that
reads channel k while the channel still exists as a channel downstream. The walk follows the
split activation through the model's (flattened) graph and tracks, for every tensor, at which
positions of its last axis channel k sits:

- kept in place by element-wise and per-channel layers: activations (not softmax over channels),
  pooling, padding, cropping, up-sampling, dropout and noise, rescaling, global pooling;
  `BatchNormalization` over the channel axis (gamma[k], beta[k] are scaled, wherever it sits);
  `PReLU` (alpha[..., k]);
- moved by `DepthwiseConv2D` (kernel[:, :, k, :] and its bias slice are scaled; channel k becomes
  channels k*m ... k*m+m-1 for depth multiplier m), `Flatten` (channels-last: positions k, k+c,
  k+2c, ... for c channels) and `Concatenate` on the channel axis (shifted by the channels before
  it);
- merged by `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum` (every branch followed;
  a position fed by two different filters is mixed);
- consumed by the input slice of a `Conv2D` (kernel[:, :, k, :]; for a grouped convolution the
  slice of the group that reads k), a `Conv2DTranspose`, the depthwise and pointwise kernels of a
  `SeparableConv2D`, and a `Dense` (rows of channel k).

Anything else (`Reshape`, `Permute`, softmax over the channel axis, `LayerNormalization`,
attention, custom layers, a `Concatenate` whose shift cannot be read) mixes channel k with no
per-filter slice: the variables of that layer and of the layers reading the mixed tensor (up to
and including the next convolution or `Dense`) are reported as *unscaled*.

Every slice is returned as an *owner* array: an int32 array broadcastable to the variable, holding
k where filter k owns the entry and -1 elsewhere.
"""

import keras
import numpy as np

from kerastransfer.methods.bpa.split_layers import check_functional, split_node
from kerastransfer.models.graph import flat_view, ordered_nodes

MIXED = "mixed"

L = keras.layers
PRESERVING = tuple(
    getattr(L, name)
    for name in (
        "ReLU",
        "LeakyReLU",
        "ELU",
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "ActivityRegularization",
        "Identity",
        "Rescaling",
        "MaxPooling1D",
        "MaxPooling2D",
        "MaxPooling3D",
        "AveragePooling1D",
        "AveragePooling2D",
        "AveragePooling3D",
        "ZeroPadding1D",
        "ZeroPadding2D",
        "ZeroPadding3D",
        "Cropping1D",
        "Cropping2D",
        "Cropping3D",
        "UpSampling1D",
        "UpSampling2D",
        "UpSampling3D",
        "Resizing",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalAveragePooling3D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalMaxPooling3D",
    )
    if hasattr(L, name)
)
MERGES = (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)
DEPTHWISE = (L.DepthwiseConv1D, L.DepthwiseConv2D)
SEPARABLE = (L.SeparableConv1D, L.SeparableConv2D)
TRANSPOSE = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
CONSUMERS = (L.Conv1D, L.Conv2D, L.Conv3D, L.Dense, L.EinsumDense) + SEPARABLE + TRANSPOSE


def _mixes_channels(op):
    """Whether `op`'s activation mixes the channels (softmax over the last axis)."""
    activation = getattr(op, "activation", None)
    return getattr(activation, "__name__", "") in ("softmax", "log_softmax")


def _channels_last(op):
    return getattr(op, "data_format", "channels_last") == "channels_last"


def _last_axis(axis, rank):
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return any(a % rank == rank - 1 for a in axes)


def _own_variables(op):
    return [v for v in getattr(op, "weights", []) if v.trainable]


class _Slices:
    """Owner arrays per variable, and the variables left unscaled."""

    def __init__(self):
        self.owners = {}  # id(variable) -> [variable, owner]
        self.unscaled = {}

    def add(self, variable, owner):
        entry = self.owners.get(id(variable))
        if entry is None:
            self.owners[id(variable)] = [variable, owner]
            return
        shape = np.broadcast_shapes(entry[1].shape, owner.shape)
        old, new = np.broadcast_to(entry[1], shape), np.broadcast_to(owner, shape)
        entry[1] = np.where(old >= 0, old, new)

    def axis(self, variable, axis, layout):
        """Entries of `variable` along `axis` at the positions of `layout` (one array per k)."""
        size = variable.shape[axis]
        vector = np.full(size, -1, np.int32)
        for k, positions in enumerate(layout):
            vector[positions] = k
        shape = [1] * len(variable.shape)
        shape[axis] = size
        self.add(variable, vector.reshape(shape))

    def grouped(self, conv, layout):
        """The kernel slice of the group that reads each position (a grouped convolution)."""
        kernel = conv.kernel
        per_group_in, filters = kernel.shape[-2], kernel.shape[-1]
        per_group_out = filters // conv.groups
        owner = np.full((per_group_in, filters), -1, np.int32)
        for k, positions in enumerate(layout):
            for p in positions:
                group = p // per_group_in
                owner[p % per_group_in, group * per_group_out : (group + 1) * per_group_out] = k
        self.add(kernel, owner.reshape((1,) * (len(kernel.shape) - 2) + owner.shape))

    def leave_unscaled(self, op):
        for v in _own_variables(op):
            self.unscaled[id(v)] = v


def _merge(layouts, size):
    """Union of the positions of several layouts; MIXED where two filters share a position."""
    owner = np.full(size, -1, np.int64)
    for layout in layouts:
        for k, positions in enumerate(layout):
            taken = owner[positions]
            if np.any((taken >= 0) & (taken != k)):
                return MIXED
            owner[positions] = k
    return [np.flatnonzero(owner == k) for k in range(len(layouts[0]))]


def _visit(node, tracked, slices):
    """Records the slices `node` owns for the tracked inputs; returns its output layout, MIXED,
    or None where the channel is consumed."""
    op = node.operation
    layouts = [layout for _, layout in tracked]
    if any(layout is MIXED for layout in layouts):
        slices.leave_unscaled(op)
        return None if isinstance(op, CONSUMERS) else MIXED
    tensor, layout = tracked[0]
    rank = len(tensor.shape)
    out_shape = node.output_tensors[0].shape
    if isinstance(op, MERGES):
        size = out_shape[-1]
        return MIXED if size is None else _merge(layouts, size)
    if isinstance(op, L.Concatenate):
        if not _last_axis(op.axis, len(out_shape)):
            same = all(all(np.array_equal(a, b) for a, b in zip(x, layout)) for x in layouts)
            return layout if same else MIXED
        widths = [t.shape[-1] for t in node.input_tensors]
        if any(w is None for w in widths):
            return MIXED  # the shift of the later inputs cannot be read
        offsets = np.cumsum([0] + widths[:-1])
        shifted = [
            [p + offsets[i] for p in lay]
            for i, t in enumerate(node.input_tensors)
            for tt, lay in tracked
            if tt is t
        ]
        return _merge(shifted, out_shape[-1])
    if isinstance(op, L.BatchNormalization):
        if not _last_axis(op.axis, rank):
            slices.leave_unscaled(op)
            return MIXED
        for variable in (op.gamma if op.scale else None, op.beta if op.center else None):
            if variable is not None:
                slices.axis(variable, 0, layout)
        return layout
    if isinstance(op, DEPTHWISE) and _channels_last(op):
        kernel = op.kernel
        slices.axis(kernel, len(kernel.shape) - 2, layout)
        multiplier = kernel.shape[-1]
        moved = [(p[:, None] * multiplier + np.arange(multiplier)).ravel() for p in layout]
        if op.use_bias:
            slices.axis(op.bias, 0, moved)
        return MIXED if _mixes_channels(op) else moved
    if isinstance(op, SEPARABLE) and _channels_last(op):
        depthwise = op.depthwise_kernel
        slices.axis(depthwise, len(depthwise.shape) - 2, layout)
        multiplier = depthwise.shape[-1]
        moved = [(p[:, None] * multiplier + np.arange(multiplier)).ravel() for p in layout]
        slices.axis(op.pointwise_kernel, len(op.pointwise_kernel.shape) - 2, moved)
        return None
    if isinstance(op, TRANSPOSE) and _channels_last(op):
        slices.axis(op.kernel, len(op.kernel.shape) - 1, layout)
        return None
    if isinstance(op, (L.Conv1D, L.Conv2D, L.Conv3D)) and _channels_last(op):
        if op.groups == 1:
            slices.axis(op.kernel, len(op.kernel.shape) - 2, layout)
        else:
            slices.grouped(op, layout)
        return None
    if isinstance(op, L.Dense):
        slices.axis(op.kernel, 0, layout)
        return None
    if isinstance(op, L.PReLU):
        alpha = op.alpha
        if alpha.shape[-1] != tensor.shape[-1]:
            slices.leave_unscaled(op)
            return MIXED
        slices.axis(alpha, len(alpha.shape) - 1, layout)
        return layout
    if isinstance(op, L.Flatten) and _channels_last(op):
        if any(s is None for s in tensor.shape[1:]):
            return MIXED
        channels, spatial = tensor.shape[-1], int(np.prod(tensor.shape[1:-1]))
        return [(np.arange(spatial)[:, None] * channels + p[None, :]).ravel() for p in layout]
    if isinstance(op, L.Softmax):
        return MIXED if _last_axis(op.axis, rank) else layout
    if isinstance(op, L.Activation):
        return MIXED if _mixes_channels(op) else layout
    if isinstance(op, PRESERVING) and _channels_last(op) and out_shape[-1] == tensor.shape[-1]:
        return layout
    slices.leave_unscaled(op)  # Reshape, Permute, LayerNormalization, attention, custom layers...
    return MIXED


def channel_slices(model, layer):
    """The per-filter slices of split layer `layer` and the variables left unscaled.

    Args:
        model: a functional model (nested functional models are walked through).
        layer: the split `Conv2D` (a layer object of `model`).

    Returns:
        `(slices, unscaled)`: `slices` is a list of `(variable, owner)`, `owner` an int32 array
        broadcastable to the variable holding the filter index k of every entry filter k owns
        and -1 elsewhere; `unscaled` lists the variables that read channel k after it was mixed
        with no per-filter slice.
    """
    check_functional(model)
    graph = flat_view(model)
    node = split_node(graph, layer)
    d = layer.filters
    slices = _Slices()
    identity = [np.array([k]) for k in range(d)]
    slices.axis(layer.kernel, len(layer.kernel.shape) - 1, identity)
    if layer.use_bias:
        slices.axis(layer.bias, 0, identity)
    layouts = {id(node.output_tensors[0]): MIXED if _mixes_channels(layer) else identity}
    for current in ordered_nodes(graph):
        tracked = [(t, layouts[id(t)]) for t in current.input_tensors if id(t) in layouts]
        if not tracked or current is node:
            continue
        out = _visit(current, tracked, slices)
        if out is not None:
            for t in current.output_tensors:
                layouts[id(t)] = out
    return [tuple(entry) for entry in slices.owners.values()], list(slices.unscaled.values())


def filter_parameters(model, layer):
    """The variables holding split layer `layer`'s filters, with the axes that index the filter.

    Returns:
        list of `(variable, axis)`: `axis` is an int, or a tuple of axes for a slice over two
        axes (a grouped convolution's kernel). See `channel_slices` for which slices belong.
    """
    result = []
    for variable, owner in channel_slices(model, layer)[0]:
        axes = tuple(i for i, size in enumerate(owner.shape) if size > 1)
        if not axes:  # a one-element variable: axis of the single entry
            axes = (len(owner.shape) - 1,)
        result.append((variable, axes[0] if len(axes) == 1 else axes))
    return result
