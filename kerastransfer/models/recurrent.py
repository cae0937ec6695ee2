"""`lstm_stack`: the stacked-LSTM sequence classifier of the SpotTune project report."""

import keras


def lstm_stack(input_shape, num_classes, units=64, name="lstm_stack"):
    """Three stacked LSTM layers (`lstm_1` to `lstm_3`) and two dense layers (`fc_1`, `fc_2`).

    The network the SpotTune project report fine-tunes on sequences (SpotTune's blocks are its
    LSTM layers: `methods.spottune.find_blocks` finds them).

    Args:
        input_shape: `(timesteps, features)`.
        num_classes: outputs of the softmax layer `fc_2`.
        units: units of each LSTM layer and of `fc_1`.
        name: the model's name.

    Example:

    >>> model = lstm_stack((28, 28), 10, units=8)
    >>> [layer.name for layer in model.layers[1:]], model.output_shape
    (['lstm_1', 'lstm_2', 'lstm_3', 'fc_1', 'fc_2'], (None, 10))
    """
    inputs = keras.Input(input_shape, name="sequence")
    x = keras.layers.LSTM(units, return_sequences=True, name="lstm_1")(inputs)
    x = keras.layers.LSTM(units, return_sequences=True, name="lstm_2")(x)
    x = keras.layers.LSTM(units, name="lstm_3")(x)
    x = keras.layers.Dense(units, activation="relu", name="fc_1")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="fc_2")(x)
    return keras.Model(inputs, outputs, name=name)
