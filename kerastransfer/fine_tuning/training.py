"""The training steps of `fine_tune`: data, the optimizer map of each method, and
`train_transfer_model` (warm-up, then the method, then the evaluation)."""

import math
import time

import keras
import numpy as np

from kerastransfer.callbacks.backup_and_restore import BackupAndRestore, backed_up_epochs
from kerastransfer.callbacks.epoch_seeding import EpochSeeding
from kerastransfer.callbacks.gradual_unfreezing import GradualUnfreezing
from kerastransfer.callbacks.learning_rate_logger import LearningRateLogger, group_learning_rates
from kerastransfer.fine_tuning.fine_tune_config import FineTuneConfig
from kerastransfer.fine_tuning.parameter_efficient import (
    check_adapted,
    check_backbone_trains,
    describe_adaptation,
)
from kerastransfer.fine_tuning.report import FineTuneReport
from kerastransfer.fine_tuning.warmup import warm_up_head
from kerastransfer.optimizers import (
    ScaledMultiOptimizer,
    copy_with_learning_rate,
    discriminative_optimizer,
    layer_pattern,
    layerwise_decay_optimizer,
    neon_optimizer,
)
from kerastransfer.surgery import (
    NORMALIZATION_LAYERS,
    freeze_bottom_levels,
    iter_layers,
    weighted_levels,
)

LOSS = "sparse_categorical_crossentropy"


def load_data(data, **load_args):
    """`data` itself if it is a `TransferData`, else `load_dataset(data, **load_args)`."""
    from kerastransfer.data import TransferData, load_dataset

    if isinstance(data, TransferData):
        return data
    return load_dataset(data, **load_args)


def transfer_optimizer(method, model, head, imported, learning_rate, imported_rate, groups):
    """The per-layer optimizer map of `method` (Adam at `learning_rate` for the new layers)."""
    base = keras.optimizers.Adam(learning_rate, name="new_layers")  # a key stable across runs
    trainable = {ly.name for ly in iter_layers(model) if ly.trainable and ly.weights}
    # gradual: every imported layer gets its group now, before the callback unfreezes it
    names = list(imported) if method == "gradual" else [n for n in imported if n in trainable]
    if not names or (imported_rate == 1 and method not in ("discriminative", "layerwise_decay")):
        return ScaledMultiOptimizer(keras.optimizers.OptimizerMap(base, {}))
    if imported_rate == 0:
        return neon_optimizer(names, base, allow_frozen=method == "gradual")
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
        return discriminative_optimizer(
            [*body_groups, head_names], learning_rate * imported_rate, learning_rate, base
        )
    if method == "layerwise_decay":
        depth = len(weighted_levels(model)) - 1
        decay = imported_rate ** (1.0 / max(depth, 1))
        return layerwise_decay_optimizer(model, learning_rate, decay, base)
    rate = copy_with_learning_rate(base, learning_rate * imported_rate, "imported")
    return ScaledMultiOptimizer(
        keras.optimizers.OptimizerMap(base, {layer_pattern(names): rate}),
        allow_frozen=method == "gradual",  # the frozen body is unfrozen later
    )


def describe_groups(optimizer, model):
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's map
    subs = getattr(optimizer, "optimizers", None) or [optimizer]
    counts = {}
    if hasattr(optimizer, "optimizer_for"):  # a ScaledMultiOptimizer
        for v in model.trainable_variables:
            opt = optimizer.optimizer_for(v)
            counts[id(opt)] = counts.get(id(opt), 0) + 1
    else:
        counts[id(optimizer)] = len(model.trainable_variables)
    rates = group_learning_rates(optimizer)
    return {name: (rate, counts.get(id(opt), 0)) for (name, rate), opt in zip(rates.items(), subs)}


