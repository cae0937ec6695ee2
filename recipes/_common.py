"""What the recipes share: flags, seeding, datasets by name, resumable fits, cached runs, tables.

Every recipe takes the same common flags with one meaning:

    --seeds N            run N seeds (0..N-1) and report mean +- sd
    --epochs N           epochs of the recipe's main training runs
    --data-root DIR      folder of .npz files (e.g. ../shared/data) instead of the embedded samples
    --backup-dir DIR     make every fit resumable (BackupAndRestore) and keep finished runs there,
                         so a re-run after a kill does not redo finished work and prints the
                         table of the uninterrupted run
    --export             write the final model as a SavedModel into saved_models/
    --verbose N          Keras progress (0 silent, 1 bars, 2 one line per epoch)
    --nondeterministic   allow non-deterministic TensorFlow ops (faster; tables may then vary)

TensorFlow's benign native lines (start-up, the CUDA probe, a tf.data rewrite note) are hidden as
for the `kerastransfer` command (`_quiet.py`); `TF_CPP_MIN_LOG_LEVEL=0` shows them. Every recipe
imports this module before keras.
"""

import argparse
import hashlib
import json
import os
import pathlib
import sys

import _quiet  # noqa: F401  (first: before anything imports TensorFlow)
import keras
import numpy as np
import tensorflow as tf

from kerastransfer.callbacks import BackupAndRestore, EpochSeeding
from kerastransfer.data import load_dataset
from kerastransfer.fine_tuning.command_line import positive_int

REPO = pathlib.Path(__file__).resolve().parents[1]
SAVED_MODELS = REPO / "saved_models"
# Offline names a recipe accepts for the digit and clothing sets, and their files in --data-root.
SHARED_FILES = {
    "mnist": "mnist_small.npz",
    "usps": "usps.npz",
    "fashion_mnist": "fashion_mnist_small.npz",
}


def run_recipe(main, *args):
    """Runs a recipe's `main` as a command: bad input (a missing file, an unknown dataset, a
    broken cache) exits with status 2 and one line on stderr, as the `kerastransfer` command."""
    from kerastransfer.cli import USER_ERRORS, one_line

    try:
        main(*args)
    except USER_ERRORS as e:
        print(f"{pathlib.Path(sys.argv[0]).name}: error: {one_line(e)}", file=sys.stderr)
        raise SystemExit(2) from None


def add_common_flags(parser, *, seeds=1, epochs=None, verbose=0):
    """Adds the flags every recipe shares (see the module docstring) to an argparse parser."""
    group = parser.add_argument_group("common")
    group.add_argument("--seeds", type=positive_int, default=seeds, help="seeds 0..N-1")
    if epochs is not None:
        group.add_argument("--epochs", type=positive_int, default=epochs, help="training epochs")
    group.add_argument(
        "--data-root", default=None, help="folder of .npz files used instead of embedded samples"
    )
    group.add_argument(
        "--backup-dir", default=None, help="resume fits and keep finished runs in this folder"
    )
    group.add_argument("--export", action="store_true", help="SavedModel into saved_models/")
    group.add_argument("--saved-models", default=str(SAVED_MODELS), help="where exports go")
    group.add_argument("--verbose", type=int, default=verbose, help="Keras progress: 0, 1 or 2")
    group.add_argument(
        "--nondeterministic", action="store_true", help="allow non-deterministic ops (faster)"
    )
    return parser


_deterministic = False


def set_seeds(seed, *, deterministic=True):
    """Seeds Python, NumPy, TensorFlow and Keras, and (by default) makes TensorFlow ops
    deterministic, so the same command prints the same table.

    Op determinism, once on, stays on for the process (TensorFlow cannot turn it off).
    """
    global _deterministic
    keras.utils.set_random_seed(int(seed))
    if deterministic and not _deterministic:
        tf.config.experimental.enable_op_determinism()
        _deterministic = True


def dataset_source(name, data_root=None):
    """What `load_dataset` takes for a recipe's dataset name.

    `mnist`, `usps` and `fashion_mnist` are the embedded samples, or their `.npz` files in
    `data_root`; anything else (an `.npz` path, an image folder, a tensorflow-datasets name) is
    passed through unchanged.
    """
    if name in SHARED_FILES:
        return os.path.join(data_root, SHARED_FILES[name]) if data_root else f"embedded:{name}"
    return name


def load(name, args, **kwargs):
    """`load_dataset` of a recipe's dataset name, honouring `--data-root`."""
    return load_dataset(dataset_source(name, getattr(args, "data_root", None)), **kwargs)


def tag(*parts):
    """A name safe for Keras models and file names, from dataset names and paths.

    >>> tag("/data/cifar10.npz", "embedded:usps", (28, 28, 1))
    'cifar10_usps_28x28x1'
    """
    out = []
    for part in parts:
        if isinstance(part, (tuple, list)):
            part = "x".join(str(p) for p in part)
        part = str(part)
        if os.sep in part or part.endswith(".npz"):
            part = pathlib.Path(part).stem
        part = part.split(":")[-1]
        out.append("".join(c if c.isalnum() or c in "-_." else "_" for c in part))
    return "_".join(out)


