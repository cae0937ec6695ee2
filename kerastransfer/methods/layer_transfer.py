"""Layer transfer: retain the bottom n levels of a trained source LeNet-5, fixed.

After Gutstein, Fuentes and Freudenthal, "Knowledge transfer in deep convolutional neural nets"
(2008): a LeNet-5 variant (`kerastransfer.models.lenet.lenet5`) is trained on one set of
classes; a new net then learns a different set of classes with its bottom n levels (C1, S2, C3,
S4, C5: n = 0..5) copied from the source and kept fixed, from k training samples per class,
repeated over trials. Classes are target codes of +-1 values, one-of-N (`"onehot"`) or random
20-bit codes (`"random20"`, the paper's), learned with a squared error; a prediction is the
class whose code is nearest to the output:

    loss = mean_i ||f(x_i) - c_{y_i}||^2,    prediction(x) = argmin_k ||f(x) - c_k||^2

Example (tiny settings):

>>> source, report = train_source("embedded:mnist", classes=[0, 1, 2, 3, 4], epochs=1)
>>> rows = layer_transfer_sweep(source, "embedded:mnist", target_classes=[5, 6, 7, 8, 9],
...                             levels=[0, 4], samples_per_class=[5], trials=1, epochs=2)
>>> [(r["retained"], r["samples_per_class"], r["trial"]) for r in rows]
[(0, 5, 0), (4, 5, 0)]
"""

import dataclasses
import math
import time

import keras
import numpy as np
import tensorflow as tf

from kerastransfer.data import load_dataset, to_image_shape
from kerastransfer.models.lenet import (
    LEVELS,
    TABLE_1,
    free_parameter_table,
    lenet5,
)
from kerastransfer.surgery import freeze_bottom_levels, import_matching_layers, weighted_levels

CODES = ("onehot", "random20")
IMAGE_SHAPE = (32, 32, 1)
MAX_RETAINED = len(LEVELS) - 1  # retaining all six levels would leave nothing to train


# -- target codes ------------------------------------------------------------------------------


def make_codes(kind, num_classes, *, bits=20, seed=0):
    """Target codes, one +-1 row per class.

    `"random20"` (Gutstein et al. 2008): each class gets a random vector of `bits` (default 20)
    +-1 bits, all rows distinct. `"onehot"`: the one-of-N code, +1 for the class and -1 elsewhere.

    >>> make_codes("onehot", 3)
    array([[ 1., -1., -1.],
           [-1.,  1., -1.],
           [-1., -1.,  1.]], dtype=float32)
    >>> make_codes("random20", 5, seed=1).shape
    (5, 20)
    """
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be at least 2. Received: {num_classes}")
    if kind == "onehot":
        return (2 * np.eye(num_classes) - 1).astype("float32")
    if kind != "random20":
        raise ValueError(f"`codes` must be one of {CODES}. Received: {kind!r}")
    if num_classes > 2**bits:
        raise ValueError(f"{bits} bits give at most {2**bits} distinct codes; {num_classes} asked.")
    rng = np.random.default_rng(seed)
    while True:
        codes = rng.choice([-1.0, 1.0], size=(num_classes, bits)).astype("float32")
        if len(np.unique(codes, axis=0)) == num_classes:
            return codes


def decode(outputs, codes):
    """Class ids of the codes nearest (Euclidean) to each output row.

    >>> decode(np.array([[0.8, -0.9], [-0.2, 0.1]]), make_codes("onehot", 2)).tolist()
    [0, 1]
    """
    outputs, codes = np.asarray(outputs), np.asarray(codes)
    distances = ((outputs[:, None, :] - codes[None]) ** 2).sum(axis=-1)
    return distances.argmin(axis=-1)


def code_accuracy(model, images, labels, codes, *, batch_size=500):
    """Fraction of `images` whose nearest code is their label's."""
    # Direct calls, not `predict`: the sweep tests many nets once each, and `predict` would
    # trace a graph for every one of them.
    outputs = np.concatenate(
        [
            np.asarray(model(images[i : i + batch_size], training=False))
            for i in range(0, len(images), batch_size)
        ]
    )
    return float(np.mean(decode(outputs, codes) == np.asarray(labels)))


# -- source and target nets --------------------------------------------------------------------


