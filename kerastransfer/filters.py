"""Single-filter networks of a split layer: resolution, per-filter parameters, masked passes, Gamma.

A *split layer* is a `Conv2D` of a functional model whose d output channels define d single-filter
networks: network k is the model with every output channel of the split layer zeroed except
channel k (SPEC §4). This module

- resolves split layers by name (`resolve_split_layers`), with a clear error for a wrong name;
- finds the parameters that belong to each filter (`filter_parameters`): the split kernel[..., k]
  and bias[k], a directly following BatchNormalization's gamma[k] and beta[k], and the next
  convolution's input slice kernel[:, :, k, :];
- runs the d masked forward passes efficiently (`FilterProbe`): the part of the network below the
  split layer runs once per batch, the part above it runs for the d masks at once, batched
  (the split activation is tiled to d x batch and multiplied by one-hot channel masks);
- turns the per-filter confusion matrices (`tf.math.confusion_matrix`, summed across replicas
  and workers under a `tf.distribute` strategy) into costs Gamma (`compute_gamma`).

Example:

>>> import numpy as np, keras
>>> inputs = keras.Input((8, 8, 1))
>>> x = keras.layers.Conv2D(3, 3, name="conv1")(inputs)
>>> x = keras.layers.Flatten()(x)
>>> model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
>>> data = (np.random.rand(16, 8, 8, 1).astype("float32"), np.arange(16) % 2)
>>> costs = compute_gamma(model, data, method="agreement")
>>> costs["conv1"].shape
(3,)
"""

import difflib

import keras
import numpy as np
import tensorflow as tf

from kerastransfer import bpa as bpa_lib

