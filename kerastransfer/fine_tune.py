"""`fine_tune`: from a pretrained network and a dataset to a trained, evaluated model in one call.

The steps every transfer run repeats, in order:

1. **Source and target.** The source is a `keras.applications` name (loaded with ImageNet weights
   at the target's input size, offline from `$KERAS_HOME/models/`), a `.keras` file or a model.
   The target is the same architecture at the data's input shape, with the source's matching
   layers imported (`surgery.import_matching_layers`; a gray target gets the first convolution
   summed over its RGB input channels), the source's head removed and a new head: optional
   ReLU layer of `head_width` units, dropout, softmax `classifier_new`.
2. **Warm-up.** The new head is trained with the body frozen (inference mode) on the body's
   pooled features, computed once: as a full-model warm-up, but without a forward pass through the
   body every epoch. Early stopping on validation loss, best weights restored.
3. **The method**, on the whole model (normalization layers stay in inference mode unless
   `train_normalization=True`; the bottom `frozen_levels` levels stay frozen):

   - `"neon"`: imported layers at learning rate 0, new layers at `learning_rate` (Intel neon's
     transfer scheme; with `train_normalization=True` BatchNormalization statistics adapt).
   - `"discriminative"`: the body's trainable levels in `groups` groups, rates geometric from
     `learning_rate * imported_rate` (bottom) to `learning_rate` (head) (Howard and Ruder 2018,
     "Universal Language Model Fine-tuning for Text Classification").
   - `"layerwise_decay"`: rate x decay**depth from the top, decay chosen so the bottom level gets
     `learning_rate * imported_rate` (Clark et al. 2020, "ELECTRA"; timm's layer decay).
   - `"gradual"`: the body starts frozen and `callbacks.GradualUnfreezing` unfreezes one level
     every `every` epochs, top down; imported layers at `learning_rate * imported_rate`.
   - `"bpa"`: all layers at `learning_rate * imported_rate` (imported) / `learning_rate` (new),
     gradients of the first convolution's filters scaled by Gamma (`methods.bpa.BPAModel`,
     Shahriari 2017), refreshed each epoch by `GammaRefresh`. `bpa=True` adds it to any method.

   Early stopping on validation loss restores the best epoch; `backup_dir` makes the run
   resumable (`keras.callbacks.BackupAndRestore`), `log_dir` writes TensorBoard logs (with each
   optimizer group's rate), `export` writes a serving export (`export.export_serving`).

`imported_rate=0` gives the neon scheme whatever the method.

Example (tiny; real runs use an application name such as "MobileNetV2"):

>>> from kerastransfer.models import small_cnn
>>> result = fine_tune(small_cnn(filters=(4, 6), dense=16), "embedded:usps",
...                    samples_per_class=5, epochs=1, warmup_epochs=2, verbose=0)
>>> result.model.output_shape, result.report.method
((None, 10), 'discriminative')
"""

import dataclasses
import math
import os
import re
import time

import keras
import numpy as np

from kerastransfer import optimizers as maps
from kerastransfer.callbacks.gradual_unfreezing import GradualUnfreezing
from kerastransfer.callbacks.learning_rate_logger import LearningRateLogger, group_learning_rates
from kerastransfer.surgery import (
    freeze_bottom_levels,
    import_matching_layers,
    iter_layers,
    weighted_levels,
)

