"""The pretrained network a transfer starts from (its `source`): `load_source`.

A source is a Keras model, a `.keras` file, or a `keras.applications` name ("MobileNetV2",
"ResNet50") loaded without its top. `application_preprocessing` is the input scaling each
application was trained with, as a layer that takes raw pixels in [0, 255]. A KerasHub preset of
an image backbone (a folder, or a `kaggle://` / `hf://` handle; the `hub` extra) works wherever an
application name does: `application_builder` and `application_preprocessing` take it too
(`kerastransfer.hub_source`).

Example:

>>> from kerastransfer.models import small_cnn
>>> load_source(small_cnn(name="primary")).name
'primary'
>>> load_source("MobileNetV22")
Traceback (most recent call last):
...
ValueError: 'MobileNetV22' is neither a model file nor a keras.applications model. Did you mean ...
"""

import difflib
import os
import re

import keras
import numpy as np

from kerastransfer._internals import keras_archive_problem
from kerastransfer.hub_source import (
    hub_builder,
    hub_preprocessing,
    hub_source_name,
    is_hub_source,
    load_hub_backbone,
)

# keras.applications by the input scaling their ImageNet weights expect ("tf": [-1, 1], "torch":
# ImageNet mean and std, "caffe": BGR minus the mean); the others scale raw pixels themselves.
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
    """The `keras.applications` model function called `name`, or None if there is none; for a
    KerasHub preset, a function that builds its backbone the same way (`hub_source.hub_builder`)."""
    if is_hub_source(name):
        return hub_builder(name)
    if not isinstance(name, str):
        return None
    builder = getattr(keras.applications, name, None)
    return builder if callable(builder) and name[:1].isupper() else None


def application_preprocessing(name, channels):
    """The layer that scales raw [0, 255] pixels as application `name` expects, or None when the
    application scales them itself (EfficientNet, ConvNeXt, MobileNetV3, RegNet...).

    Caffe-mode applications (VGG, ResNet) take BGR images: this layer subtracts the mean in RGB
    order, so the first convolution's kernel must be flipped to RGB (`pooled_body` does).
    A KerasHub preset: its image converter's scale and offset (`hub_source.hub_preprocessing`).
    """
    if is_hub_source(name):
        return hub_preprocessing(name, channels)
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
        mean = [123.68, 116.779, 103.939]
        return keras.layers.Normalization(
            mean=mean if channels == 3 else [float(np.mean(mean))],
            variance=[1.0] * channels,
            name="preprocess",
        )
    return None


def source_name(source):
    """A short name of `source` for model names: an application's name, a model's name, a
    KerasHub preset's folder name or handle's last part, a file's name."""
    if isinstance(source, keras.Model):
        return source.name
    if is_hub_source(source):
        return hub_source_name(source)
    return os.path.splitext(os.path.basename(os.fspath(source)))[0]


def load_source(source, *, input_shape=None, weights="imagenet"):
    """A source model from a Keras model, a `.keras` file, a `keras.applications` name or a
    KerasHub preset.

    Application names load without their top; Keras finds ImageNet weights in
    `$KERAS_HOME/models/` before it tries to download them (offline, the error names the file to
    put there). `.keras` files load with `safe_mode=True`: they must not contain lambdas.
    A KerasHub preset (a folder written by `save_to_preset`, or a `kaggle://` / `hf://` handle;
    `pip install "kerastransfer[hub]"`) loads as its backbone without top, like an application
    (`hub_source.load_hub_backbone`); a handle that cannot be fetched is a `RuntimeError` naming
    it, a text backbone a `ValueError`.

    Args:
        source: a `keras.Model`, a path to a `.keras` file, a `keras.applications` name, or a
            KerasHub preset folder or handle.
        input_shape: for an application or a preset, its `(height, width, 3)` input (default:
            the application's own, mostly 224x224; the preset's own).
        weights: for an application, "imagenet", None (random initialisation) or the path of a
            weights file (no top), as `keras.applications` takes; for a preset, "imagenet" is
            the preset's own weights.
    """
    if isinstance(source, keras.Model):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "`source` must be a keras.Model, a path to a .keras file, a keras.applications "
            f"name or a KerasHub preset. Received: {type(source).__name__}"
        )
    source = os.fspath(source)
    if is_hub_source(source):
        return load_hub_backbone(source, input_shape=input_shape, weights=weights)
    if os.path.exists(source):
        return _load_model_file(source)
    if source.endswith((".keras", ".h5", ".hdf5")) or os.sep in source:
        raise FileNotFoundError(f"No model file at '{source}'.")
    if application_builder(source) is None:
        apps = sorted(n for n in dir(keras.applications) if application_builder(n))
        by_lower = {n.lower(): n for n in apps}
        close = difflib.get_close_matches(source.lower(), list(by_lower), n=3, cutoff=0.6)
        close = [by_lower[c] for c in close]
        raise ValueError(
            f"'{source}' is neither a model file nor a keras.applications model."
            + (f" Did you mean {', '.join(close)}?" if close else f" Known: {', '.join(apps)}")
        )
    return _load_application(source, input_shape, weights)


def _load_application(name, input_shape, weights):
    builder = application_builder(name)
    try:
        return builder(include_top=False, weights=weights, input_shape=input_shape)
    except Exception as e:  # urllib errors, missing files, shape errors: each becomes one line
        message = " ".join(str(e).split())
        url = re.search(r"https?://\S+?\.(?:h5|keras)\b", message)
        if url is None:
            raise ValueError(
                f"Cannot build keras.applications.{name} with weights={weights!r} at input "
                f"shape {input_shape}: {message}"
            ) from None
        file_name = url.group(0).rsplit("/", 1)[-1]
        where = os.path.join(_keras_home(), "models", file_name)
        raise RuntimeError(
            f"Cannot load the ImageNet weights of keras.applications.{name}: Keras could not "
            f"download {url.group(0)} ({message[-120:].strip()}). Without a network, copy that "
            f"file to {where} (`$KERAS_HOME/models/{file_name}`; KERAS_HOME defaults to "
            "~/.keras) and load again, or give a .keras file as the source."
        ) from None


def _keras_home():
    if "KERAS_HOME" in os.environ:
        return os.environ["KERAS_HOME"]
    home = os.path.expanduser("~")
    return os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")


def _load_model_file(path):
    if os.path.isdir(path):
        raise ValueError(
            f"'{path}' is a folder (a SavedModel export?), neither a .keras file nor a KerasHub "
            "preset (a preset folder holds the config.json that `save_to_preset` writes). Load a "
            "model saved with model.save('model.keras'); SavedModel exports serve predictions "
            "only."
        )
    if path.endswith(".keras"):
        problem = keras_archive_problem(path)
        if problem:
            raise ValueError(
                f"'{path}' is not a valid .keras file ({problem}). A .keras file is the zip "
                "archive written by model.save('name.keras'): save the model again, or copy the "
                "file again if it was cut short."
            )
    return keras.models.load_model(path, compile=False)
