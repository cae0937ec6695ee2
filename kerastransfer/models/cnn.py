"""`small_cnn`: the paper-sized primary network (a LeNet-style CNN with batch normalization).

Every model in `kerastransfer.models` takes raw pixels (float, 0..255) and does its own scaling, so
a served model accepts the images a user has. Layer names are stable: they are what
`import_matching_layers` matches on and what optimizer maps and split layers refer to.
"""

import keras
from keras import layers


def small_cnn(
    input_shape=(28, 28, 1),
    num_classes=10,
    *,
    filters=(20, 50),
    dense=500,
    dropout=0.5,
    name="primary",
):
    """A LeNet-style CNN with batch normalization: the paper-sized primary network.

    The BPA paper's MNIST network has 20 filters in its first convolution; `conv1` is the
    default split layer of the BPA engine.

    Example:

    >>> model = small_cnn((28, 28, 1), num_classes=10)
    >>> model.output_shape
    (None, 10)
    """
    if len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must be (height, width, channels). Received: {input_shape}"
        )
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be at least 2. Received: {num_classes}")
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, n in enumerate(filters, start=1):
        x = layers.Conv2D(n, 5, padding="same", name=f"conv{i}")(x)
        # momentum 0.9, not Keras's 0.99: on a few thousand images (a few hundred steps) the
        # moving statistics must converge, or evaluation lags training by 10 points.
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense, activation="relu", name="fc1")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)