# Layers that keep the channel axis of their input as it is (channel k in -> channel k out).
_CHANNEL_PRESERVING = (
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


def _is_conv2d(layer):
    return isinstance(layer, keras.layers.Conv2D) and not isinstance(
        layer,
        (keras.layers.Conv2DTranspose, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D),
    )


def _graph(model):
    """The functional graph of `model` (a `Sequential` keeps one once built)."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    return model


def _check_functional(model):
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
    _check_functional(model)
    convs = [layer for layer in model.layers if _is_conv2d(layer)]
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
        if not _is_conv2d(layer):
            raise ValueError(
                f"Split layer '{name}' is a {type(layer).__name__}, not a Conv2D: only "
                f"convolutional layers can be split into single-filter networks. Available "
                f"Conv2D layers: {conv_names}"
            )
        resolved.append(layer)
    return resolved


def _model_nodes(model):
    return [node for nodes in _graph(model)._nodes_by_depth.values() for node in nodes]


def _consumers(model, tensor, nodes=None):
    """Nodes of `model`'s graph that take `tensor` as an input."""
    nodes = _model_nodes(model) if nodes is None else nodes
    return [n for n in nodes if any(t is tensor for t in n.input_tensors)]


def _split_node(model, layer):
    nodes = [n for n in _model_nodes(model) if n.operation is layer]
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
    nodes = _model_nodes(model)
    tensor = _split_node(model, layer).output_tensors[0]
    first = True
    while True:
        consumers = _consumers(model, tensor, nodes)
        if len(consumers) != 1:
            break  # the channel feeds several branches (or none): no single "next" layer
        op = consumers[0].operation
        if first and isinstance(op, keras.layers.BatchNormalization) and op.axis in (-1, 3):
            if op.scale:
                params.append((op.gamma, 0))
            if op.center:
                params.append((op.beta, 0))
        first = False
        if _is_conv2d(op):
            if op.groups == 1 and op.kernel.shape[2] == d:
                params.append((op.kernel, 2))
            break
        if not isinstance(op, _CHANNEL_PRESERVING):
            break
        tensor = consumers[0].output_tensors[0]
    return params


def broadcast_shape(variable, axis):
    """The shape of a multiplier of `variable` holding one value per filter along `axis`."""
    shape = [1] * len(variable.shape)
    shape[axis] = variable.shape[axis]
    return tuple(shape)


class FilterProbe:
    """Runs the d single-filter networks of one split layer and counts their confusion matrices.

    Two exact ways of running the d masked networks, both computing everything below the split
    layer once per batch:

    - `"separable"` (used by `"auto"` when the graph allows it): the split layer is followed,
      through per-channel layers only (BatchNormalization, activations, pooling, dropout,
      padding), by a Conv2D. Masked channels j != k enter that chain as zeros, so they leave it
      as the fixed image E = chain(0); channel k leaves it as P_k = chain(split)_k. The next
      convolution is linear, so for every k at once
      conv(X_k) = conv(E) + depthwise_conv(P - E)[k-th group] (+ bias), one depthwise
      convolution with the next kernel as its depth multiplier: the next convolution costs one
      pass instead of d. Only the layers above it run d times, batched.
    - `"tile"` (any graph): the split activation is tiled to d x batch, each copy multiplied by
      a one-hot channel mask, and the whole part above the split layer runs once on the stack
      (tensors skipping over the split layer are tiled along).

    Args:
        model: a functional model with one output of class scores (probabilities or logits,
            shape `(batch, C)` with C >= 2).
        layer: the split `Conv2D` layer (or its name).
        masks_per_pass: filters per call of the upper part (default: all d). Lower it to bound
            memory: the upper part sees `masks_per_pass * batch` samples at once.
        method: `"auto"`, `"separable"` (a ValueError if the graph does not allow it) or
            `"tile"`.
    """

    def __init__(self, model, layer, masks_per_pass=None, method="auto"):
        if isinstance(layer, str):
            (layer,) = resolve_split_layers(model, layer)
        _check_functional(model)
        if method not in ("auto", "separable", "tile"):
            raise ValueError(
                f"`method` must be 'auto', 'separable' or 'tile'. Received: method={method!r}"
            )
        if len(model.outputs) != 1:
            raise ValueError(
                f"Gamma needs a model with one output of class scores; model '{model.name}' has "
                f"{len(model.outputs)} outputs."
            )
        num_classes = model.outputs[0].shape[-1]
        if len(model.outputs[0].shape) != 2 or num_classes is None or num_classes < 2:
            raise ValueError(
                "Gamma needs class scores of shape (batch, C) with C >= 2 (softmax probabilities "
                f"or logits). Received output shape: {model.outputs[0].shape}"
            )
        if layer.data_format != "channels_last":
            raise ValueError(
                f"Split layer '{layer.name}' uses data_format={layer.data_format!r}; only "
                "'channels_last' is supported."
            )
        self.model = model
        self.layer = layer
        self.num_filters = layer.filters
        self.num_classes = int(num_classes)
        if masks_per_pass is None:
            masks_per_pass = self.num_filters
        if not isinstance(masks_per_pass, int) or masks_per_pass < 1:
            raise ValueError(
                f"`masks_per_pass` must be a positive integer. Received: {masks_per_pass!r}"
            )
        self.masks_per_pass = min(masks_per_pass, self.num_filters)
        split_tensor = _split_node(model, layer).output_tensors[0]
        plan = self._separable_plan(split_tensor) if method != "tile" else None
        if method == "separable" and plan is None:
            raise ValueError(
                f"Split layer '{layer.name}' is not followed, through per-channel layers only, by "
                "a Conv2D that alone leads to the output: use method='tile' or 'auto'."
            )
        if plan is not None:
            self.method = "separable"
            self._chain, self._next_conv, chain_out, next_out = plan
            self.below = keras.Model(model.inputs, chain_out, name=f"{layer.name}_below")
            self.above = keras.Model(next_out, model.outputs[0], name=f"{layer.name}_above")
        else:
            self.method = "tile"
            frontier = self._frontier(split_tensor)
            cut = [split_tensor] + frontier
            self.below = keras.Model(model.inputs, cut, name=f"{layer.name}_below")
            self.above = keras.Model(cut, model.outputs[0], name=f"{layer.name}_above")
        self._step = tf.function(self._confusions)

    def _frontier(self, split_tensor):
        """Tensors from below `split_tensor` that the part above it also reads (skip paths)."""
        nodes = _model_nodes(self.model)
        downstream, queue = [], [split_tensor]
        while queue:
            tensor = queue.pop()
            for node in _consumers(self.model, tensor, nodes):
                if not any(node is n for n in downstream):
                    downstream.append(node)
                    queue.extend(node.output_tensors)
        produced = [t for n in downstream for t in n.output_tensors] + [split_tensor]
        frontier = []
        for node in downstream:
            for t in node.input_tensors:
                if not any(t is p for p in produced) and not any(t is f for f in frontier):
                    frontier.append(t)
        return frontier

    def _separable_plan(self, split_tensor):
        """(chain layers, next conv, its input tensor, its output tensor), or None."""
        if any(dim is None for dim in split_tensor.shape[1:]):
            return None  # E = chain(0) needs the split activation's spatial size
        self._split_shape = tuple(split_tensor.shape[1:])
        nodes = _model_nodes(self.model)
        chain, tensor = [], split_tensor
        while True:
            consumers = _consumers(self.model, tensor, nodes)
            if len(consumers) != 1 or len(consumers[0].input_tensors) != 1:
                return None
            op = consumers[0].operation
            if _is_conv2d(op):
                break
            if not isinstance(op, _CHANNEL_PRESERVING) or (
                isinstance(op, keras.layers.BatchNormalization) and op.axis not in (-1, 3)
            ) or getattr(op, "data_format", "channels_last") != "channels_last":
                return None
            chain.append(op)
            tensor = consumers[0].output_tensors[0]
        conv = op
        strided = any(s > 1 for s in conv.strides) and any(r > 1 for r in conv.dilation_rate)
        if (
            conv.groups != 1
            or conv.data_format != "channels_last"
            or conv.kernel.shape[2] != self.num_filters
            or strided
        ):
            return None
        next_out = consumers[0].output_tensors[0]
        if self._frontier(next_out):
            return None  # something above the next conv also reads a tensor from below it
        return chain, conv, tensor, next_out

    def _labels(self, y):
        y = tf.convert_to_tensor(y)
        if y.shape.rank == 2 and y.shape[-1] == self.num_classes and self.num_classes > 1:
            y = tf.argmax(y, axis=-1)  # one-hot
        return tf.cast(tf.reshape(y, [-1]), tf.int32)

    def _count(self, labels, scores, n, batch):
        preds = tf.reshape(tf.argmax(scores, axis=-1, output_type=tf.int32), [n, batch])
        return tf.map_fn(
            lambda p: tf.math.confusion_matrix(
                labels, p, num_classes=self.num_classes, dtype=tf.int32
            ),
            preds,
            fn_output_signature=tf.TensorSpec([self.num_classes] * 2, tf.int32),
        )

    def _confusions(self, x, y):
        """(d, C, C) int32 confusion matrices of the d single-filter networks on one batch."""
        if self.method == "separable":
            return self._separable_confusions(x, y)
        labels = self._labels(y)
        split, *skips = tf.nest.flatten(self.below(x, training=False))
        batch = tf.shape(split)[0]
        d, k = self.num_filters, self.masks_per_pass
        eye = tf.eye(d, dtype=split.dtype)
        counts = []
        for start in range(0, d, k):
            n = min(k, d - start)
            masks = tf.reshape(eye[start : start + n], [n] + [1] * (split.shape.rank - 1) + [d])
            stacked_shape = tf.concat([[n * batch], tf.shape(split)[1:]], 0)
            stacked = tf.reshape(split[None] * masks, stacked_shape)
            tiled = [
                tf.tile(s, tf.concat([[n], tf.ones([s.shape.rank - 1], tf.int32)], 0))
                for s in skips
            ]
            scores = self.above([stacked] + tiled, training=False)
            counts.append(self._count(labels, scores, n, batch))
        return tf.concat(counts, axis=0)

    def _separable_confusions(self, x, y):
        labels = self._labels(y)
        chained = self.below(x, training=False)  # P: the unmasked split activation after the chain
        batch = tf.shape(chained)[0]
        # E = chain(0): what masked channels look like where the next convolution reads them.
        empty = tf.zeros((1,) + self._split_shape, dtype=chained.dtype)
        for op in self._chain:
            empty = op(empty, training=False)
        conv = self._next_conv
        kernel = tf.cast(conv.kernel, chained.dtype)
        padding = conv.padding.upper()
        strides = [1, *conv.strides, 1]
        dilations = list(conv.dilation_rate)
        base = tf.nn.conv2d(empty, kernel, strides, padding, dilations=[1, *dilations, 1])
        if conv.use_bias:
            base = base + tf.cast(conv.bias, base.dtype)
        delta = chained - empty
        d, k = self.num_filters, self.masks_per_pass
        counts = []
        for start in range(0, d, k):
            n = min(k, d - start)
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
            counts.append(self._count(labels, scores, n, batch))
        return tf.concat(counts, axis=0)

    def confusions(self, x, y):
        """Per-filter confusion matrices of one batch; traceable (call it inside `strategy.run`)."""
        return self._step(x, y)


SUBSETS = ("train", "validation", "train+validation")


def labelled_set(data, subset="train"):
    """The labelled set Gamma is computed on.

    Args:
        data: a `kerastransfer.data.TransferData` (then `subset` picks its split: the training
            set by default, the validation set, or both, as the paper reports), or the set itself
            (a batched `tf.data.Dataset` or `(x, y)` arrays, returned as is).
        subset: `"train"`, `"validation"` or `"train+validation"` (TransferData only).
    """
    if subset not in SUBSETS:
        raise ValueError(f"`subset` must be one of {SUBSETS}. Received: subset={subset!r}")
    if not (hasattr(data, "dataset") and hasattr(data, "arrays")):
        return data
    if subset == "train":
        return data.dataset("train")  # unshuffled: the counts do not depend on the order
    if data.validation is None:
        raise ValueError(
            f"subset={subset!r} needs a validation split, but this TransferData has none. "
            "Load it with `validation_split` > 0, or use subset='train'."
        )
    if subset == "validation":
        return data.validation
    return data.dataset("train").concatenate(data.validation)


def as_dataset(data, batch_size=256):
    """A batched `tf.data.Dataset` of `(x, y)` from a dataset or an `(x, y)` tuple of arrays."""
    if isinstance(data, tf.data.Dataset):
        return data.map(_drop_sample_weight)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return tf.data.Dataset.from_tensor_slices(tuple(data)).batch(batch_size)
    raise ValueError(
        "The labelled set for Gamma must be a batched `tf.data.Dataset` of (x, y) or a tuple "
        f"(x, y) of arrays. Received: {type(data).__name__}"
    )


def _drop_sample_weight(*batch):
    if len(batch) == 1 and isinstance(batch[0], (tuple, list)):
        batch = tuple(batch[0])
    if len(batch) < 2:
        raise ValueError("The labelled set for Gamma must yield (x, y) batches with labels.")
    return batch[0], batch[1]


def filter_confusions(probes, data, strategy=None, batch_size=256):
    """Sums the per-filter confusion matrices of each probe over a labelled set.

    Args:
        probes: list of `FilterProbe`.
        data: batched `tf.data.Dataset` of `(x, y)` (or `(x, y, sample_weight)`), or `(x, y)`
            arrays.
        strategy: a `tf.distribute.Strategy`; batches are split across its replicas (and
            workers) and the counts summed across all of them. Default: the current strategy.

    Returns:
        list of int64 arrays of shape (d, C, C), one per probe.
    """
    strategy = strategy or tf.distribute.get_strategy()
    dataset = as_dataset(labelled_set(data), batch_size)
    distributed = strategy.num_replicas_in_sync > 1 or isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    )
    totals = [np.zeros((p.num_filters, p.num_classes, p.num_classes), np.int64) for p in probes]

    def step(x, y):
        return [p.confusions(x, y) for p in probes]

    if distributed:
        dataset = strategy.experimental_distribute_dataset(dataset)
        for x, y in dataset:
            per_replica = strategy.run(step, args=(x, y))
            counts = [
                strategy.reduce(tf.distribute.ReduceOp.SUM, c, axis=None) for c in per_replica
            ]
            for total, c in zip(totals, counts):
                total += c.numpy()
    else:
        for x, y in dataset:
            for total, c in zip(totals, step(x, y)):
                total += c.numpy()
    return totals


