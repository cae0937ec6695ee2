"""`AdaptedLayer`: a frozen Dense or 2-D convolution layer whose kernel is tuned by a low-rank
update (LoRA) or a low-rank update with a separate magnitude (DoRA).

Each kernel W is viewed as a matrix M (rows x cols, one column per output unit) and updated as

    LoRA:  M' = M + (alpha / r) A B                         A: rows x r, B: r x cols
    DoRA:  M' = m * V / ||V||_c,   V = M + (alpha / r) A B   m: cols, ||.||_c: column norms

Hu et al. (2021), "LoRA: Low-Rank Adaptation of Large Language Models"; Liu et al. (2024),
"DoRA: Weight-Decomposed Low-Rank Adaptation". A is initialised He-uniform (seeded) and B with
zeros, so M' = M before training (exactly for LoRA; for DoRA m starts at ||M||_c, so to rounding).
As the DoRA paper recommends, ||V||_c is treated as a constant in the backward pass (detached from
the gradient), which saves memory and changes the gradient very little.

The matrix view of each kernel:

- `Dense` (in, out) is the matrix itself; `Conv2D` (kh, kw, in, out) is (kh*kw*in, out), as in
  the `Conv2d` layer of Hugging Face PEFT.
- `DepthwiseConv2D` (kh, kw, C, mult) is (kh*kw, C*mult): each of the C*mult filters changes by a
  combination of r spatial basis filters shared by all channels. A depthwise filter has only
  kh*kw values, so rank kh*kw already spans every possible change: the rank is at most
  min(kh*kw, C*mult). The output unit of DoRA is one (channel, multiplier) filter.
- `SeparableConv2D`: the pointwise kernel (1, 1, C*mult, out) is the matrix (C*mult, out) with
  rank r; the depthwise kernel takes the depthwise form with rank min(r, kh*kw, C*mult), so one
  `rank` serves both and the larger pointwise kernel sets the limit.

Dropout (`dropout` > 0) cannot act on a merged kernel, so it acts on the layer input of the
adapter path only: y = op(x, W) + op(dropout(x), W' - W), the form of Hugging Face PEFT for LoRA
and DoRA (the per-output DoRA scale commutes with the linear op). For the two-kernel separable
op, op(dropout(x), W') - op(dropout(x), W) takes the place of the difference term. Without
dropout, or outside training, the layer runs a single op with the merged kernel W'.

Example:

>>> base = keras.layers.Dense(3)
>>> base.build((None, 4))
>>> adapted = AdaptedLayer(base, rank=2)
>>> x = np.ones((2, 4), "float32")
>>> bool(np.array_equal(adapted(x), base(x)))
True
>>> [tuple(w.shape) for w in adapted.trainable_weights]
[(4, 2), (2, 3)]
"""

import keras
import numpy as np
from keras import ops

L = keras.layers
SUPPORTED_TYPES = (L.Dense, L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D)
METHODS = ("lora", "dora")
_KINDS = (
    (L.SeparableConv2D, "separable"),
    (L.DepthwiseConv2D, "depthwise"),
    (L.Conv2D, "conv"),
    (L.Dense, "dense"),
)
_EPS = 1e-12  # floor of a DoRA column norm (a zero column would divide by zero)


def layer_kind(layer):
    """'dense', 'conv', 'depthwise' or 'separable'; None for a layer no form supports."""
    return next((kind for cls, kind in _KINDS if isinstance(layer, cls)), None)


def _matrix_shape(shape, depthwise):
    if depthwise:  # (kh, kw, C, mult) -> (kh*kw, C*mult)
        return int(shape[0] * shape[1]), int(shape[2] * shape[3])
    return int(np.prod(shape[:-1])), int(shape[-1])


def kernel_parts(layer, rank):
    """[(variable prefix, kernel attribute, (rows, cols), part rank)] of a built layer."""
    kind = layer_kind(layer)
    if kind == "separable":
        dw = _matrix_shape(layer.depthwise_kernel.shape, True)
        pw = _matrix_shape(layer.pointwise_kernel.shape, False)
        return [
            ("depthwise_", "depthwise_kernel", dw, min(rank, *dw)),
            ("pointwise_", "pointwise_kernel", pw, rank),
        ]
    return [("", "kernel", _matrix_shape(layer.kernel.shape, kind == "depthwise"), rank)]


def max_rank(layer):
    """The largest `rank` a built supported layer takes: min(rows, cols) of its (pointwise)
    kernel matrix; beyond it A B has no more rank and more parameters than W itself."""
    return min(kernel_parts(layer, 1)[-1][2])


