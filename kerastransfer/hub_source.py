"""KerasHub backbones as sources (the `hub` extra: `pip install "kerastransfer[hub]"`).

A KerasHub preset is a folder written by `Backbone.save_to_preset` (a `config.json`, the weights,
an `image_converter.json` when the preset has an image converter), or a `kaggle://` / `hf://`
handle of one, fetched into KerasHub's cache. Wherever a `keras.applications` name works, a
preset of an image backbone (ResNet, EfficientNet, MobileNet, VGG, DenseNet...) works too:
`pretrained.application_builder` returns `hub_builder(preset)`, which builds the backbone as a
`keras.applications` function builds its application without top: a plain functional model at the
`input_shape` asked for (the first convolution takes the channels asked for), the preset's
weights for `weights="imagenet"`, random ones for None, a weights file's otherwise, and global
pooling for `pooling="avg"` or "max". Its layers are the backbone's own, by the backbone's names,
so surgery, `fine_tune` and the PEFT methods see them as they see an application's.

Preprocessing (`hub_preprocessing`): the scale and offset of the preset's image converter, as a
`Rescaling` layer on raw [0, 255] pixels (per-channel values averaged for a gray input); the
converter's resizing is left to the data pipeline, which serves images at the target's size.
A preset without an image converter takes the pixels as they are.

Nothing here imports `keras_hub` before a preset is used: a preset without the extra installed
names the extra to install (`_extras.require`).
"""

import inspect
import os

import keras
import numpy as np

from kerastransfer._extras import require
from kerastransfer._internals import HUB_PRESET_CONFIG, hub_backbone_class

HANDLE_PREFIXES = ("kaggle://", "hf://")
_HANDLE_CLASSES = {}  # handle -> backbone class: a handle's configuration is fetched once


