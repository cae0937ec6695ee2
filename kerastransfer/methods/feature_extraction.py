"""Feature extraction + a shallow classifier ("off-the-shelf" features, neon experiment 3).

A frozen network turns images into pooled feature vectors once; a linear classifier is trained on
them: softmax regression (cross-entropy) or a linear SVM (squared hinge, one-vs-rest, L2).

- `pooled_body(source, input_shape)`: a source network's body, from raw images to its pooled
  features, with the source's weights (what `fine_tune` warms its head on and fine-tunes);
  `flat=True` makes the application's layers the body's own (SpotTune's blocks).
- `feature_extractor(source)`: that body frozen, or a frozen cut at a named layer.
- `stream_features` / `extract_features`: the features of datasets, batch by batch / as arrays.
- `linear_classifier` / `fit_linear_classifier`: the classifier on them.

Example:

>>> from kerastransfer.data import load_dataset
>>> from kerastransfer.models import small_cnn
>>> data = load_dataset("embedded:usps", image_shape=(28, 28, 1), samples_per_class=5)
>>> extractor = feature_extractor(small_cnn())  # everything below the classifier
>>> x, y = extract_features(extractor, data.train)
>>> x.shape, y.shape
((50, 500), (50,))
>>> clf = fit_linear_classifier(x, y, data.info.num_classes, epochs=2)
>>> clf.output_shape
(None, 10)
"""

import weakref

import keras
import numpy as np
import tensorflow as tf

from kerastransfer import input_checks
from kerastransfer.pretrained import (
    CAFFE_MODE,
    application_builder,
    application_preprocessing,
    load_source,
)
from kerastransfer.surgery import (
    ImportReport,
    cut_at,
    import_matching_layers,
    iter_layers,
    pooling_layer,
)


def pooled_body(source, input_shape=None, *, weights="imagenet", flat=False):
    """A source network's body: raw images to pooled feature vectors, with the source's weights.

    - A `keras.applications` name: the application's preprocessing (`application_preprocessing`),
      then the application at `input_shape`, average-pooled, with `weights` imported by
      `surgery.import_matching_layers` (a gray input gets the first kernel summed over RGB).
    - A model or `.keras` file: everything below its last weighted layer (its classifier),
      cloned in the global Keras dtype policy with the source's weights; a 4-D output is
      average-pooled by a layer named "avg_pool_new".

    The body nests the application (or the cut source) as one layer, unless `flat=True`: then
    its layers are the body's own, as `methods.spottune.find_blocks` needs them (a model nested
    inside a model source stays nested).

    Args:
        source: a `keras.applications` name, a `.keras` file or a Keras model.
        input_shape: the body's input shape; required for an application, and for a model its
            own (the default).
        weights: for an application, "imagenet" or a weights file (no top); None gives any
            source randomly initialised.
        flat: build the body's layers into it instead of nesting them as one model.

    Returns:
        `(body, report)`: the body (a trainable model named "body") and the `ImportReport` of
        the weights it took from the source (the source's classifier listed as not used).
    """
    name = source if application_builder(source) else None
    if name:
        if input_shape is None:
            raise ValueError(
                f"`input_shape` must be given for the keras.applications source '{name}', e.g. "
                "(96, 96, 3). Received: None"
            )
        body, report = _application_body(name, tuple(input_shape), weights, flat)
    else:
        source = load_source(source)
        if input_shape is not None and tuple(input_shape) != tuple(source.input_shape[1:]):
            raise ValueError(
                f"`input_shape` must be the source model's own, {tuple(source.input_shape[1:])} "
                f"(a model source keeps its input shape). Received: {tuple(input_shape)}"
            )
        clone = _clone_in_global_precision(source)
        report = ImportReport()
        if weights is not None:
            report = import_matching_layers(source, clone)
        last = [layer for layer in clone.layers if layer.weights][-1]
        if flat:
            inputs, features = clone.input, last.input
        else:
            trunk = keras.Model(clone.inputs, last.input, name=f"{clone.name}_body")
            inputs = keras.Input(trunk.input_shape[1:], name="image")
            features = trunk(inputs)
        if len(features.shape) == 4:
            features = pooling_layer("avg")(features)
        body = keras.Model(inputs, features, name="body")
    present = {layer.name for layer in iter_layers(body)}
    dropped = [n for n in report.imported if n not in present]  # the source's own head
    report.imported = [n for n in report.imported if n in present]
    report.adapted = {k: v for k, v in report.adapted.items() if k in present}
    report.source_only = [*report.source_only, *dropped]
    return body, report


