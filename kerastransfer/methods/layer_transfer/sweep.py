"""`layer_transfer_sweep`: every (retained levels, samples per class, trial) of the experiment."""

import math
import time

import numpy as np
import tensorflow as tf

from kerastransfer.data import load_dataset
from kerastransfer.methods.layer_transfer.codes import code_accuracy, make_codes
from kerastransfer.methods.layer_transfer.source_net import (
    check_retained,
    compile_code_model,
    load_lenet_data,
    split_arrays,
    trainable_free_parameters,
    transfer_lenet,
)
from kerastransfer.models.lenet import (  # noqa: F401
    LEVELS,
    TABLE_1,
    free_parameter_table,
    lenet5,
)


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
        """Train on `(x, codes[y])` from a fresh start seeded by `seed`; the test accuracy on
        `(x_test, y_test)` arrays, or on `x_test` a batched dataset of `(images, labels)` (and
        `y_test` None)."""
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


def available_per_class(data, classes=None):
    """Training images per class of the dataset `data` (after class subsetting)."""
    data = load_dataset(data, classes=classes, validation_split=0)
    return np.bincount(data.labels("train"), minlength=data.info.num_classes)


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
    test = load_lenet_data(target, classes=target_classes, resize=resize)
    num_classes = test.info.num_classes
    # The test split is read batch by batch for every run, never held whole; the training sets
    # (k per class) are small arrays.
    x_test, y_test = test.dataset("test", batch_size=500), None
    code_tables = [make_codes(codes, num_classes, seed=seed + 1000 + t) for t in range(trials)]
    code_bits = code_tables[0].shape[1]
    table = free_parameter_table(lenet5(code_bits))
    runners = {}
    rows, best = [], None
    for k in samples_per_class:
        for t in range(trials):
            train = load_lenet_data(
                target, classes=target_classes, samples_per_class=k, resize=resize, seed=seed + t
            )
            x, y = split_arrays(train, "train")
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
