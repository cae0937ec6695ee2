"""The target network of a transfer: a source (application name, `.keras` file, model) at the
data's input shape, matching layers imported, a new head."""

import os
import re

import keras
import numpy as np

from kerastransfer.surgery import (
    import_matching_layers,
    iter_layers,
)

TF_MODE = (
    "MobileNet",
    "MobileNetV2",
    "Xception",
    "InceptionV3",
    "InceptionResNetV2",
    "NASNetMobile",
    "NASNetLarge",
    "ResNet50V2",
    "ResNet101V2",
    "ResNet152V2",
)
TORCH_MODE = ("DenseNet121", "DenseNet169", "DenseNet201")
CAFFE_MODE = ("VGG16", "VGG19", "ResNet50", "ResNet101", "ResNet152")


def application_builder(name):
    builder = getattr(keras.applications, name, None)
    return builder if callable(builder) and name[:1].isupper() else None


def preprocess_layer(name, channels):
    if name in TF_MODE:
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")
    if name in TORCH_MODE:
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
        if channels == 1:
            mean, std = [float(np.mean(mean))], [float(np.mean(std))]
        return keras.layers.Normalization(
            mean=[255 * m for m in mean], variance=[(255 * s) ** 2 for s in std], name="preprocess"
        )
    if name in CAFFE_MODE:
        mean = [123.68, 116.779, 103.939]  # RGB order; the first kernel is flipped to BGR
        return keras.layers.Normalization(
            mean=mean if channels == 3 else [float(np.mean(mean))],
            variance=[1.0] * channels,
            name="preprocess",
        )
    return None  # EfficientNet, ConvNeXt, MobileNetV3, RegNet...: preprocessing built in


def load_application_source(name, image_shape):
    """The ImageNet application `name` without its top, at `image_shape` (3 channels)."""
    builder = application_builder(name)
    size = tuple(image_shape[:2])
    try:
        return builder(include_top=False, weights="imagenet", input_shape=(*size, 3))
    except Exception as e:  # urllib errors, missing files, shape errors: all become one line
        message = " ".join(str(e).split())
        url = re.search(r"https?://\S+?\.h5", message)
        home = os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras"))
        if url:
            raise ValueError(
                f"Cannot load the ImageNet weights of {name} (offline?): put "
                f"{url.group(0).rsplit('/', 1)[-1]} into {home}/models/, or give a .keras file "
                f"as the source."
            ) from None
        raise ValueError(
            f"Cannot build {name} with ImageNet weights at {size}: {message}"
        ) from None


def _clone_in_global_precision(src):
    """`keras.models.clone_model(src)`; under a mixed global dtype policy every float layer of
    the clone takes that policy (a clone otherwise keeps the source's saved float32 policies)."""
    policy = keras.config.dtype_policy().name
    if not policy.startswith("mixed_"):
        return keras.models.clone_model(src)
    from kerastransfer.fine_tuning.devices import clone_with_policy

    return clone_with_policy(src, policy)


def build_transfer_model(source, image_shape, num_classes, *, head_width=0, dropout=0.2):
    """The target network: source architecture at `image_shape`, source layers imported, new head.

    Returns `(model, body, head, import_report)`: `model` is `head(body(images))`, `body` maps
    raw images to pooled features and `head` (a nested model named "head") maps them to class
    probabilities.

    Layers are built in the global Keras dtype policy (a mixed policy reaches the layers cloned
    from a model source too); the classifier computes in float32.
    """
    from kerastransfer.surgery import load_source

    image_shape = tuple(image_shape)
    inputs = keras.Input(image_shape, name="image")
    name = source if isinstance(source, str) and application_builder(source) else None
    if name:
        src = load_application_source(name, image_shape)
        backbone = application_builder(name)(
            include_top=False, weights=None, input_shape=image_shape, pooling="avg"
        )
        pre = preprocess_layer(name, image_shape[-1])
        report = import_matching_layers(src, backbone)
        if name in CAFFE_MODE and image_shape[-1] == 3:
            first = next(ly for ly in iter_layers(backbone) if isinstance(ly, keras.layers.Conv2D))
            first.kernel.assign(keras.ops.flip(first.kernel, axis=2))  # RGB images, BGR kernel
        features = backbone(pre(inputs) if pre is not None else inputs)
        source_name = name
    else:
        src = load_source(source)
        if tuple(src.input_shape[1:]) != image_shape:
            raise ValueError(
                f"The source model takes {src.input_shape[1:]} images but the data is "
                f"converted to {image_shape}: leave `image_size`/`channels` unset for a model "
                "source (the data is converted to the model's input)."
            )
        clone = _clone_in_global_precision(src)
        report = import_matching_layers(src, clone)
        last = [layer for layer in clone.layers if layer.weights][-1]
        trunk = keras.Model(clone.inputs, last.input, name=f"{clone.name}_body")
        features = trunk(inputs)
        if len(features.shape) == 4:
            features = keras.layers.GlobalAveragePooling2D(name="avg_pool_new")(features)
        source_name = getattr(src, "name", str(source))
    body = keras.Model(inputs, features, name="body")
    feat_in = keras.Input(features.shape[1:], name="features")
    x = feat_in
    if head_width:
        x = keras.layers.Dense(int(head_width), activation="relu", name="fc1_new")(x)
    if dropout:
        x = keras.layers.Dropout(float(dropout), name="dropout_new")(x)
    # float32 softmax whatever the precision (mixed float16/bfloat16 probabilities lose mass)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="classifier_new"
    )(x)
    head = keras.Model(feat_in, outputs, name="head")
    model = keras.Model(inputs, head(body(inputs)), name=f"{source_name}_transfer".lower())
    present = {layer.name for layer in iter_layers(model)}
    dropped = [n for n in report.imported if n not in present]  # the source's own head
    report.imported = [n for n in report.imported if n in present]
    report.adapted = {k: v for k, v in report.adapted.items() if k in present}
    report.source_only = [*report.source_only, *dropped]
    return model, body, head, report