def count_parameters(optimizer, model):
    """(trained, total): the scalars of `model.trainable_variables` that `optimizer` updates at
    a rate above 0 (neon's imported layers, at rate 0, are not counted), and of `model.weights`
    (non-trainable ones included)."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    subs = getattr(optimizer, "optimizers", None) or [optimizer]
    rates = dict(zip(map(id, subs), group_learning_rates(optimizer).values()))

    def trained(v):
        sub = optimizer.optimizer_for(v) if hasattr(optimizer, "optimizer_for") else optimizer
        return rates.get(id(sub), 1.0) > 0

    def size(variables):
        return int(sum(np.prod(v.shape, dtype=np.int64) for v in variables))

    return size(v for v in model.trainable_variables if trained(v)), size(model.weights)


def train_transfer_model(
    model,
    body,
    head,
    report,
    data,
    config=None,
    *,
    backup_dir=None,
    log_dir=None,
    callbacks=(),
    verbose=1,
    source_name="model",
    evaluate_train=True,
):
    """Steps 2 and 3 of `fine_tune` on a model from `build_transfer_model`: warm-up, method,
    evaluation, with the choices of `config` (a `FineTuneConfig`; default: the defaults).
    Returns a `FineTuneReport` (the model is trained in place).

    Call it in the `tf.distribute` strategy scope the model was built in (`fine_tune` does); a
    `mixed_float16` model trains with a `keras.optimizers.LossScaleOptimizer` around the map.
    For a parameter-efficient method (`PEFT_METHODS`) pass the three parts that
    `adapt_transfer_model` returns.
    """
    config = config or FineTuneConfig()
    method = config.effective_method
    check_adapted(model, head, config)
    imported = list(report.imported)
    new_layers = [ly.name for ly in iter_layers(model) if ly.weights and ly.name not in imported]
    resuming = backup_dir is not None and backed_up_epochs(backup_dir) > 0
    start = time.perf_counter()
    warm_epochs = 0
    if config.warmup_epochs and not resuming:
        warm_epochs = warm_up_head(
            body,
            head,
            data,
            epochs=config.warmup_epochs,
            learning_rate=config.warmup_learning_rate,
            batch_size=config.batch_size,
            seed=data.seed,
            loss=LOSS,
        )
    warmup_s = time.perf_counter() - start
    frozen, body_levels = _freeze(model, body, new_layers, config)
    check_backbone_trains(model, head, config)
    # a resumed run takes the rate the range test chose from the backup (the optimizer's state)
    train_model, found = _compile(model, head, imported, data, config, verbose, resuming)
    steps = [*_callbacks(data, config, body_levels, backup_dir, log_dir, verbose), *callbacks]
    if backup_dir:  # last: it saves what the others did in the epoch, early stopping's state too
        stop = next(c for c in steps if isinstance(c, keras.callbacks.EarlyStopping))
        steps.append(BackupAndRestore(backup_dir, track=[stop]))
    start = time.perf_counter()
    history = train_model.fit(
        data.train,
        validation_data=data.validation,
        epochs=config.epochs,
        callbacks=steps,
        verbose=verbose,
        shuffle=False,  # the pipeline shuffles every epoch itself
    )
    fine_tune_s = time.perf_counter() - start
    if found is None and config.learning_rate == "find":  # resumed: the backup's choice
        found = _learning_rate(train_model)
    groups = describe_groups(train_model.optimizer, model)
    trained, total = count_parameters(train_model.optimizer, model)
    val_losses = history.history.get("val_loss", [])
    use_bpa = method == "bpa" or config.bpa
    return FineTuneReport(
        source=source_name,
        method=method + ("+bpa" if use_bpa and method != "bpa" else ""),
        input_shape=tuple(model.input_shape[1:]),
        imported=imported,
        adapted=dict(report.adapted),
        new_layers=new_layers,
        frozen=frozen,
        groups=groups,
        trainable_parameters=trained,
        total_parameters=total,
        adaptation=describe_adaptation(model, head, config),
        warmup_epochs=warm_epochs,
        epochs=len(history.history.get("loss", [])),
        best_epoch=int(np.argmin(val_losses)) + 1 if val_losses else 0,
        **_accuracies(model, data, evaluate_train),
        warmup_s=warmup_s,
        found_learning_rate=found,
        fine_tune_s=fine_tune_s,
        history=dict(history.history),
    )


def _freeze(model, body, new_layers, config):
    """Normalization layers to inference mode (unless trained), the bottom `frozen_levels`
    frozen (the whole body for the gradual method). Returns (frozen names, body levels)."""
    for layer in iter_layers(body):
        if isinstance(layer, NORMALIZATION_LAYERS) and not config.train_normalization:
            layer.trainable = False
    levels = weighted_levels(model)
    body_levels = len(levels) - sum(1 for lv in levels if lv[0].name in new_layers)
    if not 0 <= config.frozen_levels <= body_levels:
        raise ValueError(
            f"`frozen_levels` must be between 0 and {body_levels} (the body's "
            f"levels). Received: {config.frozen_levels}"
        )
    frozen = freeze_bottom_levels(model, config.frozen_levels) if config.frozen_levels else []
    if config.effective_method == "gradual":  # the body starts frozen; frozen_levels never thaw
        frozen = freeze_bottom_levels(model, body_levels)
    return frozen, body_levels


def _compile(model, head, imported, data, config, verbose, resuming=False):
    """The training model (a `BPAModel` around `model` with BPA) compiled with the method's
    optimizer map; with `learning_rate="find"` the range test sets the rate. Returns (training
    model, the rate found or None)."""
    method, find = config.effective_method, config.learning_rate == "find"
    optimizer = transfer_optimizer(
        method,
        model,
        head,
        imported,
        config.effective_learning_rate,  # with "find": the default until the test
        config.effective_imported_rate,
        config.groups,
    )
    if model.dtype_policy.name == "mixed_float16":  # loss scaling, for BPAModel's compile too
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    train_model = model
    if method == "bpa" or config.bpa:
        from kerastransfer.methods.bpa import BPAModel

        train_model = BPAModel(model, gamma=config.gamma)
    train_model.compile(optimizer, LOSS, metrics=["accuracy"])
    if not find or resuming:
        return train_model, None
    # the range test on the warmed-up model; every group keeps its ratio to the top
    from kerastransfer.callbacks.lr_finder import find_learning_rate

    finder = find_learning_rate(train_model, data.train, min_lr=1e-7, max_lr=1e-1, steps=100)
    train_model.optimizer.learning_rate = finder.suggestion()
    found = _learning_rate(train_model)  # as the optimizer holds it (float32)
    if verbose:
        print(
            f"LR finder: suggested learning rate {found:.3g} "
            f"(sweep {finder.learning_rates[0]:.1e}..{finder.learning_rates[-1]:.1e})"
        )
    return train_model, found


def _learning_rate(model):
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _callbacks(data, config, body_levels, backup_dir, log_dir, verbose):
    """Epoch seeding, Gamma refresh (BPA), unfreezing (gradual), rate logging, early stopping
    and TensorBoard, in that order (`BackupAndRestore` comes last, after the caller's)."""
    steps = [EpochSeeding()]
    if config.effective_method == "bpa" or config.bpa:
        from kerastransfer.methods.bpa import GammaRefresh

        steps.append(GammaRefresh(data, max_batches=2))  # reads only its sample
    if config.effective_method == "gradual":  # before BackupAndRestore: a resume unfreezes
        steps.append(
            GradualUnfreezing(
                every=config.every,
                max_levels=body_levels - config.frozen_levels,
                verbose=int(verbose > 0),
                backup_dir=backup_dir,
            )
        )
    steps.append(LearningRateLogger())  # History; TensorBoard writes the rates itself
    steps.append(
        keras.callbacks.EarlyStopping(
            "val_loss", patience=config.patience, restore_best_weights=True
        )
    )
    if log_dir:
        steps.append(keras.callbacks.TensorBoard(log_dir))
    return steps


def _accuracies(model, data, evaluate_train):
    model.compile(loss=LOSS, metrics=["accuracy"])

    def accuracy(dataset):
        return float(model.evaluate(dataset, verbose=0, return_dict=True)["accuracy"])

    return {
        "train_accuracy": accuracy(data.dataset("train")) if evaluate_train else math.nan,
        "val_accuracy": accuracy(data.validation),
        "test_accuracy": accuracy(data.test),
    }