def compute_gamma(
    model,
    data,
    split_layers=None,
    *,
    method="paper",
    normalization="max",
    masks_per_pass=None,
    strategy=None,
    subset="train",
    return_confusions=False,
):
    """Gamma for every filter of every split layer of `model` on a labelled set.

    Args:
        model: functional model with one class-score output.
        data: the labelled set (see `filter_confusions`).
        split_layers: names of Conv2D layers (default: the first Conv2D).
        method: `"paper"` or `"agreement"` (see `kerastransfer.bpa.gamma`).
        normalization: `"max"`, `"mean"` or `"none"` across the d filters of each layer.
        masks_per_pass: see `FilterProbe`.
        strategy: see `filter_confusions`.
        subset: with a `TransferData` as `data`: `"train"`, `"validation"` or
            `"train+validation"` (see `labelled_set`).
        return_confusions: also return the (d, C, C) confusion matrices.

    Returns:
        dict layer name -> float64 array (d,) (and a dict of confusions when asked).
    """
    bpa_lib._check_method(method)
    bpa_lib._check_normalization(normalization)
    data = labelled_set(data, subset)
    probes = [
        FilterProbe(model, layer, masks_per_pass)
        for layer in resolve_split_layers(model, split_layers)
    ]
    confusions = filter_confusions(probes, data, strategy=strategy)
    costs = {
        p.layer.name: bpa_lib.normalize_gamma(bpa_lib.gamma(c, method), normalization)
        for p, c in zip(probes, confusions)
    }
    if return_confusions:
        return costs, {p.layer.name: c for p, c in zip(probes, confusions)}
    return costs
