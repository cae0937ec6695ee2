"""Model surgery: import matching layers, cut, replace the head, freeze levels, adapt channels.

The functions work on functional and Sequential Keras models, including models that nest a
`keras.applications` backbone: layers are looked up through nested models by name.

Example (neon's `import_matching_layers`):

>>> from kerastransfer.models import small_cnn
>>> source = small_cnn((28, 28, 1), 10)
>>> target = small_cnn((28, 28, 1), 5)
>>> report = import_matching_layers(source, target)
>>> report.mismatched["classifier"]
([(500, 10), (10,)], [(500, 5), (5,)])
"""

import dataclasses
import difflib
import numbers

import keras
import numpy as np

from kerastransfer._internals import last_call_outputs
from kerastransfer.pretrained import load_source

NORMALIZATION_LAYERS = (  # kept in inference mode by default when fine-tuning
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
)


@dataclasses.dataclass
class ImportReport:
    """What `import_matching_layers` did, layer by layer.

    Attributes:
        imported: target layers whose weights were copied from the source (adapted ones included).
        adapted: layers imported after input-channel adaptation: name -> (source, target) shapes.
        mismatched: same name, different weight shapes, not imported: name -> (source, target).
        unmatched: target layers with weights that have no namesake in the source.
        source_only: source layers with weights that have no namesake in the target.
    """

    imported: list = dataclasses.field(default_factory=list)
    adapted: dict = dataclasses.field(default_factory=dict)
    mismatched: dict = dataclasses.field(default_factory=dict)
    unmatched: list = dataclasses.field(default_factory=list)
    source_only: list = dataclasses.field(default_factory=list)

    def __str__(self):
        lines = [f"imported {len(self.imported)} layers"]
        for name, (src, tgt) in self.adapted.items():
            lines.append(f"  adapted    {name}: {src} -> {tgt}")
        for name, (src, tgt) in self.mismatched.items():
            lines.append(f"  mismatched {name}: source {src} vs target {tgt}")
        if self.unmatched:
            lines.append(f"  new in target: {', '.join(self.unmatched)}")
        if self.source_only:
            lines.append(f"  not used from source: {len(self.source_only)} layers")
        return "\n".join(lines)


