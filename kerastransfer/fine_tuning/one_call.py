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
from kerastransfer.fine_tuning.report import FineTuneReport, FineTuneResult  # noqa: F401
from kerastransfer.fine_tuning.training import (  # noqa: F401
    DEFAULT_IMPORTED_RATE,
    METHODS,
    NORMALIZATION_LAYERS,
    describe_groups,
    load_data,
    train_transfer_model,
    transfer_optimizer,
)
from kerastransfer.fine_tuning.transfer_model import (  # noqa: F401
    CAFFE_MODE,
    TF_MODE,
    TORCH_MODE,
    application_builder,
    build_transfer_model,
    load_application_source,
    preprocess_layer,
)


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
    distribution=None,
    precision=None,
    augment=None,
    cache=None,
    skip_unreadable=False,
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
        samples_per_class, validation_split, batch_size: passed to `load_dataset`. Under a
            distribution strategy `batch_size` is the global batch, split across the replicas.
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
        A `FineTuneResult` (`model`, `report`, `data`).
    """
    start = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {', '.join(METHODS)}. Received: {method!r}")
    imported_rate = DEFAULT_IMPORTED_RATE[method] if imported_rate is None else imported_rate
    if not 0 <= float(imported_rate) <= 1:
        raise ValueError(f"`imported_rate` must be in [0, 1]. Received: {imported_rate}")
    if method == "neon" and float(imported_rate) != 0:
        raise ValueError(
            "`imported_rate` must be 0 for method 'neon' (imported layers train at rate 0); "
            f"use method 'discriminative' for a small rate. Received: {imported_rate}"
        )
    if learning_rate != "find" and not (
        isinstance(learning_rate, (int, float)) and learning_rate > 0
    ):
        raise ValueError(
            f"`learning_rate` must be a positive number or 'find'. Received: {learning_rate!r}"
        )
    strategy = resolve_distribution(distribution)
    resolve_precision(precision)  # a wrong name fails before any work
    keras.utils.set_random_seed(seed)
    is_app = isinstance(source, str) and application_builder(source) is not None
    if not is_app and (image_size or channels):
        raise ValueError(
            "`image_size` and `channels` apply to keras.applications sources "
            "only: a model source keeps its own input shape."
        )
    if not is_app:
        from kerastransfer.surgery import load_source

        source = load_source(source)
    data_obj = load_data(
        data,
        None,
        validation_split=validation_split,
        samples_per_class=samples_per_class,
        batch_size=batch_size,
        seed=seed,
        augment=augment,
        cache=cache,
        skip_unreadable=skip_unreadable,
    )
    if is_app:
        size = int(image_size or 96)
        image_shape = (size, size, int(channels or data_obj.info.image_shape[-1]))
    else:
        image_shape = tuple(source.input_shape[1:])
    data_obj.image_shape = image_shape  # served converted to the model's input
    if data_obj.validation is None:
        raise ValueError(
            "fine_tune needs a validation split for early stopping: `validation_split` must be > 0."
        )

    # the model, the optimizer map, warm-up, LR finder, unfreezing and BPA: under the strategy
    with read_errors_named(data_obj), precision_scope(precision) as policy, strategy.scope():
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
            float32_copy(model),  # a mixed-precision model is served in float32
            export,
            raw_shape=data_obj.info.image_shape,
            formats=export_formats,
            class_names=data_obj.info.class_names,
        )
    result.skipped = data_obj.skipped
    result.replicas = strategy.num_replicas_in_sync
    result.precision = policy
    result.total_s = time.perf_counter() - start
    if verbose:
        print(result)
    return FineTuneResult(model, result, data_obj)
