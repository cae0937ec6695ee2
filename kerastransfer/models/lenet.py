"""The LeNet-5 variant of Gutstein, Fuentes and Freudenthal, "Knowledge transfer in deep
convolutional neural nets" (2008; Figure 1 and Table 1), and its LeNet layers.

The network is LeNet-5 (LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to
document recognition", 1998) with the last two layers merged into one: F6 has one unit per bit of
the target code (20 for the paper's random 20-bit codes). Its levels, counted from the
input, are C1, S2, C3, S4, C5 and F6, and its free parameters are exactly those of Table 1:

| level | what | free parameters |
| --- | --- | --- |
| C1 | 6 maps, 5x5 convolution of the 32x32 input | 6 * (25 + 1) = 156 |
| S2 | 6 maps, 2x2 trainable subsampling | 6 * 2 = 12 |
| C3 | 16 maps, LeNet-5's partial connection table | 60 * 25 + 16 = 1,516 |
| S4 | 16 maps, 2x2 trainable subsampling | 16 * 2 = 32 |
| C5 | 120 maps of 1x1, 5x5 convolution | 120 * (400 + 1) = 48,120 |
| F6 | 20 units | 20 * (120 + 1) = 2,420 |
| total | | 52,256 |

Every unit uses LeNet's scaled tanh, `1.7159 * tanh(2/3 * x)`, so targets of -1 and +1 sit where
the squashing function bends most. The model takes raw pixels in [0, 255] (32x32x1) and scales
them itself. `CodeSoftmax` turns the F6 code outputs into class probabilities for serving.

Example:

>>> model = lenet5()
>>> free_parameter_table(model)
{'C1': 156, 'S2': 12, 'C3': 1516, 'S4': 32, 'C5': 48120, 'F6': 2420}
>>> count_free_parameters(model)
52256
"""

import keras
import numpy as np
from keras import layers, ops

from kerastransfer.surgery import weighted_levels

PACKAGE = "kerastransfer"

#: Table 1 of Gutstein et al. (2008): free parameters per level of its LeNet-5 variant (20-unit F6).
TABLE_1 = {"C1": 156, "S2": 12, "C3": 1516, "S4": 32, "C5": 48120, "F6": 2420}
LEVELS = tuple(TABLE_1)

# S-layers start as plain 2x2 averages (a coefficient of 1/4 on the tile sum).
_quarter = keras.initializers.Constant(0.25)


@keras.saving.register_keras_serializable(package=PACKAGE)
def scaled_tanh(x):
    """LeNet's squashing function `1.7159 * tanh(2/3 * x)`: f(1) = 1, f(-1) = -1.

    >>> round(float(scaled_tanh(1.0)), 4)
    1.0
    """
    return 1.7159 * ops.tanh(ops.multiply(x, 2.0 / 3.0))


def lenet5_connection_table():
    """LeNet-5's S2 -> C3 connection table (LeCun et al. 1998, Table I), shape (6, 16).

    `table[i, j]` is 1 where C3 map j reads S2 map i: maps 0-5 read 3 contiguous S2 maps, maps
    6-11 read 4 contiguous maps, maps 12-14 read 4 non-contiguous maps, map 15 reads all six; 60
    connections in all.

    >>> lenet5_connection_table().sum(axis=0).tolist()
    [3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 6]
    """
    inputs = [[j, j + 1, j + 2] for j in range(6)]
    inputs += [[j, j + 1, j + 2, j + 3] for j in range(6)]
    inputs += [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5], list(range(6))]
    table = np.zeros((6, 16), np.int64)
    for j, maps in enumerate(inputs):
        table[np.mod(maps, 6), j] = 1
    return table


