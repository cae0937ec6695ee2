"""`search`: run `TransferHyperModel` with keras-tuner; `kerastransfer tune` calls it.

Random search (`keras_tuner`'s random-search oracle; its first trial is the defaults, i.e.
`kerastransfer fit`'s configuration) with the validation accuracy as objective. The
results folder (`directory`) holds the oracle's state and every finished trial's weights: a
search killed half way resumes from it and does not repeat finished trials (keras-tuner reloads
them; a trial that was running when the process died runs again). The best configuration is
printed as the `kerastransfer fit` command that reproduces it, and the best model can be
exported. The resident memory (RSS) after each trial is recorded: a search must not grow from
trial to trial (`keras.backend.clear_session()` runs before every build).
"""

import os
import time

import keras
import keras_tuner

from kerastransfer.tuning.transfer_hypermodel import TransferHyperModel, effective_values
from kerastransfer.tuning.trial_memory import TrialMemory, live_graphs


def _rss_mb():
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class DefaultsFirstOracle(keras_tuner.oracles.RandomSearchOracle):
    """Random search whose first trial is the defaults (`kerastransfer fit`'s configuration), so
    the search never reports a configuration worse than the default one on its own budget."""

    def populate_space(self, trial_id):
        if not self.trials:
            values = {p.name: p.default for p in self.get_space().space}
            if values:
                return {"status": "RUNNING", "values": values}
        return super().populate_space(trial_id)


class TransferSearch(keras_tuner.Tuner):
    """A random search (defaults first) whose trial is `TransferHyperModel.build` + `.fit`
    (warm-up and method) from `seed`, saving the trained weights as the trial's checkpoint and
    recording RSS and live graphs after each trial (`rss_mb`, `graphs`)."""

    def __init__(self, hypermodel, *, max_trials=10, seed=0, **kwargs):
        oracle = DefaultsFirstOracle(
            objective=keras_tuner.Objective("val_accuracy", "max"),
            max_trials=max_trials,
            seed=seed,
        )
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.seed = seed
        self.rss_mb = []
        self.graphs = []
        self.trial_seconds = []

    def run_trial(self, trial, *args, **kwargs):
        start = time.perf_counter()
        hp = trial.hyperparameters
        try:
            with TrialMemory():
                keras.utils.set_random_seed(self.seed)  # as `kerastransfer fit --seed` does
                model = self._try_build(hp)
                metrics = self.hypermodel.fit(hp, model)
                model.save_weights(self._get_checkpoint_fname(trial.trial_id))
                del model
        finally:  # a failed trial is timed too (keras-tuner records it as failed)
            self.trial_seconds.append(time.perf_counter() - start)
        return metrics

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.rss_mb.append(_rss_mb())
        self.graphs.append(live_graphs())
        if self.verbose_trials:
            score = trial.score if trial.score is not None else float("nan")
            has_test = trial.metrics.exists("test_accuracy")
            test = trial.metrics.get_last_value("test_accuracy") if has_test else float("nan")
            print(
                f"trial {len(self.rss_mb)} ({trial.trial_id}): val_accuracy {score:.4f}  "
                f"test_accuracy {test:.4f}  {self.trial_seconds[-1]:.0f} s  "
                f"RSS {self.rss_mb[-1]:.0f} MB",
                flush=True,
            )

    verbose_trials = True


def fit_command(source, data, values, *, epochs, seed=0, **options):
    """The `kerastransfer fit` command line that trains `values` (a tuner's best values).

    `options` are other `fine_tune` arguments of the search (`warmup_epochs`, `batch_size`,
    `samples_per_class`, `validation_split`, `image_size`); those left at `fit`'s defaults are
    not printed."""
    values = effective_values(values)
    parts = ["kerastransfer", "fit", str(source), str(data), "--method", values["method"]]
    parts += ["--frozen-levels", str(values["frozen_levels"])]
    parts += ["--imported-rate", f"{values['imported_rate']:g}"]
    parts += ["--head-width", str(values["head_width"]), "--dropout", f"{values['dropout']:g}"]
    parts += ["--learning-rate", repr(float(values["learning_rate"])), "--epochs", str(epochs)]
    if values["bpa"]:
        parts.append("--bpa")
    if values["bpa"] or values["method"] == "bpa":
        parts += ["--gamma", values["gamma"]]
    for name, value in options.items():
        if name not in _FIT_DEFAULTS:
            raise TypeError(f"fit_command() got an unexpected keyword argument '{name}'")
        if value is not None and value != _FIT_DEFAULTS[name]:
            parts += [
                "--" + name.replace("_", "-"),
                f"{value:g}" if isinstance(value, float) else str(value),
            ]
    parts += ["--seed", str(seed)]
    return " ".join(parts)