def is_hub_source(source):
    """True when `source` names a KerasHub preset: a `kaggle://` or `hf://` handle, or a folder
    holding a preset's configuration (checked without importing `keras_hub`)."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    source = os.fspath(source)
    if not isinstance(source, str):
        return False
    return source.startswith(HANDLE_PREFIXES) or os.path.isfile(
        os.path.join(source, HUB_PRESET_CONFIG)
    )


def hub_builder(source):
    """A function that builds the preset's backbone as a `keras.applications` function builds its
    application without top: `builder(include_top=False, weights=..., input_tensor=...,
    input_shape=..., pooling=...)`.

    The preset is checked now: the extra installed, the handle fetched, an image backbone.
    """
    backbone_class(source)

    def build(
        include_top=False, weights="imagenet", input_tensor=None, input_shape=None, pooling=None
    ):
        if include_top:
            raise ValueError(
                f"A KerasHub backbone ('{source}') comes without a classifier: `include_top` must "
                "be False. Received: include_top=True"
            )
        return load_hub_backbone(
            source,
            input_shape=input_shape,
            weights=weights,
            input_tensor=input_tensor,
            pooling=pooling,
        )

    build.__name__ = hub_source_name(source)
    return build


def hub_source_name(source):
    """A short name of the preset, for model names: its folder's name or the handle's last part
    (a Kaggle handle's version left out)."""
    parts = [p for p in os.fspath(source).replace("\\", "/").split("/") if p]
    if len(parts) > 1 and parts[-1].isdigit():
        parts.pop()
    return parts[-1] if parts and not parts[-1].endswith(":") else "hub_backbone"


def backbone_class(source):
    """The preset's `keras_hub.models.Backbone` subclass, from its configuration alone.

    Raises:
        ImportError: keras-hub is not installed (one line naming the `hub` extra).
        RuntimeError: a handle that cannot be fetched (named, with what to do offline).
        ValueError: a folder that is not a KerasHub preset, or a backbone that is not an image
            network (a text backbone, a multimodal one).
    """
    source = os.fspath(source)
    require("keras_hub", f"The KerasHub preset source '{source}'")
    handle = source.startswith(HANDLE_PREFIXES)
    cls = _HANDLE_CLASSES.get(source) if handle else None
    if cls is None:
        try:
            cls = hub_backbone_class(source)
        except Exception as e:
            if handle:
                raise _fetch_error(source, e) from None
            raise ValueError(
                f"'{source}' is not a KerasHub preset folder that keras-hub can read: "
                f"{_one_line(e)}"
            ) from None
        if handle:
            _HANDLE_CLASSES[source] = cls
    arguments = inspect.signature(cls.__init__).parameters
    if "image_shape" in arguments or "input_shape" in arguments:
        return cls
    kind = "text backbone" if "vocabulary_size" in arguments else "backbone, not an image network"
    raise ValueError(
        f"`source` '{source}' is a KerasHub {kind} ({cls.__name__}); kerastransfer sources are "
        "image networks: give an image backbone's preset (ResNet, EfficientNet, MobileNet...)."
    )


def load_hub_backbone(
    source, *, input_shape=None, weights="imagenet", input_tensor=None, pooling=None
):
    """The preset's image backbone as a plain functional model from images to its feature map
    (or, with `pooling` "avg" or "max", to pooled features).

    Args:
        source: a preset folder or a `kaggle://` / `hf://` handle.
        input_shape: `(height, width, channels)` (default: the preset's own, often
            `(None, None, 3)`).
        weights: "imagenet" (the default, as for an application): the preset's own weights; None:
            random initialisation; or the path of a weights file of the same backbone.
        input_tensor: a symbolic tensor to build the backbone's layers on (as
            `keras.applications` take it): the model's input is that tensor's source input.
        pooling: None (the feature map), "avg" or "max".
    """
    source = os.fspath(source)
    cls = backbone_class(source)
    keras_hub = require("keras_hub", f"The KerasHub preset source '{source}'")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max'. Received: {pooling!r}")
    if weights is not None and weights != "imagenet" and not os.path.isfile(os.fspath(weights)):
        raise ValueError(
            f"`weights` of the KerasHub preset '{source}' must be 'imagenet' (the preset's own), "
            f"None (random) or a weights file. Received: {weights!r}"
        )
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    shape = {}
    if input_shape is not None:  # `image_shape` (ResNet, MobileNet...), `input_shape` (EffNet)
        takes_image_shape = "image_shape" in inspect.signature(cls.__init__).parameters
        shape["image_shape" if takes_image_shape else "input_shape"] = tuple(input_shape)
    try:
        backbone = keras_hub.models.Backbone.from_preset(
            source, load_weights=weights == "imagenet", **shape
        )
        if weights not in (None, "imagenet"):
            backbone.load_weights(os.fspath(weights))
    except Exception as e:
        if source.startswith(HANDLE_PREFIXES) and isinstance(e, OSError):  # the weights' download
            raise _fetch_error(source, e) from None
        raise ValueError(
            f"Cannot build the KerasHub backbone {cls.__name__} of '{source}' with "
            f"weights={weights!r} at input shape {input_shape}: {_one_line(e)}"
        ) from None
    inputs, outputs = backbone.inputs, backbone.outputs
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) != 1:
        raise ValueError(
            f"`source` '{source}' is a KerasHub {cls.__name__} taking "
            f"{[tuple(x.shape) for x in inputs]} and returning {[tuple(y.shape) for y in outputs]}"
            "; kerastransfer sources are image networks: one image input, one feature output."
        )
    model = keras.Model(inputs[0], outputs[0], name=backbone.name)
    if input_tensor is not None:  # the backbone's own layers, called on `input_tensor`
        model = keras.models.clone_model(
            model, input_tensors=input_tensor, clone_function=lambda layer: layer
        )
    features = model.outputs[0]
    if pooling is not None:
        pool = {
            (4, "avg"): keras.layers.GlobalAveragePooling2D,
            (4, "max"): keras.layers.GlobalMaxPooling2D,
            (3, "avg"): keras.layers.GlobalAveragePooling1D,  # tokens of a vision transformer
            (3, "max"): keras.layers.GlobalMaxPooling1D,
        }.get((len(features.shape), pooling))
        if pool is None:
            raise ValueError(
                f"Cannot pool the output {tuple(features.shape)} of the KerasHub {cls.__name__} "
                f"of '{source}': `pooling` takes a feature map or a sequence of tokens."
            )
        features = pool(name=f"{pooling}_pool")(features)
    if input_tensor is not None:
        return keras.Model(keras.utils.get_source_inputs(input_tensor), features, name=model.name)
    return keras.Model(model.inputs, features, name=model.name) if pooling else model


def hub_preprocessing(source, channels):
    """The layer that scales raw [0, 255] pixels as the preset's image converter does (its scale
    and offset; not its resizing), named "preprocess"; None when the preset has no converter or
    the converter does not scale."""
    source = os.fspath(source)
    backbone_class(source)
    keras_hub = require("keras_hub", f"The KerasHub preset source '{source}'")
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(source)
    except FileNotFoundError:  # no image_converter.json
        return None
    scale, offset = converter.scale, converter.offset
    if scale is None and offset is None:
        return None

    def per_channel(value, default):
        value = np.asarray(default if value is None else value, "float32").reshape(-1)
        if value.size > 1 and value.size != channels:
            value = np.full((1,), value.mean(), "float32")  # a gray input: the channels' mean
        return float(value[0]) if value.size == 1 else value.tolist()

    return keras.layers.Rescaling(
        scale=per_channel(scale, 1.0), offset=per_channel(offset, 0.0), name="preprocess"
    )


def _fetch_error(handle, error):
    return RuntimeError(
        f"Cannot fetch the KerasHub preset '{handle}' ({_one_line(error)}): no network, a "
        "misspelt handle or a model that needs access. Without a network, give a local preset "
        "folder as the source: where there is one, "
        "`keras_hub.models.Backbone.from_preset(handle).save_to_preset(folder)` writes it (and "
        "`keras_hub.layers.ImageConverter.from_preset(handle).save_to_preset(folder)` its "
        "preprocessing); copy the folder here."
    )


def _one_line(error):
    return " ".join(str(error).split())[:300] or type(error).__name__
