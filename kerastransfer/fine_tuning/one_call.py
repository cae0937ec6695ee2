"""`fine_tune`: the one call (see the package docstring for its steps)."""

import contextlib
import time

import keras
import tensorflow as tf

from kerastransfer.data.read_errors import explain_read_error
from kerastransfer.fine_tuning.devices import (
    float32_copy,
    precision_scope,
    resolve_distribution,
    resolve_precision,
)
from kerastransfer.fine_tuning.fine_tune_config import FineTuneConfig
from kerastransfer.fine_tuning.parameter_efficient import adapt_transfer_model, serving_model
from kerastransfer.fine_tuning.report import FineTuneResult
from kerastransfer.fine_tuning.training import load_data, train_transfer_model
from kerastransfer.fine_tuning.transfer_model import build_transfer_model, target_input_shape
from kerastransfer.pretrained import application_builder, load_source


@contextlib.contextmanager
def read_errors_named(data):
    """Turns a pipeline's failure to read an image file into a `ValueError` naming the file."""
    try:
        yield
    except tf.errors.OpError as e:
        explained = explain_read_error(e, data)
        if explained is None:
            raise
        raise explained from None


def fine_tune(
    source,
    data,
    *,
    config=None,
    weights="imagenet",
    backup_dir=None,
    log_dir=None,
    export=None,
    export_formats=("saved_model",),
    callbacks=(),
    verbose=1,
    distribution=None,
    precision=None,
    augment=None,
    cache=None,
    skip_unreadable=False,
    **choices,
):
    """Fine-tune a pretrained network on a dataset; see the package docstring for the steps.

    Args:
        source: a `keras.applications` name ("MobileNetV2"), a `.keras` file, a Keras model, or
            a KerasHub preset of an image backbone (a folder or a `kaggle://` / `hf://` handle;
            the `hub` extra), which trains like an application name (`image_size`, `channels`).
        data: anything `load_dataset` takes ("embedded:fashion_mnist", an `.npz`, an image
            folder, a tensorflow-datasets name) or a `TransferData`.
        config: a `FineTuneConfig`: the method, rates, levels, head, warm-up, epochs, input
            size, data loading and seed (default: `FineTuneConfig()`'s defaults).
        **choices: any field of `FineTuneConfig` (`method`, `learning_rate`, `imported_rate`,
            `frozen_levels`, `groups`, `every`, `bpa`, `gamma`, `train_normalization`, `rank`,
            `lora_alpha`, `lora_dropout`, `lora_targets`, `head_width`, `dropout`,
            `warmup_epochs`, `warmup_learning_rate`, `epochs`, `patience`, `image_size`,
            `channels`, `samples_per_class`, `validation_split`, `batch_size`, `seed`),
            replacing `config`'s; its docstring says what each does.
        weights: the source application's weights: "imagenet" or a weights file (no top); for a
            KerasHub preset "imagenet" is the preset's own weights.
        backup_dir: resume an interrupted run from here, to the uninterrupted result
            (`kerastransfer.callbacks.BackupAndRestore`).
        log_dir: TensorBoard logs.
        export: a folder to write the serving export to; `export_formats` among
            "saved_model", "onnx", "litert". For "lora" and "dora" the export serves the merged
            model (`methods.peft.merge_adapters`: the base architecture, no adapter layer).
        callbacks: more `keras.callbacks` for the fine-tuning `fit`.
        verbose: 0 silent, 1 progress bars and the report, 2 one line per epoch.
        distribution: the devices: `None`/"auto" (a `tf.distribute.MirroredStrategy` over the
            visible GPUs when there are two or more, else one device; inside a strategy's
            scope, that strategy), a number of GPUs, or a `tf.distribute.Strategy`. The model,
            the optimizer map, warm-up, LR finder, gradual unfreezing and BPA run under its
            scope (see `fine_tuning.devices.resolve_distribution`).
        precision: `None` (the current Keras dtype policy), "float32", "mixed_float16" (with
            loss scaling) or "mixed_bfloat16": the dtype policy the model is built with. The
            classifier's softmax computes in float32 and the export takes and returns float32;
            the global dtype policy is restored when `fine_tune` returns.
        augment, cache, skip_unreadable: passed to `load_dataset`: training-time augmentation
            ("auto" picks a preset for the kind of data), a cache of decoded images ("memory"
            or a folder), and leaving unreadable image files out (counted in the report)
            instead of stopping at the first, which is otherwise named in a `ValueError`.

    Returns:
        A `FineTuneResult` (`model`, `report`, `data`). For "lora" and "dora" `model` holds the
        `AdaptedLayer`s (`merge_adapters(model)` gives the plain model; its `.keras` file loads
        where `kerastransfer` is imported); for "bitfit" it is a plain model whose per-variable
        `trainable` flags a `.keras` file does not keep.
    """
    start = time.perf_counter()
    config = (config or FineTuneConfig()).replace(**choices)
    strategy = resolve_distribution(distribution)
    resolve_precision(precision)  # a wrong name fails before any work
    if export:  # so does a missing `export` extra (ONNX)
        from kerastransfer.export.formats import require_converter

        for fmt in (export_formats,) if isinstance(export_formats, str) else export_formats:
            require_converter(fmt)
    keras.utils.set_random_seed(config.seed)
    source, data = source_and_data(
        source, data, config, augment=augment, cache=cache, skip_unreadable=skip_unreadable
    )
    # the model, its adapters, the optimizer map, warm-up, LR finder, unfreezing and BPA: under
    # the strategy (and the dtype policy)
    with read_errors_named(data), precision_scope(precision) as policy, strategy.scope():
        model, body, head, imported = build_transfer_model(
            source,
            data.image_shape,
            data.info.num_classes,
            head_width=config.head_width,
            dropout=config.dropout,
            weights=weights,
        )
        model, body, head = adapt_transfer_model(model, body, head, config)
        report = train_transfer_model(
            model,
            body,
            head,
            imported,
            data,
            config,
            backup_dir=backup_dir,
            log_dir=log_dir,
            callbacks=callbacks,
            verbose=verbose,
            source_name=source if isinstance(source, str) else source.name,
        )
    if export:
        from kerastransfer.export import export_serving

        report.export_path = export_serving(
            # adapters merged into the base architecture; a mixed-precision model in float32
            float32_copy(serving_model(model)),
            export,
            raw_shape=data.info.image_shape,
            formats=export_formats,
            class_names=data.info.class_names,
        )
    report.skipped = data.skipped
    report.replicas = strategy.num_replicas_in_sync
    report.precision = policy
    report.total_s = time.perf_counter() - start
    if verbose:
        print(report)
    return FineTuneResult(model, report, data)


def source_and_data(source, data, config, *, augment=None, cache=None, skip_unreadable=False):
    """The source (loaded, unless an application name) and the `TransferData`, served at the
    input shape the transfer trains at (`target_input_shape`): what `fine_tune` and the tuner's
    trials start from."""
    if not application_builder(source):
        source = load_source(source)
    data = load_data(
        data,
        validation_split=config.validation_split,
        samples_per_class=config.samples_per_class,
        batch_size=config.batch_size,
        seed=config.seed,
        augment=augment,
        cache=cache,
        skip_unreadable=skip_unreadable,
    )
    data.image_shape = target_input_shape(  # served converted to the model's input
        source, data.info.image_shape, image_size=config.image_size, channels=config.channels
    )
    if data.validation is None:
        raise ValueError(
            "fine_tune needs a validation split for early stopping: `validation_split` must be > 0."
        )
    return source, data