def compile_code_model(model, *, learning_rate=1e-3):
    """Compile a code net: squared error to the +-1 codes, Adam."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mean_squared_error")
    return model


def load_images(
    source, *, classes=None, samples_per_class=None, validation_split=0.0, resize="pad", seed=0
):
    """`load_dataset` with its splits as 32x32x1 float NumPy arrays in [0, 255]: a dict of
    split -> (images, labels), plus the `TransferData` under "data"."""
    data = load_dataset(
        source,
        classes=classes,
        samples_per_class=samples_per_class,
        validation_split=validation_split,
        image_shape=IMAGE_SHAPE,
        resize=resize,
        seed=seed,
    )
    splits = {"data": data}
    for split in ("train", "validation", "test"):
        if split == "validation" and not validation_split:
            continue
        x, y = data.arrays(split)
        splits[split] = (np.asarray(to_image_shape(x, IMAGE_SHAPE, resize)), y)
    return splits


@dataclasses.dataclass
class SourceReport:
    """How the source net was trained: its data, codes and accuracies."""

    source: str
    classes: list
    codes: np.ndarray
    train_accuracy: float
    test_accuracy: float
    seconds: float
    raw_shape: tuple

    def __str__(self):
        classes = "all" if self.classes is None else ",".join(map(str, self.classes))
        return (
            f"source net: {self.source} classes {classes}, {self.codes.shape[1]}-bit codes; "
            f"train accuracy {self.train_accuracy:.3f}, test accuracy {self.test_accuracy:.3f} "
            f"({self.seconds:.0f} s)"
        )


def train_source(
    source,
    *,
    classes=None,
    codes="random20",
    epochs=8,
    batch_size=32,
    learning_rate=1e-3,
    resize="pad",
    seed=0,
    callbacks=(),
    verbose=0,
):
    """Train the source LeNet-5 on `source` (all of its training images of `classes`).

    The codes, the validation split (10%) and the initial weights are drawn with `seed`;
    `callbacks` go to `fit` (e.g. `keras.callbacks.BackupAndRestore` to resume).

    Returns:
        `(model, SourceReport)`.
    """
    start = time.perf_counter()
    splits = load_images(source, classes=classes, validation_split=0.1, resize=resize, seed=seed)
    info = splits["data"].info
    code_table = make_codes(codes, info.num_classes, seed=seed)
    keras.utils.set_random_seed(seed)
    model = compile_code_model(
        lenet5(code_table.shape[1], name="source"), learning_rate=learning_rate
    )
    (x, y), (xv, yv) = splits["train"], splits["validation"]
    model.fit(
        x,
        code_table[y],
        validation_data=(xv, code_table[yv]),
        epochs=epochs,
        batch_size=batch_size,
        callbacks=list(callbacks),
        verbose=verbose,
    )
    report = SourceReport(
        source=str(source),
        classes=None if classes is None else list(classes),
        codes=code_table,
        train_accuracy=code_accuracy(model, x, y, code_table),
        test_accuracy=code_accuracy(model, *splits["test"], code_table),
        seconds=time.perf_counter() - start,
        raw_shape=info.image_shape,
    )
    return model, report


def transfer_lenet(source, retained, *, code_bits=20, seed=0, name=None):
    """A new LeNet-5 with the bottom `retained` levels copied from `source` and frozen.

    Args:
        source: a trained `lenet5` model.
        retained: n, the number of bottom levels (C1, S2, C3, S4, C5) kept fixed, 0..5.
        code_bits: F6 units of the new net.
        seed: seed of the fresh initialisation of the other levels.

    >>> target = transfer_lenet(lenet5(), 4)
    >>> [layer.name for layer in target.layers if layer.weights and not layer.trainable]
    ['C1', 'S2', 'C3', 'S4']
    """
    check_retained(retained)
    keras.utils.set_random_seed(seed)
    target = lenet5(code_bits, name=name or f"target_retain{retained}")
    names = [level[0].name for level in weighted_levels(target)]
    report = import_matching_layers(source, target, skip=names[retained:])
    if report.imported != names[:retained]:
        raise ValueError(
            f"Could not copy the bottom {retained} levels {names[:retained]} from "
            f"'{source.name}': copied {report.imported}, mismatched {report.mismatched}."
        )
    freeze_bottom_levels(target, retained)
    return target


def check_retained(n):
    """Raise a ValueError unless 0 <= n <= 5."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_RETAINED:
        raise ValueError(
            f"Retained levels must be integers in 0..{MAX_RETAINED} (bottom levels of "
            f"{', '.join(LEVELS[:MAX_RETAINED])} kept fixed; retaining all six would leave "
            f"nothing to train). Received: {n!r}"
        )