def check_model(model, what="`model`"):
    """Raises a `TypeError` naming `what` unless `model` is a Keras model."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"{what} must be a keras.Model. Received: {type(model).__name__}. Load a file or an "
            "application name first: `kerastransfer.load_source(...)`."
        )


def iter_layers(model):
    """All leaf layers of `model` in topological order, descending into nested models."""
    check_model(model)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def weighted_layers(model):
    """Leaf layers that own weights, by name (input order). Raises on duplicate names."""
    found = {}
    for layer in iter_layers(model):
        if not layer.weights:
            continue
        if layer.name in found:
            raise ValueError(
                f"Layer name '{layer.name}' appears twice in model '{model.name}'. Layers are "
                "matched by name: give the layers unique names."
            )
        found[layer.name] = layer
    return found


def weighted_levels(model):
    """Weighted layers grouped into levels, counted from the input.

    A level is a layer with weights; a normalization layer (BatchNormalization, ...) joins the
    level of the layer before it. On Gutstein et al.'s LeNet-5 variant the levels are C1, S2, C3,
    S4, C5 and F6.
    """
    levels = []
    for layer in weighted_layers(model).values():
        if isinstance(layer, NORMALIZATION_LAYERS) and levels:
            levels[-1].append(layer)
        else:
            levels.append([layer])
    return levels


def get_layer(model, name):
    """The layer called `name`, searched through nested models, with a helpful error."""
    if not isinstance(name, str):
        raise TypeError(
            f"A layer is named by a string. Received: {name!r} ({type(name).__name__}); "
            "`model.layers[i].name` gives the name of layer i."
        )
    for layer in iter_layers(model):
        if layer.name == name:
            return layer
    for layer in model.layers:  # a nested model itself can be named too
        if layer.name == name:
            return layer
    names = [layer.name for layer in iter_layers(model)]
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"No layer named '{name}' in model '{model.name}'.{hint} "
        f"Available layers: {', '.join(names[:40])}{' ...' if len(names) > 40 else ''}"
    )


def adapt_input_channels(kernel, channels):
    """Adapt a convolution kernel (kh, kw, c_in, c_out) to `channels` input channels.

    RGB -> gray sums the kernel over its input channels (a gray image repeated three times gives
    the same response); gray -> RGB repeats it divided by 3 (an RGB image of equal channels gives
    the gray response).
    """
    if not _is_int(channels) or channels < 1:
        raise ValueError(f"`channels` must be an integer >= 1. Received: {channels!r}")
    kernel = np.asarray(kernel)
    if kernel.ndim != 4:
        raise ValueError(
            f"`kernel` must be a convolution kernel (kh, kw, c_in, c_out). "
            f"Received: shape {kernel.shape}"
        )
    c_in = kernel.shape[-2]
    if c_in == channels:
        return kernel
    if channels == 1:
        return kernel.sum(axis=-2, keepdims=True)
    if c_in == 1:
        return np.repeat(kernel, channels, axis=-2) / channels
    raise ValueError(
        f"Can adapt a kernel from or to 1 input channel only. Received {c_in} -> {channels}."
    )


def _channel_adaptable(src_shapes, tgt_shapes):
    if len(src_shapes) != len(tgt_shapes) or len(src_shapes[0]) != 4:
        return False
    s, t = src_shapes[0], tgt_shapes[0]
    return (
        s[:2] == t[:2]
        and s[3] == t[3]
        and 1 in (s[2], t[2])
        and s[2] != t[2]
        and src_shapes[1:] == tgt_shapes[1:]
    )


def import_matching_layers(source, target, *, skip=(), adapt_channels=True, allow_empty=False):
    """Copy weights from every source layer whose name and weight shapes match a target layer.

    Args:
        source: a Keras model, a path to a `.keras` file, or a `keras.applications` name
            ("MobileNetV2") loaded with ImageNet weights.
        target: the Keras model to fill; changed in place.
        skip: names of layers not to import.
        adapt_channels: import a convolution whose kernel differs only in input channels
            (gray <-> RGB), adapting it with `adapt_input_channels`.
        allow_empty: return an empty report when no layer can be imported. By default that
            raises a `ValueError` (the target would silently train from scratch), unless every
            weighted layer of the target is in `skip`.

    Returns:
        An `ImportReport`; pass `report.imported` to `optimizers.neon_optimizer`.
    """
    if not isinstance(target, keras.Model):
        raise TypeError(f"`target` must be a keras.Model. Received: {type(target).__name__}")
    if isinstance(skip, (str, bytes)):
        raise ValueError(f"`skip` must be a list of layer names, not a string: [{skip!r}].")
    source = load_source(source)
    src_layers = weighted_layers(source)
    tgt_layers = weighted_layers(target)
    skip = set(skip)
    unknown = skip - set(tgt_layers)
    if unknown:
        raise ValueError(f"`skip` names layers that are not in the target: {sorted(unknown)}")
    report = ImportReport()
    for name, layer in tgt_layers.items():
        if name in skip:
            continue
        if name not in src_layers:
            report.unmatched.append(name)
            continue
        src_weights = src_layers[name].get_weights()
        src_shapes = [tuple(w.shape) for w in src_weights]
        tgt_shapes = [tuple(w.shape) for w in layer.weights]
        if src_shapes == tgt_shapes:
            layer.set_weights(src_weights)
        elif adapt_channels and _channel_adaptable(src_shapes, tgt_shapes):
            src_weights[0] = adapt_input_channels(src_weights[0], tgt_shapes[0][2])
            layer.set_weights(src_weights)
            report.adapted[name] = (src_shapes, tgt_shapes)
        else:
            report.mismatched[name] = (src_shapes, tgt_shapes)
            continue
        report.imported.append(name)
    report.source_only = [n for n in src_layers if n not in tgt_layers]
    if not report.imported and not allow_empty and set(tgt_layers) - skip:
        raise ValueError(
            f"No layer of target '{target.name}' matches a layer of source '{source.name}' by "
            "name and weight shapes: nothing would be imported and the target would train from "
            f"scratch. Target layers: {_names(tgt_layers)}; source layers: "
            f"{_names(src_layers)}; same name, other shapes: {sorted(report.mismatched)}. Name "
            "the target's layers after the source's (e.g. build it with the same model "
            "function), or pass allow_empty=True to train from scratch on purpose."
        )
    return report


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _names(layers, limit=12):
    names = list(layers)
    return ", ".join(names[:limit]) + (f" ... ({len(names)} in all)" if len(names) > limit else "")


def cut_at(model, layer_name):
    """The sub-model of `model` from its inputs up to the output of `layer_name` (top level).

    `layer_name` may name a nested model (a `keras.applications` backbone): the cut ends at
    its output in `model`.
    """
    layer = get_layer(model, layer_name)
    if layer not in model.layers:
        raise ValueError(
            f"Layer '{layer_name}' is inside a nested model; cut the nested model "
            f"('{_owner(model, layer).name}') instead."
        )
    if isinstance(layer, keras.Model):  # its own `.output` lives in its inner graph
        output = last_call_outputs(layer)[0]
    else:
        output = layer.output
    return keras.Model(model.inputs, output, name=f"{model.name}_cut_{layer_name}")


def _owner(model, layer):
    for sub in model.layers:
        if isinstance(sub, keras.Model) and layer in list(iter_layers(sub)):
            return sub
    return model


POOLINGS = {
    "flatten": (keras.layers.Flatten, "flatten_new"),
    "avg": (keras.layers.GlobalAveragePooling2D, "avg_pool_new"),
    "max": (keras.layers.GlobalMaxPooling2D, "max_pool_new"),
}


def pooling_layer(pooling):
    """The new layer that turns a 4-D feature map into a vector: "flatten", "avg" or "max".

    >>> pooling_layer("avg").name
    'avg_pool_new'
    """
    if pooling not in POOLINGS:
        raise ValueError(f"`pooling` must be 'flatten', 'avg' or 'max'. Received: {pooling!r}")
    layer_class, name = POOLINGS[pooling]
    return layer_class(name=name)


def replace_head(
    model,
    num_classes,
    *,
    cut_layer=None,
    hidden=(),
    dropout=0.0,
    pooling="flatten",
    classifier_name="classifier_new",
    name=None,
):
    """Cut `model` and attach a new classification head: the toolkit's one head builder.

    The head is: pooling of a 4-D cut output ("flatten_new", "avg_pool_new" or
    "max_pool_new"), then per size in `hidden` a ReLU Dense layer `fc{i}_new` followed by
    Dropout `dropout{i}_new`, then (without hidden layers) Dropout "dropout_new", then the
    softmax classifier `classifier_new`, computed in float32 whatever the dtype policy. Dropout
    layers are left out when `dropout` is 0. The "_new" suffix keeps the new layers from ever
    matching a source layer by name. The kept layers are shared with `model`, not copied (clone
    it first for a copy). neon's VGG-16 transfer model is `replace_head(vgg16, 2,
    cut_layer="block5_pool", hidden=(4096, 4096), dropout=0.5)`.

    Args:
        model: a functional or Sequential model.
        num_classes: outputs of the new softmax classifier.
        cut_layer: keep everything up to this layer (a nested model included); default: all but
            the last layer.
        hidden: sizes of new ReLU dense layers.
        dropout: rate of the dropout after each hidden layer, or before the classifier when
            there is none (0 for none).
        pooling: how a 4-D cut output becomes a vector: "flatten", "avg" or "max".
        classifier_name: name of the new output layer.
        name: the new model's name (default: "{model.name}_transfer").

    Example:

    >>> from kerastransfer.models import small_cnn
    >>> target = replace_head(small_cnn(num_classes=10), 4, cut_layer="fc1", dropout=0.2)
    >>> [layer.name for layer in target.layers[-2:]], target.output_shape
    (['dropout_new', 'classifier_new'], (None, 4))
    """
    if not _is_int(num_classes) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an integer >= 2. Received: {num_classes!r}")
    if not isinstance(hidden, (list, tuple)) or not all(_is_int(u) and u >= 1 for u in hidden):
        raise ValueError(
            f"`hidden` must be a list of positive layer sizes, e.g. [256]. Received: {hidden!r}"
        )
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1). Received: {dropout!r}")
    pooling_layer(pooling)  # checks the name before any layer is cut
    if cut_layer is None:
        if len(model.layers) < 2:
            raise ValueError(
                "The model has a single layer: nothing is left after removing the head."
            )
        cut_layer = model.layers[-2].name
    base = cut_at(model, cut_layer)
    x = base.output
    if len(x.shape) == 4:
        x = pooling_layer(pooling)(x)
    for i, units in enumerate(hidden, start=1):
        x = keras.layers.Dense(int(units), activation="relu", name=f"fc{i}_new")(x)
        if dropout:
            x = keras.layers.Dropout(float(dropout), name=f"dropout{i}_new")(x)
    if dropout and not hidden:
        x = keras.layers.Dropout(float(dropout), name="dropout_new")(x)
    # float32 softmax whatever the precision (mixed float16/bfloat16 probabilities lose mass)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name=classifier_name
    )(x)
    return keras.Model(model.inputs, outputs, name=name or f"{model.name}_transfer")


def freeze_bottom_levels(model, n):
    """Set `trainable=False` on the bottom `n` levels (see `weighted_levels`); return their names.

    Frozen layers run in inference mode: BatchNormalization keeps the source statistics. For
    frozen weights with adapting statistics, use learning rate 0 (`optimizers.neon_optimizer`).
    Compile the model after freezing.
    """
    levels = weighted_levels(model)
    if not _is_int(n) or not 0 <= n <= len(levels):
        raise ValueError(
            f"`n` must be an integer between 0 and {len(levels)} (the model's levels: "
            f"{[lv[0].name for lv in levels]}). Received: {n!r}"
        )
    frozen = []
    for level in levels[:n]:
        for layer in level:
            layer.trainable = False
            frozen.append(layer.name)
    return frozen
