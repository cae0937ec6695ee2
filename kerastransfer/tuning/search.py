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

from kerastransfer.tuning.transfer_hypermodel import TransferHyperModel


def _rss_mb():
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _release_memory():
    """Collect garbage and hand freed heap pages back to the OS (glibc `malloc_trim`), so RSS
    measures what the process still holds rather than allocator caching."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


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
    (warm-up and method), saving the trained weights as the trial's checkpoint and recording
    RSS after each trial."""

    def __init__(self, hypermodel, *, max_trials=10, seed=None, **kwargs):
        oracle = DefaultsFirstOracle(
            objective=keras_tuner.Objective("val_accuracy", "max"),
            max_trials=max_trials,
            seed=seed,
        )
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.rss_mb = []
        self.trial_seconds = []

    def run_trial(self, trial, *args, **kwargs):
        start = time.perf_counter()
        hp = trial.hyperparameters
        model = self._try_build(hp)
        metrics = self.hypermodel.fit(hp, model)
        model.save_weights(self._get_checkpoint_fname(trial.trial_id))
        self.trial_seconds.append(time.perf_counter() - start)
        return metrics

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        keras.backend.clear_session()
        _release_memory()
        self.rss_mb.append(_rss_mb())
        if self.verbose_trials:
            score = trial.score if trial.score is not None else float("nan")
            print(
                f"trial {len(self.rss_mb)} ({trial.trial_id}): val_accuracy {score:.4f}  "
                f"RSS {self.rss_mb[-1]:.0f} MB",
                flush=True,
            )

    verbose_trials = True


def fit_command(source, data, values, *, epochs, samples_per_class=None, image_size=None, seed=0):
    """The `kerastransfer fit` command line that trains `values` (a tuner's best values)."""
    parts = [
        "kerastransfer",
        "fit",
        str(source),
        str(data),
        "--method",
        values["method"],
        "--frozen-levels",
        str(values["frozen_levels"]),
        "--imported-rate",
        f"{values['imported_rate']:g}",
        "--head-width",
        str(values["head_width"]),
        "--dropout",
        f"{values['dropout']:g}",
        "--learning-rate",
        f"{values['learning_rate']:.3g}",
        "--epochs",
        str(epochs),
    ]
    bpa = bool(values.get("bpa")) and values["method"] not in ("bpa", "gradual")
    if bpa:
        parts.append("--bpa")
    if bpa or values["method"] == "bpa":
        parts += ["--gamma", values["gamma"]]
    if samples_per_class:
        parts += ["--samples-per-class", str(samples_per_class)]
    if image_size:
        parts += ["--image-size", str(image_size)]
    parts += ["--seed", str(seed)]
    return " ".join(parts)


def search(
    data="embedded:fashion_mnist",
    *,
    source="MobileNetV2",
    trials=10,
    directory="tune_results",
    project_name=None,
    epochs=3,
    warmup_epochs=100,
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
    from kerastransfer.fine_tune import application_builder

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
        samples_per_class=samples_per_class,
        image_size=image_size,
        seed=seed,
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
