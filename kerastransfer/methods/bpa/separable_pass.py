"""`SeparablePassProbe`: the d single-filter networks with one pass of the next convolution.

When the split layer is followed, through per-channel layers only (BatchNormalization,
activations, pooling, dropout, padding), by a `Conv2D`, masked channels j != k enter that chain as
zeros, so they leave it as the fixed image E = chain(0); channel k leaves it as
P_k = chain(split)_k. The next convolution is linear, so for every k at once

    conv(X_k) = conv(E) + depthwise_conv(P - E)[k-th group] (+ bias),

one depthwise convolution with the next kernel as its depth multiplier: the next convolution
costs one pass instead of d. Only the layers above it run d times, batched.
"""

import keras
import tensorflow as tf

from kerastransfer.methods.bpa.base_probe import FilterProbe
from kerastransfer.methods.bpa.split_layers import CHANNEL_PRESERVING, is_conv2d, split_node
from kerastransfer.models.graph import consumers, frontier, model_nodes


def _mixes_channels(op):
    activation = getattr(op, "activation", None)
    return getattr(activation, "__name__", "") in ("softmax", "log_softmax")


def separable_plan(model, layer):
    """`(chain layers, next conv, its input tensor, its output tensor)`, or None where the graph
    after split layer `layer` does not allow the separable pass."""
    split_tensor = split_node(model, layer).output_tensors[0]
    if any(dim is None for dim in split_tensor.shape[1:]):
        return None  # E = chain(0) needs the split activation's spatial size
    nodes = model_nodes(model)
    chain, tensor = [], split_tensor
    while True:
        next_nodes = consumers(model, tensor, nodes)
        if len(next_nodes) != 1 or len(next_nodes[0].input_tensors) != 1:
            return None
        op = next_nodes[0].operation
        if is_conv2d(op):
            break
        if (
            not isinstance(op, CHANNEL_PRESERVING)
            or (isinstance(op, keras.layers.BatchNormalization) and op.axis not in (-1, 3))
            or _mixes_channels(op)  # a softmax over channels is not per-channel
            or getattr(op, "data_format", "channels_last") != "channels_last"
        ):
            return None
        chain.append(op)
        tensor = next_nodes[0].output_tensors[0]
    conv = op
    strided = any(s > 1 for s in conv.strides) and any(r > 1 for r in conv.dilation_rate)
    if (
        conv.groups != 1
        or conv.data_format != "channels_last"
        or conv.kernel.shape[2] != layer.filters
        or strided
    ):
        return None
    next_out = next_nodes[0].output_tensors[0]
    if frontier(model, next_out):
        return None  # something above the next conv also reads a tensor from below it
    return chain, conv, tensor, next_out


class SeparablePassProbe(FilterProbe):
    """Runs the masked networks with one depthwise pass of the next convolution.

    Args: see `FilterProbe`; `plan` is `separable_plan(model, layer)` (computed when omitted, a
    ValueError where the graph does not allow this strategy).
    """

    pass_strategy = "separable"

    def __init__(self, model, layer, masks_per_pass=None, *, plan=None):
        super().__init__(model, layer, masks_per_pass)
        plan = plan or separable_plan(model, layer)
        if plan is None:
            raise ValueError(
                f"Split layer '{layer.name}' is not followed, through per-channel layers only, "
                "by a Conv2D that alone leads to the output: use TilePassProbe."
            )
        self.chain, self.next_conv, chain_out, next_out = plan
        self.split_shape = tuple(self.split_tensor.shape[1:])
        self.below = keras.Model(model.inputs, chain_out, name=f"{layer.name}_below")
        self.above = keras.Model(next_out, model.outputs[0], name=f"{layer.name}_above")

    def batch_confusions(self, x, y):
        labels = self.labels(y)
        chained = self.below(x, training=False)  # P: the unmasked split activation after the chain
        batch = tf.shape(chained)[0]
        # E = chain(0): what masked channels look like where the next convolution reads them.
        empty = tf.zeros((1,) + self.split_shape, dtype=chained.dtype)
        for op in self.chain:
            empty = op(empty, training=False)
        conv = self.next_conv
        kernel = tf.cast(conv.kernel, chained.dtype)
        padding = conv.padding.upper()
        strides = [1, *conv.strides, 1]
        dilations = list(conv.dilation_rate)
        base = tf.nn.conv2d(empty, kernel, strides, padding, dilations=[1, *dilations, 1])
        if conv.use_bias:
            base = base + tf.cast(conv.bias, base.dtype)
        delta = chained - empty
        counts = []
        for start, n in self.mask_chunks():
            part = tf.nn.depthwise_conv2d(
                delta[..., start : start + n],
                kernel[:, :, start : start + n, :],
                strides,
                padding,
                dilations=dilations,
            )  # (batch, h, w, n * filters_out), channel index i * filters_out + c
            shape = tf.shape(part)
            part = tf.reshape(part, [batch, shape[1], shape[2], n, conv.filters])
            part = tf.transpose(part, [3, 0, 1, 2, 4]) + base[None]
            out = conv.activation(tf.reshape(part, [n * batch, shape[1], shape[2], conv.filters]))
            scores = self.above(out, training=False)
            counts.append(self.count(labels, scores, n, batch))
        return tf.concat(counts, axis=0)