def check_arguments(rank, alpha, dropout, method):
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"`rank` must be an integer >= 1. Received: rank={rank!r}")
    if alpha is not None and (isinstance(alpha, bool) or not alpha > 0):
        raise ValueError(f"`alpha` must be None (= rank) or > 0. Received: alpha={alpha!r}")
    if isinstance(dropout, bool) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be a number in [0, 1). Received: dropout={dropout!r}")
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}. Received: method={method!r}")


def check_layer(layer, path=None):
    """Raises when `layer` cannot be adapted (already adapted, unsupported, Keras's own LoRA or
    quantization on it)."""
    label = f"Layer '{path or layer.name}' ({type(layer).__name__})"
    if isinstance(layer, AdaptedLayer):
        raise ValueError(
            f"{label[:-1]}, {layer.method}) is already adapted; adapt the model once, or merge "
            "the adapters first (`merge_adapters`)."
        )
    if layer_kind(layer) is None:
        names = ", ".join(cls.__name__ for cls in SUPPORTED_TYPES)
        raise TypeError(f"{label} cannot be adapted: the supported layer types are {names}.")
    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        raise ValueError(f"{label} uses Keras's own LoRA or quantization; adapt a plain layer.")


def check_rank(layer, rank, path=None):
    limit = max_rank(layer)
    if rank > limit:
        kind = layer_kind(layer)
        kernel = layer.pointwise_kernel if kind == "separable" else layer.kernel
        rows, cols = kernel_parts(layer, 1)[-1][2]
        why = f"as a matrix it is {rows} x {cols}"
        if kind == "depthwise" and limit == rows:
            why = f"a depthwise filter has only {rows} spatial values"
        raise ValueError(
            f"`rank` must be at most {limit} for layer '{path or layer.name}' "
            f"({type(layer).__name__}, kernel {tuple(kernel.shape)}: {why}); lower `rank` or "
            f"leave the layer out of `targets`. Received: rank={rank}"
        )


