"""Network builders used by the recipes and tests.

Every model here takes raw pixels (float, 0..255) and does its own scaling, so a served model
accepts the images a user has. Layer names are stable: they are what `import_matching_layers`
matches on and what optimizer maps and split layers refer to.
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


def mobilenet_v2_classifier(
    input_shape=(96, 96, 3), num_classes=10, *, weights="imagenet", dropout=0.2, name="mobilenet_transfer"
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


def train_or_load_primary(build, data, path, *, epochs=4, learning_rate=1e-3, callbacks=(), verbose=2, retrain=False):
    """The primary (task A) network: loaded from `path` when cached there, else trained and saved.

    Args:
        build: a function `build(num_classes)` returning an uncompiled model.
        data: a `kerastransfer.data.TransferData` of the primary dataset.
        path: the `.keras` file it is cached in.
        retrain: train even when `path` exists.

    Returns:
        (model, cached): the compiled model and whether it came from the cache.
    """
    import os

    if os.path.exists(path) and not retrain:
        return keras.models.load_model(path), True
    model = build(data.info.num_classes)
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        data.train, validation_data=data.validation, epochs=epochs, callbacks=list(callbacks),
        verbose=verbose, shuffle=False,  # data.train reshuffles every epoch
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache
    return model, False