def atomic_save(model, path):
    """Saves a `.keras` file so that a kill never leaves a half-written one."""
    path = str(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


def fit(model, data, *, epochs, backup_dir=None, name="fit", callbacks=(), verbose=0, **kwargs):
    """`model.fit` on a `TransferData` (validation included), or on a `(train, validation)` pair
    of batched datasets; epoch e reads epoch e's batches (`EpochSeeding`), and with `backup_dir`
    a killed fit resumes to the uninterrupted result (`BackupAndRestore`, early stopping's state
    included)."""
    train, validation = data if isinstance(data, tuple) else (data.train, data.validation)
    callbacks = [EpochSeeding(), *callbacks]
    if backup_dir:
        stops = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
        callbacks.append(BackupAndRestore(os.path.join(backup_dir, name), track=stops))
    return model.fit(
        train,
        validation_data=validation,
        epochs=epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the training batches reshuffle every epoch, seeded
        **kwargs,
    )


def primary_path(saved_models, recipe, name_tag, **settings):
    """Where `recipe` caches a primary network: `<saved_models>/primary/<recipe>_<tag>_<digest>`,
    the digest hashing `settings` (every choice that shapes the network: epochs, batch size,
    data...), so two recipes, or two settings of one, never load each other's network."""
    text = json.dumps(settings, sort_keys=True, default=str)
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return os.path.join(saved_models, "primary", f"{recipe}_{name_tag}_{digest}.keras")


def train_or_load_primary(
    build,
    data,
    path,
    *,
    epochs=4,
    seed=0,
    learning_rate=1e-3,
    callbacks=(),
    backup_dir=None,
    verbose=0,
    retrain=False,
):
    """The primary (task A) network: loaded from `path` when cached there, else trained (seeded,
    resumable with `backup_dir`) and saved atomically.

    Returns:
        (model, cached): the compiled model and whether it came from the cache.
    """
    if os.path.exists(path) and not retrain:
        try:
            return keras.models.load_model(path), True
        except Exception as e:  # noqa: BLE001 - saved atomically: only a disk error breaks it
            raise ValueError(
                f"The cached primary network {path} is unreadable ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:200]}). Delete it to train it again."
            ) from None
    keras.utils.set_random_seed(int(seed))  # determinism, if asked, is already on (set_seeds)
    model = build(data.info.num_classes)
    model.compile(
        keras.optimizers.Adam(learning_rate),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    fit(
        model,
        data,
        epochs=epochs,
        backup_dir=backup_dir,
        name=f"primary_{pathlib.Path(path).stem}",
        callbacks=callbacks,
        verbose=verbose,
    )
    atomic_save(model, path)
    return model, False


class RunCache:
    """Finished runs of a recipe, kept as JSON in `--backup-dir`, so that a re-run after a kill
    skips them and prints the same table. Without a folder nothing is kept.

    `cache.get(key, compute)` returns the stored result of `key` (any JSON-able value) or runs
    `compute()` and stores what it returns, atomically.
    """

    def __init__(self, folder, recipe, args=None):
        self.folder = pathlib.Path(folder) / recipe if folder else None
        # Runs of different settings do not mix: the file name hashes the recipe's flags.
        settings = {
            k: v
            for k, v in sorted(vars(args or argparse.Namespace()).items())
            if k not in ("backup_dir", "verbose", "export", "saved_models", "seeds")
        }
        digest = hashlib.sha1(json.dumps(settings, default=str).encode()).hexdigest()[:10]
        self.path = self.folder / f"runs_{digest}.json" if self.folder else None
        self.runs = {}
        if self.path and self.path.exists():
            try:
                self.runs = json.loads(self.path.read_text())
            except ValueError as e:  # written atomically: only a disk error cuts it
                raise ValueError(
                    f"The finished runs in {self.path} are unreadable ({e}). Delete the file "
                    "to run them again."
                ) from None

    def get(self, key, compute):
        if key in self.runs:
            return self.runs[key]
        value = compute()
        if self.path is not None:
            self.runs[key] = value
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.runs, indent=1, default=float))
            os.replace(tmp, self.path)
        return value


def mean_sd(values, scale=1.0, digits=2):
    """`"mean +- sd"` of a list of numbers (population sd; a single value has sd 0)."""
    values = np.asarray(values, dtype=float) * scale
    return f"{values.mean():.{digits}f} +- {values.std():.{digits}f}"


def print_table(rows, columns, title=None):
    """Prints a Markdown table: `rows` are dicts, `columns` the keys (and headers) to show."""
    if title:
        print(f"\n{title}")
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |")