@keras.saving.register_keras_serializable(package="kerastransfer")
class AdaptedLayer(L.Wrapper):
    """A frozen `Dense`, `Conv2D`, `DepthwiseConv2D` or `SeparableConv2D` with a LoRA or DoRA
    update of its kernel(s) (see the module for the forms).

    Args:
        layer: the base layer; it is set non-trainable (it stays frozen whatever `trainable`
            is set to later on this wrapper). Its bias and activation are applied after the op.
        rank: r, the rank of the update (at most `max_rank(layer)`).
        alpha: the update is scaled by alpha / r; None: alpha = r.
        dropout: dropout rate on the layer input of the adapter path (training only).
        method: 'lora' or 'dora'.
        seed: seed of the initialiser of A (and of the dropout).
        **kwargs: `Layer` arguments; `name` defaults to the base layer's name, `dtype` to its
            dtype policy.

    Example (the update starts at zero, so the output is the base layer's):

    >>> base = keras.layers.Conv2D(4, 3)
    >>> base.build((None, 6, 6, 2))
    >>> adapted = AdaptedLayer(base, rank=2, method="dora")
    >>> x = np.ones((1, 6, 6, 2), "float32")
    >>> bool(np.allclose(adapted(x), base(x), atol=1e-6))
    True
    >>> adapted.merged_layer().__class__.__name__
    'Conv2D'
    """

    def __init__(self, layer, rank=8, alpha=None, dropout=0.0, method="lora", seed=None, **kwargs):
        check_layer(layer)
        check_arguments(rank, alpha, dropout, method)
        kwargs.setdefault("name", layer.name)
        kwargs.setdefault("dtype", layer.dtype_policy)
        super().__init__(layer, **kwargs)
        self.rank = int(rank)
        self.alpha = float(self.rank if alpha is None else alpha)
        self.dropout = float(dropout)
        self.method = method
        self.seed = seed
        self.scale = self.alpha / self.rank
        self.supports_masking = layer.supports_masking
        layer.trainable = False
        self.input_dropout = None
        if self.dropout:
            self.input_dropout = L.Dropout(self.dropout, seed=seed, dtype=self.dtype_policy)
        if layer.built:
            check_rank(layer, self.rank)

    @property
    def trainable(self):
        return L.Wrapper.trainable.fget(self)

    @trainable.setter
    def trainable(self, value):
        L.Wrapper.trainable.fset(self, value)
        self.layer.trainable = False  # the base kernel is never trained

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        check_rank(self.layer, self.rank)
        self._adapters = []
        for i, (prefix, attr, (rows, cols), rank) in enumerate(kernel_parts(self.layer, self.rank)):
            seed = None if self.seed is None else self.seed + i
            a = self.add_weight(
                name=f"{prefix}lora_a",
                shape=(rows, rank),
                initializer=keras.initializers.HeUniform(seed=seed),
            )
            b = self.add_weight(name=f"{prefix}lora_b", shape=(rank, cols), initializer="zeros")
            magnitude = None
            if self.method == "dora":
                magnitude = self.add_weight(name=f"{prefix}magnitude", shape=(cols,))
                kernel = ops.convert_to_numpy(getattr(self.layer, attr))
                magnitude.assign(np.linalg.norm(np.reshape(kernel, (rows, cols)), axis=0))
            self._adapters.append((attr, a, b, magnitude))
        self.built = True

    @property
    def adapter_weights(self):
        """The variables of the update (A, B and, for DoRA, m per kernel), not the base's."""
        return [v for _, *part in getattr(self, "_adapters", []) for v in part if v is not None]

    def _kernels(self):
        """The effective kernels W' (variable dtype), in the order of `kernel_parts`."""
        kernels = []
        for attr, a, b, magnitude in self._adapters:
            kernel = getattr(self.layer, attr)
            v = ops.reshape(kernel, (a.shape[0], b.shape[1])) + self.scale * ops.matmul(a, b)
            if magnitude is not None:
                norm = ops.stop_gradient(ops.sqrt(ops.sum(ops.square(v), axis=0)))
                v = v * (magnitude / ops.maximum(norm, _EPS))
            kernels.append(ops.reshape(v, kernel.shape))
        return kernels

    def _op(self, x, kernels):
        kernels = [ops.cast(k, self.compute_dtype) for k in kernels]
        kind = layer_kind(self.layer)
        if kind == "dense":
            return ops.matmul(x, kernels[0])
        config = self.layer.get_config()
        args = {k: config[k] for k in ("strides", "padding", "dilation_rate", "data_format")}
        if kind == "conv":
            return ops.conv(x, kernels[0], **args)
        if kind == "depthwise":
            return ops.depthwise_conv(x, kernels[0], **args)
        return ops.separable_conv(x, kernels[0], kernels[1], **args)

    def call(self, inputs, training=None):
        kernels = self._kernels()
        if self.input_dropout is None or not training:
            outputs = self._op(inputs, kernels)
        else:
            dropped = self.input_dropout(inputs, training=True)
            base = [getattr(self.layer, attr) for attr, *_ in self._adapters]
            outputs = self._op(inputs, base)
            if len(kernels) == 1:  # linear op: one op on the kernel difference
                outputs = outputs + self._op(dropped, [kernels[0] - base[0]])
            else:
                outputs = outputs + self._op(dropped, kernels) - self._op(dropped, base)
        bias = getattr(self.layer, "bias", None)
        if bias is not None:
            bias = ops.cast(bias, outputs.dtype)
            if self.layer.get_config().get("data_format") == "channels_first":
                bias = ops.reshape(bias, (1, -1) + (1,) * (len(outputs.shape) - 2))
            outputs = outputs + bias
        activation = self.layer.activation
        return outputs if activation is None else activation(outputs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def merged_kernel(self):
        """The effective kernel W' as a NumPy array; for `SeparableConv2D` the pair
        (depthwise kernel, pointwise kernel)."""
        kernels = [ops.convert_to_numpy(k) for k in self._kernels()]
        return kernels[0] if len(kernels) == 1 else tuple(kernels)

    def merged_layer(self):
        """A plain layer of the base type and config (this wrapper's name and `trainable`)
        holding W' and the base bias: what this layer computes, without adapters."""
        config = self.layer.get_config()
        config.update(name=self.name, trainable=self.trainable)
        merged = type(self.layer).from_config(config)
        merged.build_from_config(self.layer.get_build_config())
        kernels = [ops.convert_to_numpy(k) for k in self._kernels()]
        new = {id(getattr(self.layer, attr)): k for (attr, *_), k in zip(self._adapters, kernels)}
        merged.set_weights(
            [new[id(v)] if id(v) in new else ops.convert_to_numpy(v) for v in self.layer.weights]
        )
        return merged

    def get_config(self):
        config = super().get_config()
        config.update(
            rank=self.rank,
            alpha=self.alpha,
            dropout=self.dropout,
            method=self.method,
            seed=self.seed,
        )
        return config