METHODS = ("neon", "discriminative", "layerwise_decay", "gradual", "bpa")
DEFAULT_IMPORTED_RATE = {
    "neon": 0.0,
    "discriminative": 0.1,
    "layerwise_decay": 0.1,
    "gradual": 1.0,
    "bpa": 1.0,
}
_NORMALIZATION = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
)
# How each keras.applications family expects its pixels (raw [0, 255] in, as every model here).
_TF_MODE = (
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
_TORCH_MODE = ("DenseNet121", "DenseNet169", "DenseNet201")
_CAFFE_MODE = ("VGG16", "VGG19", "ResNet50", "ResNet101", "ResNet152")


@dataclasses.dataclass
class FineTuneReport:
    """What `fine_tune` did: imports, rates, epochs, accuracies and times."""

    source: str
    method: str
    input_shape: tuple
    imported: list
    adapted: dict
    new_layers: list
    frozen: list
    groups: dict
    warmup_epochs: int = 0
    epochs: int = 0
    best_epoch: int = 0
    train_accuracy: float = math.nan
    val_accuracy: float = math.nan
    test_accuracy: float = math.nan
    warmup_s: float = 0.0
    fine_tune_s: float = 0.0
    total_s: float = 0.0
    export_path: str = None
    found_learning_rate: float = None
    history: dict = dataclasses.field(default_factory=dict, repr=False)

    def __str__(self):
        adapted = ", ".join(f"{k} adapted {v[0][0]} -> {v[1][0]}" for k, v in self.adapted.items())
        lines = [
            f"fine_tune {self.source} -> {self.input_shape}, method {self.method}",
            f"  imported {len(self.imported)} layers" + (f" ({adapted})" if adapted else ""),
            f"  new layers: {', '.join(self.new_layers)}",
        ]
        if self.frozen:
            lines.append(f"  frozen (trainable=False): {len(self.frozen)} layers")
        for name, (rate, count) in self.groups.items():
            lines.append(f"  group {name:<16} lr {rate:<10.3g} {count} variables")
        lines.append(
            f"  warm-up {self.warmup_epochs} epochs ({self.warmup_s:.1f} s), fine-tuning "
            f"{self.epochs} epochs, best {self.best_epoch} ({self.fine_tune_s:.1f} s)"
        )
        lines.append(
            f"  accuracy: train {self.train_accuracy:.2%}  validation {self.val_accuracy:.2%}  "
            f"test {self.test_accuracy:.2%}   total {self.total_s:.1f} s"
        )
        if self.export_path:
            lines.append(f"  exported to {self.export_path}")
        return "\n".join(lines)


@dataclasses.dataclass
class FineTuneResult:
    """`model` (the trained Keras classifier), `report` (a `FineTuneReport`), `data`."""

    model: keras.Model
    report: FineTuneReport
    data: object


def application_builder(name):
    builder = getattr(keras.applications, name, None)
    return builder if callable(builder) and name[:1].isupper() else None


def _preprocess(name, channels):
    if name in _TF_MODE:
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")
    if name in _TORCH_MODE:
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
        if channels == 1:
            mean, std = [float(np.mean(mean))], [float(np.mean(std))]
        return keras.layers.Normalization(
            mean=[255 * m for m in mean], variance=[(255 * s) ** 2 for s in std], name="preprocess"
        )
    if name in _CAFFE_MODE:
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


def build_transfer_model(source, image_shape, num_classes, *, head_width=0, dropout=0.2):
    """The target network: source architecture at `image_shape`, source layers imported, new head.

    Returns `(model, body, head, import_report)`: `model` is `head(body(images))`, `body` maps
    raw images to pooled features and `head` (a nested model named "head") maps them to class
    probabilities.
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
        pre = _preprocess(name, image_shape[-1])
        report = import_matching_layers(src, backbone)
        if name in _CAFFE_MODE and image_shape[-1] == 3:
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
        clone = keras.models.clone_model(src)
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
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classifier_new")(x)
    head = keras.Model(feat_in, outputs, name="head")
    model = keras.Model(inputs, head(body(inputs)), name=f"{source_name}_transfer".lower())
    present = {layer.name for layer in iter_layers(model)}
    dropped = [n for n in report.imported if n not in present]  # the source's own head
    report.imported = [n for n in report.imported if n in present]
    report.adapted = {k: v for k, v in report.adapted.items() if k in present}
    report.source_only = [*report.source_only, *dropped]
    return model, body, head, report


def _load_data(data, image_shape, *, validation_split, samples_per_class, batch_size, seed):
    from kerastransfer.data import TransferData, load_dataset

    if isinstance(data, TransferData):
        return data
    return load_dataset(
        data,
        validation_split=validation_split,
        samples_per_class=samples_per_class,
        image_shape=image_shape,
        batch_size=batch_size,
        seed=seed,
    )


def _images(images, labels):
    return images


def _features(body, dataset):
    features = body.predict(dataset.map(_images), verbose=0)
    labels = np.concatenate([y.numpy() for _, y in dataset])
    return features, labels


def _optimizer(method, model, head, imported, learning_rate, imported_rate, groups):
    """The per-layer optimizer map of `method` (Adam at `learning_rate` for the new layers)."""
    base = keras.optimizers.Adam(learning_rate)
    trainable = {ly.name for ly in iter_layers(model) if ly.trainable and ly.weights}
    # gradual: every imported layer gets its group now, before the callback unfreezes it
    names = list(imported) if method == "gradual" else [n for n in imported if n in trainable]
    if not names or (imported_rate == 1 and method not in ("discriminative", "layerwise_decay")):
        return maps.ScaledMultiOptimizer(keras.optimizers.OptimizerMap(base, {}))
    if imported_rate == 0:
        return maps.neon_optimizer(names, base, allow_frozen=method == "gradual")
    if method == "discriminative":
        levels = [
            [ly.name for ly in lv if ly.name in trainable]
            for lv in weighted_levels(model)
            if lv[0].name in names
        ]
        levels = [lv for lv in levels if lv]
        chunks = np.array_split(np.arange(len(levels)), min(groups, len(levels)))
        body_groups = [[n for i in c for n in levels[i]] for c in chunks if len(c)]
        head_names = [ly.name for ly in iter_layers(head) if ly.weights]
        return maps.discriminative_optimizer(
            [*body_groups, head_names], learning_rate * imported_rate, learning_rate, base
        )
    if method == "layerwise_decay":
        depth = len(weighted_levels(model)) - 1
        decay = imported_rate ** (1.0 / max(depth, 1))
        return maps.layerwise_decay_optimizer(model, learning_rate, decay, base)
    rate = maps.copy_with_learning_rate(base, learning_rate * imported_rate, "imported")
    return maps.ScaledMultiOptimizer(
        keras.optimizers.OptimizerMap(base, {maps.layer_pattern(names): rate}),
        allow_frozen=method == "gradual",  # the frozen body is unfrozen later
    )


def _groups_report(optimizer, model):
    subs = getattr(optimizer, "optimizers", None) or [optimizer]
    counts = {}
    if hasattr(optimizer, "_optimizer_map"):
        for v in model.trainable_variables:
            opt = optimizer._optimizer_map(v)
            counts[id(opt)] = counts.get(id(opt), 0) + 1
    else:
        counts[id(optimizer)] = len(model.trainable_variables)
    rates = group_learning_rates(optimizer)
    return {name: (rate, counts.get(id(opt), 0)) for (name, rate), opt in zip(rates.items(), subs)}


def fine_tune(
    source,
    data,
    *,
    method="discriminative",
    image_size=None,
    channels=None,
    samples_per_class=None,
    validation_split=0.1,
    batch_size=32,
    head_width=0,
    dropout=0.2,
    learning_rate=1e-4,
    imported_rate=None,
    frozen_levels=0,
    groups=3,
    every=1,
    bpa=False,
    gamma="agreement",
    train_normalization=False,
    warmup_epochs=200,
    warmup_learning_rate=1e-3,
    epochs=10,
    patience=2,
    backup_dir=None,
    log_dir=None,
    export=None,
    export_formats=("saved_model",),
    callbacks=(),
    seed=0,
    verbose=1,
):
    """Fine-tune a pretrained network on a dataset; see the module docstring for the steps.

    Args:
        source: a `keras.applications` name ("MobileNetV2"), a `.keras` file or a Keras model.
        data: anything `load_dataset` takes ("embedded:fashion_mnist", an `.npz`, an image
            folder, a tensorflow-datasets name) or a `TransferData`.
        method: one of `METHODS`.
        image_size: input height and width for an application source (default 96); a model
            source keeps its own input shape.
        channels: input channels of an application target (default: the data's, the first
            convolution adapted to them).
        samples_per_class, validation_split, batch_size: passed to `load_dataset`.
        head_width: units of a new ReLU layer before the classifier (0: none).
        dropout: dropout before the classifier.
        learning_rate: Adam rate of the new layers (the top group), or "find": the
            learning-rate range test (`callbacks.LRFinder`) on the warmed-up model picks it
            (fastai's `lr_find`), the other groups keeping their ratios to it.
        imported_rate: rate of the imported layers (the bottom group for discriminative and
            layer-wise decay) as a multiple of `learning_rate`; 0 is the neon scheme. Default:
            `DEFAULT_IMPORTED_RATE[method]`.
        frozen_levels: bottom levels kept frozen (`trainable=False`) through fine-tuning.
        groups: body groups of the discriminative method.
        every: epochs between unfreezings (gradual).
        bpa, gamma: add BPA gradient costs (always on for `method="bpa"`) with this Gamma
            functional ("paper" or "agreement").
        train_normalization: train the normalization layers of the body (default: inference
            mode with the source statistics).
        warmup_epochs, warmup_learning_rate: the head's warm-up on frozen features (at most
            that many epochs; early stopping with patience 10).
        epochs, patience: fine-tuning epochs at most, early stopping patience on `val_loss`.
        backup_dir: resume an interrupted run from here (`BackupAndRestore`).
        log_dir: TensorBoard logs.
        export: a folder to write the serving export to; `export_formats` among
            "saved_model", "onnx", "litert".
        callbacks: more `keras.callbacks` for the fine-tuning `fit`.
        seed: seeds every random choice (data split, initialisation, dropout).
        verbose: 0 silent, 1 progress bars and the report, 2 one line per epoch.

    Returns:
        A `FineTuneResult` (`model`, `report`, `data`).
    """
    start = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {', '.join(METHODS)}. Received: {method!r}")
    imported_rate = DEFAULT_IMPORTED_RATE[method] if imported_rate is None else imported_rate
    if not 0 <= float(imported_rate) <= 1:
        raise ValueError(f"`imported_rate` must be in [0, 1]. Received: {imported_rate}")
    if learning_rate != "find" and not (
        isinstance(learning_rate, (int, float)) and learning_rate > 0
    ):
        raise ValueError(
            f"`learning_rate` must be a positive number or 'find'. Received: {learning_rate!r}"
        )
    keras.utils.set_random_seed(seed)
    is_app = isinstance(source, str) and application_builder(source) is not None
    if is_app:
        data_obj = _load_data(
            data,
            None,
            validation_split=validation_split,
            samples_per_class=samples_per_class,
            batch_size=batch_size,
            seed=seed,
        )
        size = int(image_size or 96)
        image_shape = (size, size, int(channels or data_obj.info.image_shape[-1]))
    else:
        if image_size or channels:
            raise ValueError(
                "`image_size` and `channels` apply to keras.applications sources "
                "only: a model source keeps its own input shape."
            )
        from kerastransfer.surgery import load_source

        source = load_source(source)
        image_shape = tuple(source.input_shape[1:])
        data_obj = _load_data(
            data,
            None,
            validation_split=validation_split,
            samples_per_class=samples_per_class,
            batch_size=batch_size,
            seed=seed,
        )
    data_obj.image_shape = image_shape  # served converted to the model's input
    if data_obj.validation is None:
        raise ValueError(
            "fine_tune needs a validation split for early stopping: `validation_split` must be > 0."
        )

    model, body, head, report = build_transfer_model(
        source, image_shape, data_obj.info.num_classes, head_width=head_width, dropout=dropout
    )
    result = train_transfer_model(
        model,
        body,
        head,
        report,
        data_obj,
        method=method,
        learning_rate=learning_rate,
        imported_rate=imported_rate,
        frozen_levels=frozen_levels,
        groups=groups,
        every=every,
        bpa=bpa,
        gamma=gamma,
        train_normalization=train_normalization,
        warmup_epochs=warmup_epochs,
        warmup_learning_rate=warmup_learning_rate,
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        backup_dir=backup_dir,
        log_dir=log_dir,
        verbose=verbose,
        source_name=source if isinstance(source, str) else source.name,
        callbacks=callbacks,
    )
    if export:
        from kerastransfer.export import export_serving

        result.export_path = export_serving(
            model,
            export,
            raw_shape=data_obj.info.image_shape,
            formats=export_formats,
            class_names=data_obj.info.class_names,
        )
    result.total_s = time.perf_counter() - start
    if verbose:
        print(result)
    return FineTuneResult(model, result, data_obj)


def train_transfer_model(
    model,
    body,
    head,
    report,
    data_obj,
    *,
    method="discriminative",
    learning_rate=1e-4,
    imported_rate=None,
    frozen_levels=0,
    groups=3,
    every=1,
    bpa=False,
    gamma="agreement",
    train_normalization=False,
    warmup_epochs=200,
    warmup_learning_rate=1e-3,
    epochs=10,
    patience=2,
    batch_size=32,
    backup_dir=None,
    log_dir=None,
    verbose=1,
    source_name="model",
    evaluate_train=True,
    callbacks=(),
):
    """Steps 2 and 3 of `fine_tune` on a model from `build_transfer_model`: warm-up, method,
    evaluation. Returns a `FineTuneReport` (the model is trained in place)."""
    imported_rate = DEFAULT_IMPORTED_RATE[method] if imported_rate is None else imported_rate
    if method in ("discriminative", "layerwise_decay") and imported_rate == 0:
        method_used = "neon"
    else:
        method_used = method
    imported = list(report.imported)
    new_layers = [ly.name for ly in iter_layers(model) if ly.weights and ly.name not in imported]
    loss = "sparse_categorical_crossentropy"

    resuming = backup_dir is not None and os.path.isdir(backup_dir) and os.listdir(backup_dir)
    warm_start = time.perf_counter()
    warm_epochs = 0
    if warmup_epochs and not resuming:
        train_f = _features(body, data_obj.dataset("train"))
        val_f = _features(body, data_obj.validation)
        head.compile(keras.optimizers.Adam(warmup_learning_rate), loss, metrics=["accuracy"])
        stop = keras.callbacks.EarlyStopping("val_loss", patience=10, restore_best_weights=True)
        hist = head.fit(
            *train_f,
            validation_data=val_f,
            epochs=int(warmup_epochs),
            batch_size=batch_size,
            callbacks=[stop],
            verbose=0,
        )
        warm_epochs = len(hist.history["loss"])
    warmup_s = time.perf_counter() - warm_start

    for layer in iter_layers(body):
        if isinstance(layer, _NORMALIZATION) and not train_normalization:
            layer.trainable = False
    head_levels = sum(1 for lv in weighted_levels(model) if lv[0].name in new_layers)
    body_levels = len(weighted_levels(model)) - head_levels
    if not 0 <= frozen_levels <= body_levels:
        raise ValueError(
            f"`frozen_levels` must be between 0 and {body_levels} (the body's "
            f"levels). Received: {frozen_levels}"
        )
    frozen = freeze_bottom_levels(model, frozen_levels) if frozen_levels else []
    if method_used == "gradual":  # the whole body starts frozen; frozen_levels never unfreeze
        frozen = freeze_bottom_levels(model, body_levels)
    find = learning_rate == "find"
    optimizer = _optimizer(
        method_used,
        model,
        head,
        imported,
        1e-4 if find else learning_rate,
        float(imported_rate),
        groups,
    )
    use_bpa = method_used == "bpa" or bpa
    train_model = model
    extra_callbacks, callbacks = list(callbacks), []
    if use_bpa:
        from kerastransfer.methods.bpa import BPAModel, GammaRefresh

        train_model = BPAModel(model, gamma=gamma)
        callbacks.append(GammaRefresh(data_obj.dataset("train"), max_batches=2))
    train_model.compile(optimizer, loss, metrics=["accuracy"])
    found = None
    if find:  # the range test on the warmed-up model; every group keeps its ratio to the top
        from kerastransfer.callbacks.lr_finder import find_learning_rate

        finder = find_learning_rate(
            train_model, data_obj.train, min_lr=1e-7, max_lr=1e-1, steps=100
        )
        found = finder.suggestion()
        train_model.optimizer.learning_rate = found
        if verbose:
            print(
                f"LR finder: suggested learning rate {found:.3g} "
                f"(sweep {finder.learning_rates[0]:.1e}..{finder.learning_rates[-1]:.1e})"
            )
    if method_used == "gradual":
        callbacks.append(
            GradualUnfreezing(
                every=every, max_levels=body_levels - frozen_levels, verbose=int(verbose > 0)
            )
        )
    callbacks.append(LearningRateLogger(log_dir=log_dir))
    callbacks.append(
        keras.callbacks.EarlyStopping("val_loss", patience=patience, restore_best_weights=True)
    )
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir))
    if backup_dir:
        callbacks.append(keras.callbacks.BackupAndRestore(backup_dir))
    callbacks.extend(extra_callbacks)
    tune_start = time.perf_counter()
    history = train_model.fit(
        data_obj.train,
        validation_data=data_obj.validation,
        epochs=epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the pipeline shuffles every epoch itself
    )
    fine_tune_s = time.perf_counter() - tune_start
    groups_report = _groups_report(train_model.optimizer, model)

    model.compile(loss=loss, metrics=["accuracy"])

    def accuracy(ds):
        return float(model.evaluate(ds, verbose=0, return_dict=True)["accuracy"])

    val_losses = history.history.get("val_loss", [])
    result = FineTuneReport(
        source=source_name,
        method=method_used + ("+bpa" if use_bpa and method_used != "bpa" else ""),
        input_shape=tuple(model.input_shape[1:]),
        imported=imported,
        adapted=dict(report.adapted),
        new_layers=new_layers,
        frozen=frozen,
        groups=groups_report,
        warmup_epochs=warm_epochs,
        epochs=len(history.history.get("loss", [])),
        best_epoch=int(np.argmin(val_losses)) + 1 if val_losses else 0,
        train_accuracy=accuracy(data_obj.dataset("train")) if evaluate_train else math.nan,
        val_accuracy=accuracy(data_obj.validation),
        test_accuracy=accuracy(data_obj.test),
        warmup_s=warmup_s,
        found_learning_rate=found,
        fine_tune_s=fine_tune_s,
        history=dict(history.history),
    )
    return result
