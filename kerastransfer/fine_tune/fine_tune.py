"""`fine_tune`: the one call (see the package docstring for its steps)."""

import time

import keras

from kerastransfer.fine_tune.report import FineTuneReport, FineTuneResult  # noqa: F401
from kerastransfer.fine_tune.training import (  # noqa: F401
    DEFAULT_IMPORTED_RATE,
    METHODS,
    NORMALIZATION_LAYERS,
    describe_groups,
    images_only,
    load_data,
    pooled_features,
    train_transfer_model,
    transfer_optimizer,
)
from kerastransfer.fine_tune.transfer_model import (  # noqa: F401
    CAFFE_MODE,
    TF_MODE,
    TORCH_MODE,
    application_builder,
    build_transfer_model,
    load_application_source,
    preprocess_layer,
)


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
