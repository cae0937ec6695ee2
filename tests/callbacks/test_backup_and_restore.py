"""`kerastransfer.callbacks.BackupAndRestore` and `EpochSeeding`: a run killed at any point and
resumed gives the uninterrupted run's weights; a backup cut short by a kill is detected."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from kerastransfer.callbacks import BackupAndRestore, EpochSeeding
from kerastransfer.callbacks.backup_and_restore import backed_up_epochs, checkpoints
from kerastransfer.data import load_dataset

EPOCHS = 4


class Killed(Exception):
    pass


class _Kill(keras.callbacks.Callback):
    """Stops the run at `(epoch, batch)` (batch None: after the epoch's backup)."""

    def __init__(self, epoch, batch=None):
        super().__init__()
        self.epoch, self.batch = epoch, batch

    def on_train_batch_end(self, batch, logs=None):
        if self.batch is not None and self._epoch == self.epoch and batch == self.batch:
            raise Killed

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):  # runs after BackupAndRestore (listed first)
        if self.batch is None and epoch == self.epoch:
            raise Killed


def _run(folder, kill=None, *, stop=None, augment="digits", epochs=EPOCHS):
    """A fresh run (as a new process would start it): seeded model with dropout, shuffled and
    augmented data read once before `fit` (as a range test would), early stopping tracked."""
    keras.utils.set_random_seed(1)
    data = load_dataset(
        "embedded:mnist", samples_per_class=6, batch_size=16, augment=augment, seed=3
    )
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, strides=2),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    next(iter(data.train))  # a read before fit must not shift the epochs' order
    stop = stop or keras.callbacks.EarlyStopping("val_loss", patience=10, restore_best_weights=True)
    backup = BackupAndRestore(folder, track=[stop], delete_checkpoint=False)
    callbacks = [EpochSeeding(), stop, backup] + ([kill] if kill else [])
    history = model.fit(
        data.train,
        validation_data=data.validation,
        epochs=epochs,
        callbacks=callbacks,
        verbose=0,
        shuffle=False,
    )
    return model, history


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    model, history = _run(str(tmp_path_factory.mktemp("whole")))
    return model.get_weights(), history.history


@pytest.mark.parametrize("epoch,batch", [(1, None), (2, 1), (0, 0)])
def test_a_run_killed_and_resumed_ends_with_the_uninterrupted_weights(
    uninterrupted, tmp_path, epoch, batch
):
    with pytest.raises(Killed):
        _run(str(tmp_path), _Kill(epoch, batch))
    assert backed_up_epochs(str(tmp_path)) == (epoch + 1 if batch is None else epoch)
    model, history = _run(str(tmp_path))
    weights, logs = uninterrupted
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)
    assert history.history == logs  # the finished epochs' History comes back too


def test_epoch_order_does_not_depend_on_earlier_reads():
    data = load_dataset("embedded:mnist", samples_per_class=3, batch_size=8, augment="digits")
    train = data.train

    def epoch_batches(reads_before):
        for _ in range(reads_before):
            list(train)
        EpochSeeding().on_epoch_begin(2)
        return [(x.numpy(), y.numpy()) for x, y in train]

    first, second = epoch_batches(0), epoch_batches(3)
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(x1, x2)  # augmentation included
    EpochSeeding().on_epoch_begin(3)
    other = np.concatenate([y for _, y in train])
    assert not np.array_equal(other, np.concatenate([y for _, y in first]))  # a new order
    assert sorted(other) == sorted(np.concatenate([y for _, y in first]))


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def test_a_backup_cut_short_is_reported_and_the_previous_one_resumed(uninterrupted, tmp_path):
    with pytest.raises(Killed):
        _run(str(tmp_path), _Kill(2))
    assert [e for e, _ in checkpoints(str(tmp_path))] == [3, 2]  # the two newest are kept
    _truncate(os.path.join(str(tmp_path), "epoch-000003", "model.weights.h5"))
    assert backed_up_epochs(str(tmp_path)) == 2
    with pytest.warns(UserWarning, match=r"epoch-000003 is unreadable.*resuming from .*epoch 2"):
        model, _ = _run(str(tmp_path))
    for got, want in zip(model.get_weights(), uninterrupted[0]):
        np.testing.assert_array_equal(got, want)