def trainable_free_parameters(retained, table=TABLE_1):
    """Free parameters left to train when the bottom `retained` levels are fixed.

    >>> trainable_free_parameters(5), trainable_free_parameters(3)
    (2420, 50572)
    """
    check_retained(retained)
    return sum(list(table.values())[retained:])


# -- the sweep ---------------------------------------------------------------------------------


class LevelRunner:
    """One compiled target net for a retained count n, reset for every run.

    `run(...)` trains the net on one training set from a fresh, seeded start (see `reset`) and
    returns its test accuracy; the same seed gives the same accuracy whatever ran before.

    Re-initialising the weights of one compiled net, rather than building and compiling a new
    net per run, saves a graph trace per run: with 150 small runs that is most of the time.
    """

    def __init__(self, source, retained, code_bits, learning_rate):
        self.source = source
        self.retained = retained
        self.code_bits = code_bits
        self.model = compile_code_model(
            transfer_lenet(source, retained, code_bits=code_bits), learning_rate=learning_rate
        )
        optimizer = self.model.optimizer
        optimizer.build(self.model.trainable_variables)
        self._optimizer_state = [v.numpy() for v in optimizer.variables]

    def reset(self, seed):
        """Fresh random weights (seeded), the bottom levels copied from the source again, and
        a fresh optimizer state."""
        fresh = transfer_lenet(self.source, self.retained, code_bits=self.code_bits, seed=seed)
        self.model.set_weights(fresh.get_weights())
        for variable, value in zip(self.model.optimizer.variables, self._optimizer_state):
            variable.assign(value)

    def run(self, x, y, codes, x_test, y_test, *, epochs, min_steps, batch_size, seed):
        """Train on `(x, codes[y])` from a fresh start seeded by `seed`; the test accuracy."""
        self.reset(seed)
        steps = training_steps(len(x), epochs=epochs, min_steps=min_steps, batch_size=batch_size)
        # One Keras epoch of `steps` full batches drawn from the repeated, reshuffled set: the
        # same updates as many tiny epochs, without the per-epoch overhead.
        batches = (
            tf.data.Dataset.from_tensor_slices((x, codes[y]))
            .repeat()
            .shuffle(len(x) * 4, seed=seed)
            .batch(batch_size, drop_remainder=True)
        )
        self.model.fit(batches, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
        return code_accuracy(self.model, x_test, y_test, codes)


def training_steps(num_samples, *, epochs, min_steps=0, batch_size=32):
    """Updates of one run: `epochs` passes over `num_samples` images in batches, at least
    `min_steps`.

    >>> training_steps(5, epochs=30, min_steps=100), training_steps(200, epochs=30)
    (100, 210)
    """
    if epochs < 1 or min_steps < 0 or batch_size < 1:
        raise ValueError(
            f"`epochs` and `batch_size` must be positive and `min_steps` non-negative. Received: "
            f"epochs={epochs}, min_steps={min_steps}, batch_size={batch_size}"
        )
    return max(epochs * math.ceil(num_samples / batch_size), min_steps)


def available_per_class(source, classes=None):
    """Training images per class of `source` (after class subsetting)."""
    data = load_dataset(source, classes=classes, validation_split=0)
    y = data.arrays("train")[1]
    return np.bincount(y, minlength=data.info.num_classes)


def check_sweep_args(levels, samples_per_class, trials, available):
    """Validate sweep settings before any training; raise ValueError naming the fix."""
    if not levels:
        raise ValueError("`levels` is empty: give retained level counts in 0..5, e.g. 0,1,2,3,4,5.")
    for n in levels:
        check_retained(n)
    if not samples_per_class:
        raise ValueError("`samples_per_class` is empty: give sizes such as 1,5,10,20,40.")
    fewest = int(np.min(available))
    for k in samples_per_class:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"Samples per class must be positive integers. Received: {k!r}")
        if k > fewest:
            raise ValueError(
                f"samples_per_class={k} is more than the target has: its smallest class has "
                f"{fewest} training images. Use at most {fewest} samples per class, or a larger "
                "target dataset."
            )
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) or trials < 1:
        raise ValueError(f"`trials` must be a positive integer. Received: {trials!r}")


