"""`mobilenet_v2_classifier`: an ImageNet MobileNetV2 with its preprocessing and a new head."""

import keras
from keras import layers


def mobilenet_v2_classifier(
    input_shape=(96, 96, 3),
    num_classes=10,
    *,
    weights="imagenet",
    dropout=0.2,
    name="mobilenet_transfer",
):
    """MobileNetV2 (ImageNet weights by default) with its own preprocessing and a new softmax head.

    Weights load from `$KERAS_HOME/models/` when the file is there, so this works offline once the
    file is in place. The backbone is nested under the name `mobilenetv2_1.00_{size}`.

    Example:

    >>> model = mobilenet_v2_classifier((96, 96, 3), 5, weights=None)
    >>> model.output_shape
    (None, 5)
    """
    backbone = keras.applications.MobileNetV2(
        input_shape=input_shape, include_top=False, weights=weights, pooling="avg"
    )
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
    x = backbone(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)
