"""SpotTune policy networks: `conv_policy` (images) and `lstm_policy` (sequences).

A policy reads the same input as the network and returns two logits per block, shape
`(batch, num_blocks, 2)`: index 0 picks the frozen copy, index 1 the fine-tuned one. It must be
far cheaper than the network it steers (Guo et al. 2019 use a ResNet-8 for ResNet-50 on ImageNet;
the project report this toolkit follows uses a 2-layer LSTM and two dense layers for a 3-layer
LSTM). Layer names start with `spottune_policy` so an optimizer map can give the policy its own
learning rate (`spottune_optimizer`).

Example:

>>> conv_policy((32, 32, 3), num_blocks=4).output_shape
(None, 4, 2)
>>> lstm_policy((28, 28), num_blocks=3, units=(8, 8)).output_shape
(None, 3, 2)
"""

import keras
from keras import layers

PREFIX = "spottune_policy"


def _check(num_blocks, shape, rank, what):
    if int(num_blocks) < 1:
        raise ValueError(f"`num_blocks` must be >= 1. Received: {num_blocks}")
    if len(shape) != rank:
        raise ValueError(f"`input_shape` must be {what}. Received: {tuple(shape)}")


def conv_policy(
    input_shape,
    num_blocks,
    filters=(16, 32),
    target_size=32,
    scale=1 / 127.5,
    offset=-1.0,
    name=PREFIX,
):
    """A small conv net: pixels rescaled (`x * scale + offset`), average-pooled to about
    `target_size`, then a stride-2 3x3 convolution + BatchNormalization + ReLU per entry of
    `filters`, global average pooling and a dense layer of `2 * num_blocks` logits.

    Args:
        input_shape: (height, width, channels) of the network's input (raw pixels by default).
        num_blocks: number of SpotTune blocks.
    """
    _check(num_blocks, input_shape, 3, "(height, width, channels)")
    inputs = keras.Input(input_shape, name=f"{name}_input")
    x = layers.Rescaling(scale, offset, name=f"{name}_rescale")(inputs)
    factor = max(1, min(input_shape[0], input_shape[1]) // target_size)
    if factor > 1:
        x = layers.AveragePooling2D(factor, name=f"{name}_pool")(x)
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 3, strides=2, padding="same", use_bias=False, name=f"{name}_conv{i}")(
            x
        )
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
    x = layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)
    x = layers.Dense(2 * num_blocks, name=f"{name}_logits")(x)
    outputs = layers.Reshape((num_blocks, 2), name=f"{name}_reshape")(x)
    return keras.Model(inputs, outputs, name=name)


def lstm_policy(
    input_shape, num_blocks, units=(32, 32), dense_units=32, mask_value=None, name=PREFIX
):
    """A stacked LSTM (`units`, the last returning its final output), a ReLU dense layer and a
    dense layer of `2 * num_blocks` logits; with `mask_value`, a `Masking` layer first.

    Args:
        input_shape: (timesteps, features) of the network's input; timesteps may be None.
        num_blocks: number of SpotTune blocks.
    """
    _check(num_blocks, input_shape, 2, "(timesteps, features)")
    if not units:
        raise ValueError("`units` must name at least one LSTM layer. Received: ()")
    inputs = keras.Input(input_shape, name=f"{name}_input")
    x = inputs
    if mask_value is not None:
        x = layers.Masking(mask_value, name=f"{name}_masking")(x)
    for i, u in enumerate(units):
        x = layers.LSTM(u, return_sequences=i + 1 < len(units), name=f"{name}_lstm{i}")(x)
    x = layers.Dense(dense_units, activation="relu", name=f"{name}_dense")(x)
    x = layers.Dense(2 * num_blocks, name=f"{name}_logits")(x)
    outputs = layers.Reshape((num_blocks, 2), name=f"{name}_reshape")(x)
    return keras.Model(inputs, outputs, name=name)


def default_policy(input_shape, num_blocks, mask_value=None):
    """`conv_policy` for image inputs, `lstm_policy` for sequences."""
    if len(input_shape) == 3:
        return conv_policy(input_shape, num_blocks)
    if len(input_shape) == 2:
        return lstm_policy(input_shape, num_blocks, mask_value=mask_value)
    raise ValueError(
        f"No default policy for inputs of shape {tuple(input_shape)}: pass `policy=`, a model "
        f"returning (batch, num_blocks, 2) logits."
    )
