import json
import os
import subprocess
import sys

import keras
import pytest

from kerastransfer.cli import build_parser
from kerastransfer.models import small_cnn

_SCRIPT = """
import os, signal, sys
from kerastransfer.tuning import search
from kerastransfer.tuning.transfer_hypermodel import TransferHyperModel

source, directory, log, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fit = TransferHyperModel.fit

def logged_fit(self, hp, model, *args, **kwargs):
    with open(log, "a") as f:
        f.write(repr(sorted(hp.values.items())) + "\\n")
    with open(log) as f:
        calls = len(f.readlines())
    if calls == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return fit(self, hp, model, *args, **kwargs)

TransferHyperModel.fit = logged_fit
tuner, best, command = search(
    "embedded:usps", source=source, trials=3, directory=directory, epochs=1, warmup_epochs=2,
    samples_per_class=3, verbose=1)
print("COMMAND", command)
print("RSS", len(tuner.rss_mb))
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("source") / "source.keras"
    small_cnn((28, 28, 1), 10, filters=(4, 6), dense=16).save(path)
    return str(path)


def _run(source, directory, log, kill_at):
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, source, str(directory), str(log), str(kill_at)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_killed_search_resumes_without_repeating_finished_trials(source, tmp_path):
    log = tmp_path / "fits.log"
    first = _run(source, tmp_path / "results", log, kill_at=2)
    assert first.returncode == -9, first.stderr[-2000:]  # killed during trial 2
    finished = log.read_text().splitlines()[0]
    # the first trial is `kerastransfer fit`'s default configuration
    assert "('method', 'discriminative')" in finished and "('learning_rate', 0.0001)" in finished
    second = _run(source, tmp_path / "results", log, kill_at=0)
    assert second.returncode == 0, second.stderr[-3000:]
    calls = log.read_text().splitlines()
    # run 2 ran the interrupted trial again and the third one, never the finished first trial
    assert len(calls) == 4 and finished not in calls[2:]
    trials = [
        d
        for d in os.listdir(tmp_path / "results" / os.listdir(tmp_path / "results")[0])
        if d.startswith("trial_")
    ]
    assert len(trials) == 3
    statuses = []
    for trial in trials:
        with open(
            tmp_path / "results" / os.listdir(tmp_path / "results")[0] / trial / "trial.json"
        ) as f:
            statuses.append(json.load(f)["status"])
    assert statuses.count("COMPLETED") == 3
    command = next(line for line in second.stdout.splitlines() if line.startswith("COMMAND"))
    argv = command.split()[2:]  # after "COMMAND kerastransfer"
    args = build_parser().parse_args(argv)  # the printed command is a valid `fit` command
    assert args.command == "fit" and args.source == source and args.epochs == 1


def test_trials_leave_nothing_behind_the_command_reproduces_and_the_best_is_exported(
    source, tmp_path, capsys, serve_in_fresh_process
):
    import numpy as np

    from kerastransfer.cli import main
    from kerastransfer.data import load_dataset
    from kerastransfer.tuning import fit_command, search

    tuner, best, command = search(
        "embedded:usps",
        source=source,
        trials=3,
        directory=str(tmp_path / "results"),
        epochs=1,
        warmup_epochs=2,
        samples_per_class=3,
        export=str(tmp_path / "best"),
        verbose=1,
    )
    # every trial's traced graphs are gone once it ends (they grew by 4 a trial before)
    assert tuner.graphs == [tuner.graphs[0]] * 3
    best_trial = tuner.oracle.get_best_trials(1)[0]
    # the export serves the best trial's model: its test accuracy, in a fresh process
    usps = load_dataset("embedded:usps", samples_per_class=3, seed=0)
    images = usps.take("test", range(usps.size("test")))[0].astype("uint8")  # raw, as served
    labels = usps.labels("test")
    served = serve_in_fresh_process(tmp_path / "best", images)
    test_accuracy = best_trial.metrics.get_last_value("test_accuracy")
    assert np.mean(served["label"] == labels) == pytest.approx(test_accuracy, abs=1e-6)
    # `kerastransfer fit ...` as printed, and the command of the last trial (never the first:
    # a trial must not depend on the trials before it)
    last = tuner.oracle.trials[max(tuner.oracle.trials)]
    options = dict(epochs=1, warmup_epochs=2, samples_per_class=3)
    last_command = fit_command(source, "embedded:usps", last.hyperparameters.values, **options)
    for trial, line in ((best_trial, command), (last, last_command)):
        capsys.readouterr()
        assert main(line.split()[1:]) == 0
        report = capsys.readouterr().out
        assert f"validation {100 * trial.score:.2f}%" in report, (line, report, trial.score)


def test_a_results_folder_with_a_broken_file_stops_with_its_path(source, tmp_path):
    from kerastransfer.tuning import search

    options = dict(source=source, trials=1, directory=str(tmp_path), epochs=1, verbose=0)
    options.update(warmup_epochs=1, samples_per_class=2)
    search("embedded:usps", **options)
    (project,) = os.listdir(tmp_path)
    assert not [n for n in os.listdir(tmp_path / project) if "partial" in n]  # renamed in place
    oracle = tmp_path / project / "oracle.json"
    oracle.write_text(oracle.read_text()[:20])  # cut short, as a disk error would
    with pytest.raises(ValueError, match=r"unreadable file: .*oracle\.json .*Delete"):
        search("embedded:usps", **options)