def test_no_readable_backup_stops_with_the_path_and_the_fix(tmp_path):
    with pytest.raises(Killed):
        _run(str(tmp_path), _Kill(0))
    state = os.path.join(str(tmp_path), "epoch-000001", "state.json")
    with open(state, "w") as f:
        f.write('{"epoch": ')  # cut short
    with pytest.raises(ValueError, match=r"No readable backup in .*epoch-000001.*Delete"):
        _run(str(tmp_path))


def test_a_kill_while_saving_leaves_the_previous_backup_whole(tmp_path, monkeypatch):
    with pytest.raises(Killed):
        _run(str(tmp_path), _Kill(0))

    def dies(self, path, *a, **k):  # the weights file is half written when the kill comes
        with open(path, "wb") as f:
            f.write(b"\x89HDF\r\n")
        raise Killed

    monkeypatch.setattr(keras.Model, "save_weights", dies)
    with pytest.raises(Killed):
        _run(str(tmp_path))
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["epoch-000001", "epoch-000002.partial"]
    assert backed_up_epochs(str(tmp_path)) == 1
    _run(str(tmp_path))  # resumes from epoch 1 and replaces the partial folder
    assert [e for e, _ in checkpoints(str(tmp_path))] == [EPOCHS, EPOCHS - 1]
    assert not any(n.endswith(".partial") for n in os.listdir(tmp_path))


def test_a_run_early_stopping_ended_stays_ended(tmp_path):
    def stopper():  # stops after epoch 2: "loss" never improves by 1e9
        return keras.callbacks.EarlyStopping("loss", patience=1, min_delta=1e9)

    model, history = _run(str(tmp_path / "whole"), stop=stopper())
    assert len(history.epoch) == 2
    with pytest.raises(Killed):
        _run(str(tmp_path / "cut"), _Kill(1), stop=stopper())  # killed after the stop's epoch
    resumed, history_resumed = _run(str(tmp_path / "cut"), stop=stopper())
    assert history_resumed.epoch == [0, 1]
    for got, want in zip(resumed.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_finished_run_removes_only_its_backups(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=2, verbose=0,
              callbacks=[BackupAndRestore(str(tmp_path))])  # fmt: skip
    assert os.listdir(tmp_path) == ["notes.txt"]
    assert model._initial_epoch is None  # a later fit is not moved


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="`keep` must be an integer of at least 1"):
        BackupAndRestore("x", keep=0)
    with pytest.raises(ValueError, match="`track` must be a `keras.callbacks.EarlyStopping`"):
        BackupAndRestore("x", track=[object()])
    with pytest.raises(ValueError, match="`backup_dir` must be a folder path"):
        BackupAndRestore("")


_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import keras
    sys.path.insert(0, {tests!r})
    from callbacks.test_backup_and_restore import _run

    class Sigkill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 2 and batch == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    kill = Sigkill() if sys.argv[2] == "kill" else None
    model, _ = _run(sys.argv[1], kill)
    model.save_weights(os.path.join(sys.argv[1], "final.weights.h5"))
    """
)


def test_a_process_killed_mid_epoch_resumes_in_a_new_process_exactly(uninterrupted, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT.format(tests=os.path.dirname(os.path.dirname(__file__))))
    folder = str(tmp_path / "backup")

    def run(mode):
        return subprocess.run([sys.executable, str(script), folder, mode], capture_output=True)

    assert run("kill").returncode == -signal.SIGKILL
    assert backed_up_epochs(folder) == 2
    done = run("resume")
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    model, _ = _run(str(tmp_path / "unused"), epochs=0)
    model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(folder, "final.weights.h5"))
    for got, want in zip(model.get_weights(), uninterrupted[0]):
        np.testing.assert_array_equal(got, want)
    state = json.loads((tmp_path / "backup" / "epoch-000004" / "state.json").read_text())
    assert state["epoch"] == EPOCHS and not state["stopped"]
