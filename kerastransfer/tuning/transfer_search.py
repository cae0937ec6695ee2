"""`search`: run `TransferHyperModel` with keras-tuner; `kerastransfer tune` calls it.

Random search (`keras_tuner`'s random-search oracle; its first trial is the defaults, i.e.
`kerastransfer fit`'s configuration) with the validation accuracy as objective. The
results folder (`directory`) holds the oracle's state and every finished trial's weights: a
search killed half way resumes from it and does not repeat finished trials (keras-tuner reloads
them; a trial that was running when the process died runs again). Its state files and weights
are written to a temporary file and renamed into place, so a kill never leaves one cut short; a
results folder with an unreadable file stops the search with the file's path and the way out.
The best configuration is
printed as the `kerastransfer fit` command that reproduces it, and the best model can be
exported. The resident memory (RSS) after each trial is recorded: a search must not grow from
trial to trial (`keras.backend.clear_session()` runs before every build).
"""

import os
import time

import keras

from kerastransfer._extras import require
from kerastransfer._internals import tuner_checkpoint_path, write_tuner_state_atomically
from kerastransfer.fine_tuning import FineTuneConfig
from kerastransfer.fine_tuning.command_line import fit_command_line
from kerastransfer.fine_tuning.one_call import source_and_data
from kerastransfer.tuning.transfer_hypermodel import TransferHyperModel, effective_values
from kerastransfer.tuning.trial_memory import TrialMemory, live_graphs

keras_tuner = require("keras_tuner", "The transfer search (kerastransfer.tuning)")


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
        write_tuner_state_atomically()
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
                keras.backend.clear_session()  # as keras-tuner does before each build
                model = self.hypermodel.build(hp)
                metrics = self.hypermodel.fit(hp, model)
                # where `load_model` (`get_best_models`) reads the trained weights back
                path = tuner_checkpoint_path(self, trial.trial_id)
                partial = path.removesuffix(".weights.h5") + ".partial.weights.h5"
                model.save_weights(partial)
                os.replace(partial, path)
                del model
        finally:  # a failed trial is timed too (keras-tuner records it as failed)
            self.trial_seconds.append(time.perf_counter() - start)
        return metrics

    def reload(self):
        try:
            super().reload()
        except Exception as e:  # noqa: BLE001 - reported with the file that caused it
            broken = _unreadable_json(self.project_dir)
            if not broken:
                raise
            raise ValueError(
                f"The search's results folder holds an unreadable file: {broken} ({e}). Delete "
                f"{os.path.dirname(broken) if 'trial_' in broken else self.project_dir} to run "
                "that part again, or pass another `directory`."
            ) from None

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


def _unreadable_json(folder):
    import json

    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            if name.endswith(".json"):
                path = os.path.join(root, name)
                try:
                    with open(path) as f:
                        json.load(f)
                except ValueError:
                    return path
    return None


def fit_command(source, data, values, config=None, **choices):
    """The `kerastransfer fit` command line that trains `values` (a tuner's best values).

    `config` (a `FineTuneConfig`, or its fields as `choices`: `epochs`, `warmup_epochs`,
    `batch_size`, `samples_per_class`, `validation_split`, `image_size`, `seed`...) is the rest
    of the search's configuration; its fields left at `fit`'s defaults are not printed."""
    values = effective_values(values)
    searched = ["method", "frozen_levels", "imported_rate", "head_width", "dropout"]
    searched += ["learning_rate", "epochs"] + ["bpa"] * values["bpa"]
    if values["bpa"] or values["method"] == "bpa":
        searched.append("gamma")
    else:  # no BPA: its functional is not printed
        values["gamma"] = FineTuneConfig.gamma
    config = (config or FineTuneConfig()).replace(**choices).replace(**values)
    return fit_command_line(source, data, config, always=searched)


def search(
    data="embedded:fashion_mnist",
    *,
    source="MobileNetV2",
    trials=10,
    directory="tune_results",
    project_name=None,
    config=None,
    export=None,
    export_formats=("saved_model",),
    verbose=1,
    **choices,
):
    """Search transfer choices for `source` on `data`; return `(tuner, best_values, command)`.

    Args:
        data: anything `load_dataset` takes (default: the embedded Fashion-MNIST sample).
        source: a `keras.applications` name, a `.keras` file or a model.
        trials: the trial budget (`max_trials`).
        directory: results folder; rerunning with the same folder resumes the search.
        config: a `FineTuneConfig` for all a trial does not search: its budget (`epochs`,
            `patience`, `warmup_epochs`), the data (`samples_per_class`, `validation_split`,
            `batch_size`, `image_size`) and `seed`. Default: `fit`'s, with 50 images per class.
        **choices: fields of `FineTuneConfig` replacing `config`'s (`epochs=1`, ...).
        export: write the best model's serving export here.
    """
    config = (config or FineTuneConfig(samples_per_class=50)).replace(**choices)
    keras.utils.set_random_seed(config.seed)
    _, data_obj = source_and_data(source, data, config)
    hypermodel = TransferHyperModel(source, data_obj, config=config)
    name = project_name or f"{os.path.basename(str(source))}_{str(data).replace(':', '_')}"
    tuner = TransferSearch(
        hypermodel,
        max_trials=trials,
        directory=directory,
        project_name=name,
        seed=config.seed,
        overwrite=False,
    )
    tuner.verbose_trials = bool(verbose)
    tuner.search(verbose=0)
    best = tuner.get_best_hyperparameters(1)[0].values
    command = fit_command(source, data, best, config)
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
