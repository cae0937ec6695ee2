"""Feature extraction + a shallow classifier ("off-the-shelf" features, neon experiment 3).

A frozen backbone turns images into pooled feature vectors once; a linear classifier is trained on
them: softmax regression (cross-entropy) or a linear SVM (squared hinge, one-vs-rest, L2).

Example:

>>> from kerastransfer.data import load_dataset
>>> from kerastransfer.models import small_cnn
>>> data = load_dataset("embedded:usps", image_shape=(28, 28, 1), samples_per_class=5)
>>> extractor = feature_extractor(small_cnn(), "fc1")
>>> x, y = extract_features(extractor, data.train)
>>> clf = fit_linear_classifier(x, y, data.info.num_classes, epochs=2)
>>> clf.output_shape
(None, 10)
"""

import keras
import numpy as np

from kerastransfer.surgery import get_layer


def feature_extractor(model, layer_name, pooling="avg"):
    """A frozen model mapping inputs to the (pooled) output of `layer_name`.

    A 4-D output is pooled ("avg", "max") or flattened ("flatten") into a vector.
    """
    if pooling not in ("avg", "max", "flatten"):
        raise ValueError(f"`pooling` must be 'avg', 'max' or 'flatten'. Received: {pooling!r}")
    layer = get_layer(model, layer_name)
    if layer in model.layers and isinstance(layer, keras.Model):
        # A nested model's own `.output` lives in its inner graph; its call in `model` is a node.
        x = layer._inbound_nodes[-1].output_tensors[0]
    elif layer in model.layers:
        x = layer.output
    else:
        raise ValueError(
            f"Layer '{layer_name}' is inside a nested model of '{model.name}'. Name a layer of "
            f"'{model.name}' itself, e.g. the nested model: "
            f"{[sub.name for sub in model.layers if isinstance(sub, keras.Model)]}."
        )
    if len(x.shape) == 4:
        x = {
            "avg": keras.layers.GlobalAveragePooling2D(name="features_avg"),
            "max": keras.layers.GlobalMaxPooling2D(name="features_max"),
            "flatten": keras.layers.Flatten(name="features_flat"),
        }[pooling](x)
    extractor = keras.Model(model.inputs, x, name=f"{model.name}_features")
    extractor.trainable = False
    return extractor


def extract_features(extractor, dataset):
    """Runs `extractor` over a batched dataset of (images, labels): NumPy (features, labels)."""
    feats, labels = [], []
    for x, y in dataset:  # one pass: a shuffled dataset gives another order on each pass
        feats.append(np.asarray(extractor.predict_on_batch(x)))
        labels.append(np.asarray(y))
    if not feats:
        raise ValueError("The dataset is empty: no features to extract.")
    return np.concatenate(feats), np.concatenate(labels)


def linear_classifier(num_features, num_classes, loss="softmax", l2=1e-4, name="linear"):
    """A compiled linear classifier: `loss="softmax"` (cross-entropy) or `"hinge"` (linear SVM).

    The softmax model outputs probabilities and takes integer labels. The SVM outputs raw class
    scores and is trained with `keras.losses.SquaredHinge` on one-hot labels (a one-vs-rest
    squared hinge: Keras maps 0/1 targets to -1/+1); `fit_linear_classifier` one-hot encodes for
    it. Put a `Softmax` after it to serve probabilities.
    """
    if loss not in ("softmax", "hinge"):
        raise ValueError(f"`loss` must be 'softmax' or 'hinge'. Received: {loss!r}")
    inputs = keras.Input((num_features,), name="features")
    scores = keras.layers.Dense(
        num_classes, kernel_regularizer=keras.regularizers.L2(l2), name="scores"
    )(inputs)
    if loss == "softmax":
        model = keras.Model(inputs, keras.layers.Softmax(name="probabilities")(scores), name=name)
        model.compile(
            keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        return model
    model = keras.Model(inputs, scores, name=name)
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SquaredHinge(),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    return model


def fit_linear_classifier(
    features,
    labels,
    num_classes,
    *,
    loss="softmax",
    epochs=100,
    batch_size=128,
    validation=None,
    patience=10,
    verbose=0,
):
    """Train a linear classifier on extracted features, with early stopping.

    Args:
        features, labels: NumPy arrays from `extract_features`.
        num_classes: number of classes.
        loss: "softmax" or "hinge" (linear SVM).
        validation: optional (features, labels) for early stopping on validation loss.

    Returns:
        The trained Keras classifier.
    """
    model = linear_classifier(features.shape[1], num_classes, loss=loss)
    if loss == "hinge":  # SquaredHinge takes one-hot targets
        labels = keras.utils.to_categorical(labels, num_classes)
        if validation is not None:
            validation = (validation[0], keras.utils.to_categorical(validation[1], num_classes))
    monitor = "val_loss" if validation is not None else "loss"
    model.fit(
        features,
        labels,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor, patience=patience, restore_best_weights=True)
        ],
        verbose=verbose,
    )
    return model