def _application_body(name, input_shape, weights, flat):
    inputs = keras.Input(input_shape, name="image")
    builder = application_builder(name)
    preprocess = application_preprocessing(name, input_shape[-1])
    x = preprocess(inputs) if preprocess is not None else inputs
    if flat:  # the application's layers called on `x`: the body's own layers
        backbone = builder(include_top=False, weights=None, input_tensor=x, pooling="avg")
    else:
        backbone = builder(include_top=False, weights=None, input_shape=input_shape, pooling="avg")
    report = ImportReport()
    if weights is not None:
        pretrained = load_source(name, input_shape=(*input_shape[:2], 3), weights=weights)
        skip = [preprocess.name] if flat and preprocess is not None and preprocess.weights else []
        report = import_matching_layers(pretrained, backbone, skip=skip)
        if name in CAFFE_MODE and input_shape[-1] == 3:  # RGB images, a BGR first kernel
            first = next(ly for ly in iter_layers(backbone) if isinstance(ly, keras.layers.Conv2D))
            first.kernel.assign(keras.ops.flip(first.kernel, axis=2))
    features = backbone.output if flat else backbone(x)
    return keras.Model(inputs, features, name="body"), report


def _clone_in_global_precision(model):
    """`keras.models.clone_model(model)`; under a mixed global dtype policy every float layer of
    the clone takes that policy (a clone otherwise keeps the source's saved float32 policies)."""
    policy = keras.config.dtype_policy().name
    if not policy.startswith("mixed_"):
        return keras.models.clone_model(model)
    from kerastransfer.fine_tuning.devices import clone_with_policy

    return clone_with_policy(model, policy)


def feature_extractor(
    source, layer_name=None, pooling="avg", *, input_shape=None, weights="imagenet"
):
    """A frozen model from raw images to feature vectors.

    Args:
        source: a `keras.applications` name, a `.keras` file or a Keras model.
        layer_name: the layer (of the model itself) whose output are the features; a 4-D
            output is pooled ("avg", "max") or flattened ("flatten"). Default: the source's
            pooled body (`pooled_body`), the features its classifier sees.
        input_shape, weights: for the pooled body, as `pooled_body` takes them.
    """
    if layer_name is None:
        extractor, _ = pooled_body(source, input_shape, weights=weights)
        extractor.trainable = False
        return extractor
    pooling_layer(pooling)  # checks the name before the source is loaded
    if application_builder(source):
        raise ValueError(
            f"`layer_name` must be None for the keras.applications source '{source}' (its "
            f"features are its pooled output, after its preprocessing). Received: {layer_name!r}"
        )
    model = load_source(source)
    cut = cut_at(model, layer_name)
    x = cut.output
    if len(x.shape) == 4:
        x = pooling_layer(pooling)(x)
    extractor = keras.Model(cut.inputs, x, name=f"{model.name}_features")
    extractor.trainable = False
    return extractor


def stream_features(extractor, datasets):
    """Yields `(name, features, labels)` for every batch of each dataset in `datasets`, in order.

    `extractor` runs in inference mode, traced once for all the datasets; its features come as
    float32 tensors whatever its dtype policy. Nothing is kept: a caller that writes each batch
    away holds one batch of features at a time, at any dataset size.

    Args:
        extractor: a model from images to feature vectors (e.g. from `feature_extractor`).
        datasets: a dict of name -> batched dataset of (images, labels), each read once, e.g.
            `{"train": data.train, "validation": data.validation}` of a `TransferData`.
    """
    for name, dataset in datasets.items():  # all checked before any batch is read
        what = "`dataset`" if list(datasets) == ["dataset"] else f"`datasets[{name!r}]`"
        if not isinstance(dataset, tf.data.Dataset):
            raise TypeError(
                f"{what} must be a batched tf.data.Dataset of (images, labels). Received: "
                f"{type(dataset).__name__}. Make one: `tf.data.Dataset.from_tensor_slices("
                "(images, labels)).batch(256)`."
            )
        input_checks.check_dataset(extractor, dataset, what)
    features = _inference(extractor)
    for name, dataset in datasets.items():
        for x, y in dataset:
            yield name, features(x), y


_TRACED = weakref.WeakKeyDictionary()  # extractor -> its traced inference function


def _inference(extractor):
    """One traced function per extractor, for every call (a new `tf.function` per call would be
    traced again each time, and TensorFlow warns about the retracing); it holds the extractor
    weakly, so the extractor and its function go together."""
    traced = _TRACED.get(extractor)
    if traced is None:
        ref = weakref.ref(extractor)
        traced = tf.function(
            lambda x: tf.cast(ref()(x, training=False), tf.float32), reduce_retracing=True
        )
        _TRACED[extractor] = traced
    return traced


