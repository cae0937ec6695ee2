"""`BackupAndRestore`: `fit` resumed after a kill as if it had never stopped."""

import json
import os
import re
import shutil
import warnings

import keras
import numpy as np

from kerastransfer._internals import set_initial_epoch
from kerastransfer.data.epoch_order import set_epoch

_CHECKPOINT = re.compile(r"epoch-(\d{6})")
WEIGHTS = "model.weights.h5"
STATE = "state.json"
TRACKED_ARRAYS = "tracked.npz"
_EARLY_STOPPING = ("wait", "stopped_epoch", "best", "best_epoch")


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up training at the end of every epoch and resumes an interrupted `fit` from the
    last good backup, giving the weights an uninterrupted run gives (same machine and software).

    What `keras.callbacks.BackupAndRestore` does, and:

    - **A kill cannot break a backup.** Epoch e's backup is written into `epoch-00000e.partial`
      and renamed to `epoch-00000e` once complete; the `keep` newest complete backups stay
      (default 2), so the previous one is there until the new one is whole.
    - **A broken backup is reported, not fatal.** An unreadable backup (a disk error, a file cut
      short) is named in a warning and the run resumes from the newest readable one; when none
      is readable, `fit` stops at once with a `ValueError` naming the file and the way out.
    - **The resumed epochs are the same epochs.** At the start of each epoch the input order and
      augmentation of kerastransfer pipelines are set to that epoch's (as `EpochSeeding` does);
      the History of the finished epochs comes back, and so does the state of the callbacks in
      `track`: `keras.callbacks.EarlyStopping` (its patience count, best value and best
      weights) and any object with `get_state()` (JSON-able) and `set_state(state)`. A run that
      early stopping ended stays ended.

    The backup holds the weights file (the model's variables, BPA's Gamma among them, and the
    optimizer's: iterations, moments, learning rates) and the seed states of the random layers
    (dropout), which the weights file leaves out. Put this callback
    last in `callbacks`, after the ones it tracks, so that it saves what they did in the epoch.

    Args:
        backup_dir: folder of the backups (created; it may hold other files, which are left).
        track: callbacks whose state is backed up and restored with the weights.
        keep: how many complete backups to keep (at least 1).
        delete_checkpoint: remove the backups when `fit` ends normally.

    Example:

    >>> import tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> x, y = np.ones((8, 2)), np.ones((8, 1))
    >>> folder = tempfile.mkdtemp()
    >>> stop = keras.callbacks.EarlyStopping("loss", patience=2)
    >>> backup = BackupAndRestore(folder, track=[stop], delete_checkpoint=False)
    >>> _ = model.fit(x, y, epochs=2, callbacks=[stop, backup], verbose=0)
    >>> sorted(os.listdir(folder))
    ['epoch-000001', 'epoch-000002']
    >>> history = model.fit(x, y, epochs=3, callbacks=[stop, backup], verbose=0)
    >>> history.epoch  # epochs 0 and 1 come from the backup
    [0, 1, 2]
    """

    def __init__(self, backup_dir, *, track=(), keep=2, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError(f"`backup_dir` must be a folder path. Received: {backup_dir!r}")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"`keep` must be an integer of at least 1. Received: {keep!r}")
        for item in track:
            if not isinstance(item, keras.callbacks.EarlyStopping) and not (
                hasattr(item, "get_state") and hasattr(item, "set_state")
            ):
                raise ValueError(
                    "Each of `track` must be a `keras.callbacks.EarlyStopping` or have "
                    f"`get_state()` and `set_state(state)`. Received: {item!r}"
                )
        self.backup_dir = os.fspath(backup_dir)
        self.track = list(track)
        self.keep = keep
        self.delete_checkpoint = delete_checkpoint
        self._restored = None  # (state, arrays) of the backup resumed from, until applied
        self._history = {"epoch": [], "logs": {}}

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError(
                "The model must be built before `fit` with `BackupAndRestore`: call it on a "
                f"batch, or build it with an input shape. Received: unbuilt {self.model.name}"
            )
        self._restored, self._history = None, {"epoch": [], "logs": {}}
        found = restore_latest(self.model, self.backup_dir)
        if found is None:
            return
        state, arrays = found
        self._history = state.get("history", self._history)
        if state.get("stopped"):  # early stopping had ended the run: nothing is left to train
            set_initial_epoch(self.model, self.params.get("epochs", state["epoch"]))
        else:
            set_initial_epoch(self.model, state["epoch"])
        self._restored = (state, arrays)
        self._apply_restored()  # again at the first epoch, after every callback's reset

    def on_epoch_begin(self, epoch, logs=None):
        set_epoch(epoch)
        if self._restored is not None:
            self._apply_restored()
            self._restore_history()

    def on_epoch_end(self, epoch, logs=None):
        self._history["epoch"].append(int(epoch))
        for key, value in (logs or {}).items():
            self._history["logs"].setdefault(key, []).append(float(value))
        self._save(epoch + 1)

    def on_train_end(self, logs=None):
        if self._restored is not None:  # a run early stopping had ended: no epoch ran
            self._restore_history()
        set_initial_epoch(self.model, None)  # a later fit starts where it is told to
        if self.delete_checkpoint:
            for name in os.listdir(self.backup_dir) if os.path.isdir(self.backup_dir) else ():
                if _CHECKPOINT.fullmatch(name.removesuffix(".partial")):
                    shutil.rmtree(os.path.join(self.backup_dir, name))
            if os.path.isdir(self.backup_dir) and not os.listdir(self.backup_dir):
                os.rmdir(self.backup_dir)

    def _save(self, epoch):
        final = os.path.join(self.backup_dir, f"epoch-{epoch:06d}")
        partial = final + ".partial"
        os.makedirs(self.backup_dir, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)  # a kill's leftover
        os.makedirs(partial)
        self.model.save_weights(os.path.join(partial, WEIGHTS))
        states, arrays = self._tracked_states()
        arrays.update({f"seed_{i}": v.numpy() for i, v in enumerate(_seed_states(self.model))})
        np.savez(os.path.join(partial, TRACKED_ARRAYS), **arrays)
        state = {
            "epoch": epoch,
            "stopped": bool(self.model.stop_training),
            "tracked": states,
            "history": self._history,
        }
        with open(os.path.join(partial, STATE), "w") as f:
            json.dump(state, f)
        for name in (WEIGHTS, TRACKED_ARRAYS, STATE):
            _fsync(os.path.join(partial, name))
        shutil.rmtree(final, ignore_errors=True)  # an epoch redone after a broken backup
        os.replace(partial, final)
        _fsync(self.backup_dir)
        for old in checkpoints(self.backup_dir)[self.keep :]:
            shutil.rmtree(old[1], ignore_errors=True)

    def _tracked_states(self):
        states, arrays = [], {}
        for i, item in enumerate(self.track):
            if isinstance(item, keras.callbacks.EarlyStopping):
                state = {k: _plain(getattr(item, k, None)) for k in _EARLY_STOPPING}
                weights = item.best_weights
                state["best_weights"] = None if weights is None else len(weights)
                for j, w in enumerate(weights or ()):
                    arrays[f"{i}_{j}"] = np.asarray(w)
            else:
                state = item.get_state()
            states.append(state)
        return states, arrays

    def _apply_restored(self):
        state, arrays = self._restored
        if len(state["tracked"]) != len(self.track):
            raise ValueError(
                f"The backup in {self.backup_dir} tracks {len(state['tracked'])} callbacks; "
                f"this `fit` tracks {len(self.track)}. Pass the same `track`, or delete the "
                "folder to start over."
            )
        for i, (item, saved) in enumerate(zip(self.track, state["tracked"])):
            if isinstance(item, keras.callbacks.EarlyStopping):
                for key in _EARLY_STOPPING:
                    setattr(item, key, saved[key])
                count = saved["best_weights"]
                item.best_weights = (
                    None if count is None else [arrays[f"{i}_{j}"] for j in range(count)]
                )
            else:
                item.set_state(saved)

    def _restore_history(self):
        history = self.model.history
        if isinstance(history, keras.callbacks.History):
            history.epoch = list(self._history["epoch"])
            history.history = {k: list(v) for k, v in self._history["logs"].items()}
        self._restored = None

    def get_config(self):
        return {
            "backup_dir": self.backup_dir,
            "keep": self.keep,
            "delete_checkpoint": self.delete_checkpoint,
        }


def checkpoints(backup_dir):
    """The complete backups in `backup_dir`, newest first, as `(epochs finished, folder)`."""
    if not os.path.isdir(backup_dir):
        return []
    found = [(_CHECKPOINT.fullmatch(n), n) for n in os.listdir(backup_dir)]
    return sorted(
        ((int(m.group(1)), os.path.join(backup_dir, n)) for m, n in found if m), reverse=True
    )


def restore_latest(model, backup_dir):
    """Loads the newest readable backup of `backup_dir` into `model` (and its optimizer).

    Returns `(state, tracked arrays)`, or None when the folder holds no backup. An unreadable
    backup is skipped with a warning naming it; when every backup is unreadable a `ValueError`
    names the newest and the way out.
    """
    broken = []
    for epoch, folder in checkpoints(backup_dir):
        try:
            with open(os.path.join(folder, STATE)) as f:
                state = json.load(f)
            with np.load(os.path.join(folder, TRACKED_ARRAYS)) as npz:
                arrays = dict(npz)
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(os.path.join(folder, WEIGHTS))
            for i, v in enumerate(_seed_states(model)):  # the weights file leaves them out
                v.assign(arrays[f"seed_{i}"])
        except Exception as e:  # noqa: BLE001 - any failure to read makes the backup unusable
            broken.append((folder, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"))
            continue
        for path, reason in broken:
            warnings.warn(
                f"The backup {path} is unreadable ({reason}); resuming from {folder} "
                f"(epoch {epoch}), the newest readable one.",
                stacklevel=2,
            )
        return state, arrays
    if broken:
        path, reason = broken[0]
        raise ValueError(
            f"No readable backup in {backup_dir}: {path} is unreadable ({reason}). Delete "
            f"{backup_dir} to train from the start, or put a good copy of the backup there."
        )
    return None


def backed_up_epochs(backup_dir):
    """Epochs finished by the backup `BackupAndRestore` resumes from: the newest whose files
    open (0 when there is none)."""
    import h5py

    for epoch, folder in checkpoints(backup_dir):
        try:
            with open(os.path.join(folder, STATE)) as f:
                json.load(f)
            with h5py.File(os.path.join(folder, WEIGHTS), "r"):
                return epoch
        except Exception:  # noqa: BLE001 - restore_latest reports it
            continue
    return 0


def _seed_states(model):
    """The random layers' seed states (dropout, noise), in layer order: where the next random
    draw starts. (Their names count the generators made in the process: not a key.)"""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "numpy"):
        return np.asarray(value).item()
    return value


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