@keras.saving.register_keras_serializable(package=PACKAGE)
class Subsampling2D(layers.Layer):
    """LeNet's trainable subsampling (S-layer): per map, `activation(w * tile_sum + b)`.

    The input maps are cut into non-overlapping `pool_size` tiles; the units of each tile are
    summed, multiplied by one learned coefficient of their map and shifted by one learned bias
    of their map. Two free parameters per map.

    Args:
        pool_size: tile size, an int or a pair (default 2).
        activation: activation applied after the affine map (default none).
        coefficient_initializer, bias_initializer: initializers of the two weights.

    Example:

    >>> layer = Subsampling2D(2, activation=scaled_tanh)
    >>> tuple(layer(np.ones((1, 28, 28, 6), "float32")).shape)
    (1, 14, 14, 6)
    >>> layer.count_params()
    12
    """

    def __init__(
        self,
        pool_size=2,
        activation=None,
        coefficient_initializer="ones",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        pool_size = (pool_size, pool_size) if isinstance(pool_size, int) else tuple(pool_size)
        if len(pool_size) != 2 or min(pool_size) < 1:
            raise ValueError(f"`pool_size` must be a positive int or pair. Received: {pool_size}")
        self.pool_size = pool_size
        self.activation = keras.activations.get(activation)
        self.coefficient_initializer = keras.initializers.get(coefficient_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"Subsampling2D expects feature maps (batch, height, width, maps). Received "
                f"shape {input_shape}."
            )
        maps = input_shape[-1]
        self.coefficient = self.add_weight(
            shape=(maps,), initializer=self.coefficient_initializer, name="coefficient"
        )
        self.bias = self.add_weight(shape=(maps,), initializer=self.bias_initializer, name="bias")

    def call(self, inputs):
        tile = self.pool_size[0] * self.pool_size[1]
        sums = ops.average_pool(inputs, self.pool_size, strides=self.pool_size) * tile
        return self.activation(sums * self.coefficient + self.bias)

    @property
    def free_parameters(self):
        return 2 * int(self.coefficient.shape[0])

    def compute_output_shape(self, input_shape):
        batch, height, width, maps = input_shape
        ph, pw = self.pool_size
        return (
            batch,
            None if height is None else height // ph,
            None if width is None else width // pw,
            maps,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "activation": keras.activations.serialize(self.activation),
            "coefficient_initializer": keras.initializers.serialize(self.coefficient_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class PartialConv2D(layers.Conv2D):
    """A `Conv2D` whose input maps reach each output map only through a connection table.

    The kernel is multiplied by the constant table (broadcast over the kernel window) before
    every convolution, so unconnected kernel entries never contribute and get zero gradient:
    only `free_parameters` weights are learned. The default table is LeNet-5's C3 table
    (`lenet5_connection_table`, 6 -> 16 maps, 60 connections).

    Args:
        filters: number of output maps; must match the table's columns.
        kernel_size: as for `Conv2D`.
        connections: 0/1 table of shape (input maps, filters); default LeNet-5's C3 table.
        **kwargs: the other `Conv2D` arguments (activation, padding, ...).

    Example:

    >>> c3 = PartialConv2D(16, 5)
    >>> tuple(c3(np.ones((1, 14, 14, 6), "float32")).shape)
    (1, 10, 10, 16)
    >>> c3.free_parameters, c3.count_params()
    (1516, 2416)
    """

    def __init__(self, filters, kernel_size, connections=None, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        table = lenet5_connection_table() if connections is None else connections
        table = np.asarray(table)
        if table.ndim != 2 or table.shape[1] != filters or not np.isin(table, (0, 1)).all():
            raise ValueError(
                f"`connections` must be a 0/1 table of shape (input maps, filters={filters}). "
                f"Received shape {table.shape}."
            )
        if not table.any(axis=0).all():
            raise ValueError(
                "Every output map needs at least one input map in `connections`; maps "
                f"{np.flatnonzero(~table.any(axis=0)).tolist()} have none."
            )
        self.connections = table.astype("int64")

    def build(self, input_shape):
        if input_shape[-1] != self.connections.shape[0]:
            raise ValueError(
                f"PartialConv2D '{self.name}' has a connection table for "
                f"{self.connections.shape[0]} input maps but receives {input_shape[-1]}."
            )
        super().build(input_shape)
        # Masked entries are not free parameters: keep them at zero so the weights are honest.
        self.kernel.assign(self.kernel * self._mask())

    def _mask(self):
        return ops.cast(self.connections[None, None], self.kernel.dtype)

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * self._mask())

    @property
    def free_parameters(self):
        window = int(np.prod(self.kernel_size))
        return window * int(self.connections.sum()) + (self.filters if self.use_bias else 0)

    def get_config(self):
        return {**super().get_config(), "connections": self.connections.tolist()}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CodeSoftmax(layers.Layer):
    """Class probabilities from code outputs: softmax over negative squared distances to codes.

    Gutstein et al. (2008) give each class a target code (a +-1 vector) and predict the class whose
    code is
    nearest to the network output. This layer keeps that decision (its arg-max is the nearest
    code) and turns it into probabilities, `softmax(-sharpness * ||y - code_k||^2)`, so a code
    network can be served like any classifier. The codes are configuration, not weights.

    Args:
        codes: array (num_classes, bits).
        sharpness: multiplier of the negative squared distances (default 1).

    Example:

    >>> codes = [[1.0, -1.0], [-1.0, 1.0]]
    >>> probs = CodeSoftmax(codes)(np.array([[0.9, -0.8]], "float32"))
    >>> int(np.argmax(probs))
    0
    """

    def __init__(self, codes, sharpness=1.0, **kwargs):
        super().__init__(**kwargs)
        codes = np.asarray(codes, "float32")
        if codes.ndim != 2 or codes.shape[0] < 2:
            raise ValueError(
                f"`codes` must be a (num_classes >= 2, bits) array. Received shape {codes.shape}."
            )
        self.codes = codes
        self.sharpness = float(sharpness)

    def call(self, inputs):
        codes = ops.convert_to_tensor(self.codes, dtype=inputs.dtype)
        distances = ops.sum(ops.square(inputs[:, None, :] - codes[None]), axis=-1)
        return ops.softmax(-self.sharpness * distances, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.codes.shape[0])

    def get_config(self):
        return {**super().get_config(), "codes": self.codes.tolist(), "sharpness": self.sharpness}


def lenet5(code_bits=20, *, input_shape=(32, 32, 1), name="lenet5"):
    """The LeNet-5 variant of Gutstein et al. (2008): C1, S2, C3, S4, C5 and an F6 of `code_bits`
    units.

    Takes raw pixels in [0, 255] (rescaled inside) and outputs the F6 code, each unit in
    (-1.7159, 1.7159); train it on +-1 target codes with a squared error.

    Args:
        code_bits: F6 units, the length of the target codes (20 in Gutstein et al.; the number of
            classes for one-of-N codes).
        input_shape: (32, 32, 1) as in LeNet-5; C5 then reads 5x5 maps and yields 1x1 maps.
        name: model name.

    Example:

    >>> lenet5().output_shape
    (None, 20)
    >>> [level[0].name for level in weighted_levels(lenet5())]
    ['C1', 'S2', 'C3', 'S4', 'C5', 'F6']
    """
    if code_bits < 2:
        raise ValueError(f"`code_bits` must be at least 2. Received: {code_bits}")
    if tuple(input_shape) != (32, 32, 1):
        raise ValueError(
            f"Gutstein et al.'s LeNet-5 variant takes 32x32x1 images. Received "
            f"input_shape={input_shape}; load "
            "28x28 digits with `load_dataset(..., image_shape=(32, 32, 1), resize='pad')`."
        )
    act = scaled_tanh
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = layers.Conv2D(6, 5, activation=act, name="C1")(x)
    x = Subsampling2D(2, activation=act, coefficient_initializer=_quarter, name="S2")(x)
    x = PartialConv2D(16, 5, activation=act, name="C3")(x)
    x = Subsampling2D(2, activation=act, coefficient_initializer=_quarter, name="S4")(x)
    x = layers.Conv2D(120, 5, activation=act, name="C5")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(code_bits, activation=act, name="F6")(x)
    return keras.Model(inputs, outputs, name=name)


def free_parameters(layer):
    """Free (learnable) parameters of a layer: its `free_parameters` if it has one (connection
    tables), else its parameter count."""
    return int(getattr(layer, "free_parameters", layer.count_params()))


def free_parameter_table(model):
    """Free parameters per level of `model` (`surgery.weighted_levels`), by level name."""
    return {
        level[0].name: sum(free_parameters(layer) for layer in level)
        for level in weighted_levels(model)
    }


def count_free_parameters(model):
    """Total free parameters of `model`."""
    return sum(free_parameter_table(model).values())


def check_table_1(model):
    """Raise if `model`'s free parameters per level differ from Gutstein et al.'s Table 1."""
    table = free_parameter_table(model)
    if table != TABLE_1:
        diff = {
            k: (table.get(k), TABLE_1.get(k))
            for k in set(table) | set(TABLE_1)
            if table.get(k) != TABLE_1.get(k)
        }
        raise ValueError(
            f"Model '{model.name}' does not match Gutstein et al.'s Table 1: (model, paper) "
            f"per level "
            f"{diff}. Table 1 is for a 20-bit F6 (`lenet5(code_bits=20)`)."
        )
    return table


def code_classifier(model, codes, *, sharpness=1.0, name=None):
    """`model` (code outputs) followed by `CodeSoftmax(codes)`: a classifier for serving.

    The layers of `model` are shared, not copied.

    >>> from kerastransfer.methods.layer_transfer import make_codes
    >>> code_classifier(lenet5(), make_codes("random20", 5)).output_shape
    (None, 5)
    """
    codes = np.asarray(codes, "float32")
    if codes.ndim != 2 or codes.shape[1] != model.output_shape[-1]:
        raise ValueError(
            f"`codes` must have shape (num_classes, {model.output_shape[-1]}) to match the "
            f"model's outputs. Received shape {codes.shape}."
        )
    outputs = CodeSoftmax(codes, sharpness=sharpness, name="code_softmax")(model.output)
    return keras.Model(model.inputs, outputs, name=name or f"{model.name}_classifier")