def extract_features(extractor, dataset):
    """Runs `extractor` over a batched dataset of (images, labels): NumPy (features, labels)."""
    feats, labels = [], []
    for _, x, y in stream_features(extractor, {"dataset": dataset}):  # a shuffled dataset
        feats.append(x.numpy())  # gives another order on each pass: one pass
        labels.append(np.asarray(y))
    if not feats:
        raise ValueError("The dataset is empty: no features to extract.")
    return np.concatenate(feats), np.concatenate(labels)


def linear_classifier(
    num_features, num_classes, loss="softmax", l2=1e-4, name="linear", *, normalize=False
):
    """A compiled linear classifier: `loss="softmax"` (cross-entropy) or `"hinge"` (linear SVM).

    The softmax model outputs probabilities and takes integer labels. The SVM outputs raw class
    scores and is trained with `keras.losses.SquaredHinge` on one-hot labels (a one-vs-rest
    squared hinge: Keras maps 0/1 targets to -1/+1); `fit_linear_classifier` one-hot encodes for
    it. Put a `Softmax` after it to serve probabilities.

    `normalize=True` L2-normalises each feature vector first (as Razavian et al. 2014 do) and
    rescales it by sqrt(num_features), so a feature has unit root-mean-square whatever the scale
    of the network's features (random weights give pooled features of ~1e-12). `l2` is the
    weight decay of the kernel (0: none).
    """
    if loss not in ("softmax", "hinge"):
        raise ValueError(f"`loss` must be 'softmax' or 'hinge'. Received: {loss!r}")
    inputs = keras.Input((num_features,), name="features")
    x = inputs
    if normalize:
        x = keras.layers.UnitNormalization(name="l2_normalize")(x)
        x = keras.layers.Rescaling(float(np.sqrt(num_features)), name="unit_rms")(x)
    regularizer = keras.regularizers.L2(l2) if l2 else None
    scores = keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name="scores")(x)
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
    normalize=False,
    l2=1e-4,
    verbose=0,
):
    """Train a linear classifier on extracted features, with early stopping.

    Args:
        features, labels: NumPy arrays from `extract_features`.
        num_classes: number of classes.
        loss: "softmax" or "hinge" (linear SVM).
        validation: optional (features, labels) for early stopping on validation loss.
        patience: epochs without improvement before stopping (restoring the best weights);
            None trains all `epochs` and keeps the last weights.
        normalize: L2-normalise the features to unit RMS inside the classifier (see
            `linear_classifier`).
        l2: weight decay of the kernel (0: none).

    Returns:
        The trained Keras classifier (its kernel and bias: `get_layer("scores")`).

    Example (a plain softmax regression: every epoch, no weight decay):

    >>> x = np.random.default_rng(0).normal(size=(20, 8)).astype("float32")
    >>> clf = fit_linear_classifier(x, np.arange(20) % 2, 2, epochs=3, patience=None, l2=0)
    >>> len(clf.history.epoch), clf.losses
    (3, [])
    """
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise ValueError(f"`patience` must be a positive integer or None. Received: {patience!r}")
    features, labels = _checked_features(features, labels, num_classes, "")
    if validation is not None:
        validation = _checked_features(*validation, num_classes, "validation ")
    model = linear_classifier(features.shape[1], num_classes, loss=loss, l2=l2, normalize=normalize)
    if loss == "hinge":  # SquaredHinge takes one-hot targets
        labels = keras.utils.to_categorical(labels, num_classes)
        if validation is not None:
            validation = (validation[0], keras.utils.to_categorical(validation[1], num_classes))
    monitor = "val_loss" if validation is not None else "loss"
    callbacks = []
    if patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor, patience=patience, restore_best_weights=True)
        )
    model.fit(
        features,
        labels,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation,
        callbacks=callbacks,
        verbose=verbose,
    )
    return model


def _checked_features(features, labels, num_classes, which):
    """NumPy `(features, labels)`, checked: 2-D finite features, one class id per row."""
    features, labels = np.asarray(features), np.asarray(labels)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(
            f"The {which}features must be a non-empty 2-D array (samples, features), as "
            f"`extract_features` returns them. Received: shape {features.shape}."
        )
    if len(labels) != len(features):
        raise ValueError(
            f"The {which}labels must be one per feature row. Received: {len(features)} rows and "
            f"{len(labels)} labels."
        )
    input_checks.check_finite(features.astype(np.float32), f"The {which}features")
    input_checks.check_labels(labels, num_classes, f"The {which}labels")
    return features, labels
