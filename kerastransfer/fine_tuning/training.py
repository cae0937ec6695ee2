"""The training steps of `fine_tune`: data, the warm-up features, the optimizer map of each
method, and `train_transfer_model` (warm-up, then the method)."""

import math
import os
import time

import keras
import numpy as np

from kerastransfer import optimizers as maps
from kerastransfer.callbacks.gradual_unfreezing import GradualUnfreezing
from kerastransfer.callbacks.learning_rate_logger import LearningRateLogger, group_learning_rates
from kerastransfer.fine_tuning.report import FineTuneReport, FineTuneResult  # noqa: F401
from kerastransfer.fine_tuning.transfer_model import build_transfer_model  # noqa: F401
from kerastransfer.fine_tuning.warmup import warm_up_head
from kerastransfer.surgery import (
    NORMALIZATION_LAYERS,
    freeze_bottom_levels,
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


def load_data(data, image_shape, **load_args):
    """`data` itself if it is a `TransferData`, else `load_dataset(data, **load_args)`."""
    from kerastransfer.data import TransferData, load_dataset

    if isinstance(data, TransferData):
        return data
    return load_dataset(data, image_shape=image_shape, **load_args)


def transfer_optimizer(method, model, head, imported, learning_rate, imported_rate, groups):
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


def describe_groups(optimizer, model):
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's map
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
    evaluation. Returns a `FineTuneReport` (the model is trained in place).

    Call it in the `tf.distribute` strategy scope the model was built in (`fine_tune` does); a
    `mixed_float16` model trains with a `keras.optimizers.LossScaleOptimizer` around the map.
    """
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
        warm_epochs = warm_up_head(
            body,
            head,
            data_obj,
            epochs=warmup_epochs,
            learning_rate=warmup_learning_rate,
            batch_size=batch_size,
            seed=data_obj.seed,
            loss=loss,
        )
    warmup_s = time.perf_counter() - warm_start

    for layer in iter_layers(body):
        if isinstance(layer, NORMALIZATION_LAYERS) and not train_normalization:
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
    optimizer = transfer_optimizer(
        method_used,
        model,
        head,
        imported,
        1e-4 if find else learning_rate,
        float(imported_rate),
        groups,
    )
    if model.dtype_policy.name == "mixed_float16":  # loss scaling, for BPAModel's compile too
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    use_bpa = method_used == "bpa" or bpa
    train_model = model
    extra_callbacks, callbacks = list(callbacks), []
    if use_bpa:
        from kerastransfer.methods.bpa import BPAModel, GammaRefresh

        train_model = BPAModel(model, gamma=gamma)
        callbacks.append(GammaRefresh(data_obj, max_batches=2))  # reads only its sample
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
    if method_used == "gradual":  # before BackupAndRestore: a resume unfreezes, then loads
        callbacks.append(
            GradualUnfreezing(
                every=every,
                max_levels=body_levels - frozen_levels,
                verbose=int(verbose > 0),
                backup_dir=backup_dir,
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
    groups_report = describe_groups(train_model.optimizer, model)

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