_FIT_DEFAULTS = {  # `kerastransfer fit`'s (and `fine_tune`'s)
    "warmup_epochs": 200,
    "batch_size": 32,
    "samples_per_class": None,
    "validation_split": 0.1,
    "image_size": None,
}


def search(
    data="embedded:fashion_mnist",
    *,
    source="MobileNetV2",
    trials=10,
    directory="tune_results",
    project_name=None,
    epochs=10,
    warmup_epochs=200,
    samples_per_class=50,
    validation_split=0.1,
    image_size=None,
    batch_size=32,
    export=None,
    export_formats=("saved_model",),
    seed=0,
    verbose=1,
):
    """Search transfer choices for `source` on `data`; return `(tuner, best_values, command)`.

    Args:
        data: anything `load_dataset` takes (default: the embedded Fashion-MNIST sample).
        source: a `keras.applications` name, a `.keras` file or a model.
        trials: the trial budget (`max_trials`).
        directory: results folder; rerunning with the same folder resumes the search.
        epochs: fine-tuning epochs per trial (early stopping may end it sooner).
        export: write the best model's serving export here.
    """
    from kerastransfer.data import load_dataset
    from kerastransfer.fine_tuning import application_builder

    keras.utils.set_random_seed(seed)
    data_obj = load_dataset(
        data,
        validation_split=validation_split,
        samples_per_class=samples_per_class,
        batch_size=batch_size,
        seed=seed,
    )
    if application_builder(source) if isinstance(source, str) else False:
        size = int(image_size or 96)
        data_obj.image_shape = (size, size, data_obj.info.image_shape[-1])
    else:
        from kerastransfer.surgery import load_source

        source_model = load_source(source)
        data_obj.image_shape = tuple(source_model.input_shape[1:])
    hypermodel = TransferHyperModel(
        source, data_obj, epochs=epochs, warmup_epochs=warmup_epochs, batch_size=batch_size
    )
    name = project_name or f"{os.path.basename(str(source))}_{str(data).replace(':', '_')}"
    tuner = TransferSearch(
        hypermodel,
        max_trials=trials,
        directory=directory,
        project_name=name,
        seed=seed,
        overwrite=False,
    )
    tuner.verbose_trials = bool(verbose)
    tuner.search(verbose=0)
    best = tuner.get_best_hyperparameters(1)[0].values
    command = fit_command(
        source,
        data,
        best,
        epochs=epochs,
        seed=seed,
        warmup_epochs=warmup_epochs,
        batch_size=batch_size,
        samples_per_class=samples_per_class,
        validation_split=validation_split,
        image_size=image_size,
    )
    if verbose:
        best_trial = tuner.oracle.get_best_trials(1)[0]
        print(f"best trial {best_trial.trial_id}: val_accuracy {best_trial.score:.4f}")
        print(f"reproduce: {command}")
        if tuner.rss_mb:
            print(
                f"RSS after trial 1: {tuner.rss_mb[0]:.0f} MB, after trial "
                f"{len(tuner.rss_mb)}: {tuner.rss_mb[-1]:.0f} MB (this process)"
            )
    if export:
        from kerastransfer.export import export_serving

        model = tuner.get_best_models(1)[0]
        path = export_serving(
            model,
            export,
            raw_shape=data_obj.info.image_shape,
            formats=export_formats,
            class_names=data_obj.info.class_names,
        )
        if verbose:
            print(f"exported the best model to {path}")
    return tuner, best, command
