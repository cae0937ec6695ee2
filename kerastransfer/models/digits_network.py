"""`digits_lenet`: the LeNet of Transfer-Learning-Library's digits benchmarks, in Keras.

Transfer-Learning-Library (Jiang, Chen, Fu, Long and Wang, "Transfer-Learning-library") trains
MNIST <-> USPS from scratch with a LeNet backbone on 28x28 gray images normalised to [-1, 1]:
conv 20@5x5, max-pool, ReLU, conv 50@5x5, 2-D dropout, max-pool, ReLU (800 features), then a
bottleneck and a linear classifier. This builder keeps that network and names the layers the
adaptation methods read (`flatten`, `bottleneck`). It takes raw pixels in [0, 255].

With `feature_units=256` it is the whole classifier of the library's domain adaptation
examples: LeNet's 500 ReLU units and dropout, then their bottleneck (Dense 256, BatchNorm, ReLU,
the layer `features` that DANN's and CDAN's domain classifiers read), then the linear classifier.

Example:

>>> model = digits_lenet()
>>> model.output_shape, model.get_layer("bottleneck").output.shape
((None, 10), (None, 500))
"""

import keras
from keras import layers


def digits_lenet(
    num_classes=10,
    *,
    input_shape=(28, 28, 1),
    bottleneck_units=500,
    feature_units=None,
    name="lenet",
):
    """LeNet for digits: conv(20) pool relu conv(50) dropout pool relu, bottleneck, softmax.

    Args:
        num_classes: output classes (default 10).
        input_shape: image shape (default 28x28x1, as in the benchmark).
        bottleneck_units: width of the `bottleneck` ReLU layer (default 500).
        feature_units: None (default), or the width of a `features` layer (Dense,
            BatchNormalization, ReLU) between the dropout and the classifier.
        name: model name.
    """
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = layers.Conv2D(20, 5, name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.Conv2D(50, 5, name="conv2")(x)
    x = layers.SpatialDropout2D(0.5, name="dropout2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.ReLU(name="relu2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(bottleneck_units, activation="relu", name="bottleneck")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    if feature_units is not None:
        x = layers.Dense(int(feature_units), name="features_dense")(x)
        x = layers.BatchNormalization(name="features_norm")(x)
        x = layers.ReLU(name="features")(x)
    outputs = layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(x)
    return keras.Model(inputs, outputs, name=name)