def layer_transfer_sweep(
    source_model,
    target,
    *,
    target_classes=None,
    levels=(0, 1, 2, 3, 4, 5),
    samples_per_class=(1, 5, 10, 20, 40),
    trials=5,
    codes="random20",
    epochs=30,
    min_steps=100,
    batch_size=32,
    learning_rate=3e-3,
    resize="pad",
    seed=0,
    on_result=None,
    keep_best=False,
    cache=None,
):
    """The layer-transfer sweep of Gutstein, Fuentes and Freudenthal (2008): for each retained
    n, samples per class k and trial, train a target net and test it.

    Trial t draws its k training images per class, its target codes and its initial weights
    with seed `seed + t`; the same draw serves every n, so the curves over n are paired. Every
    net is tested on the whole test split of the target classes. A run depends only on its
    (n, k, seed), not on the runs before it, so a sweep can resume from cached runs.

    Args:
        source_model: a trained `lenet5` (see `train_source`).
        target: target dataset (anything `load_dataset` takes).
        target_classes: class ids of `target` to learn (default all).
        levels: retained level counts n, each in 0..5.
        samples_per_class: training images per class, k.
        trials: runs per (n, k).
        codes: "random20" or "onehot".
        epochs: training epochs per run; small sets get more, so that every run takes at
            least `min_steps` updates.
        min_steps: the fewest updates of any run.
        batch_size, learning_rate: Adam mini-batch training.
        resize: how target images become 32x32 ("pad" or "resize").
        seed: base seed.
        on_result: called with each result row as it comes (progress printing).
        keep_best: keep the weights and codes of the most accurate run (row keys "weights" and
            "codes", on the best row only). A best run that came from `cache` is trained again
            (same seed, same weights) to recover its weights.
        cache: optional store of finished runs: an object whose `get(key, compute)` returns the
            row stored under `key` (a string naming n, k and the seed) or stores and returns
            `compute()`'s. Rows must come back as they went in (plain JSON values).

    Returns:
        One dict per run: retained, samples_per_class, trial, seed, accuracy,
        trainable_parameters (free parameters left to train) and seconds.
    """
    levels, samples_per_class = list(levels), list(samples_per_class)
    check_sweep_args(levels, samples_per_class, trials, available_per_class(target, target_classes))
    test = load_images(target, classes=target_classes, resize=resize)
    num_classes = test["data"].info.num_classes
    x_test, y_test = test["test"]
    code_tables = [make_codes(codes, num_classes, seed=seed + 1000 + t) for t in range(trials)]
    code_bits = code_tables[0].shape[1]
    table = free_parameter_table(lenet5(code_bits))
    runners = {}
    rows, best = [], None
    for k in samples_per_class:
        for t in range(trials):
            x, y = load_images(
                target, classes=target_classes, samples_per_class=k, resize=resize, seed=seed + t
            )["train"]
            for n in levels:
                kept = {}  # the weights of a run trained here (not cached)

                def run(n=n, x=x, y=y, t=t, kept=kept):
                    if n not in runners:
                        runners[n] = LevelRunner(source_model, n, code_bits, learning_rate)
                    start = time.perf_counter()
                    accuracy = runners[n].run(
                        x,
                        y,
                        code_tables[t],
                        x_test,
                        y_test,
                        epochs=epochs,
                        min_steps=min_steps,
                        batch_size=batch_size,
                        seed=seed + t,
                    )
                    row = {
                        "retained": n,
                        "samples_per_class": k,
                        "trial": t,
                        "seed": seed + t,
                        "accuracy": accuracy,
                        "trainable_parameters": trainable_free_parameters(n, table),
                        "seconds": time.perf_counter() - start,
                    }
                    if keep_best:
                        kept["weights"] = runners[n].model.get_weights()
                    return row

                key = f"retain{n}_k{k}_seed{seed + t}"
                row = dict(cache.get(key, run) if cache is not None else run())
                rows.append(row)
                if keep_best and (best is None or row["accuracy"] > best[0]["accuracy"]):
                    best = (row, kept.get("weights"), code_tables[t], x, y)
                if on_result is not None:
                    on_result(row)
    if keep_best:
        row, weights, code_table, x, y = best
        if weights is None:  # a cached run: train it again, from the same seed
            runner = LevelRunner(source_model, row["retained"], code_bits, learning_rate)
            runner.run(
                x,
                y,
                code_table,
                x_test,
                y_test,
                epochs=epochs,
                min_steps=min_steps,
                batch_size=batch_size,
                seed=row["seed"],
            )
            weights = runner.model.get_weights()
        row["weights"], row["codes"] = weights, code_table
    return sorted(rows, key=lambda r: (r["retained"], r["samples_per_class"], r["trial"]))
