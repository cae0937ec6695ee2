"""Seeded, stratified choices of samples: validation split, samples per class, class subsets.

All of them read labels only and return positions."""

import copy

import numpy as np


def relabel(records, classes):
    """A shallow copy of `records` whose labels are `classes` renumbered 0..k-1 (others -1)."""
    relabelled = copy.copy(records)
    table = np.full(max(int(records.labels.max()), max(classes)) + 1, -1, np.int64)
    table[classes] = np.arange(len(classes))
    relabelled.labels = table[records.labels]
    return relabelled


def subset_classes(positions, y, classes, split):
    """The `positions` (labels `y`) whose label is one of `classes`."""
    counts = {c: int(np.sum(y == c)) for c in classes}
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise ValueError(
            f"Classes {empty} have no {split} images: subsetting would leave them empty. "
            "Choose classes present in both splits."
        )
    return positions[np.isin(y, classes)]


def stratified_split(y, fraction, rng):
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = int(round(len(idx) * fraction))
        if n_val == 0 or n_val == len(idx):
            raise ValueError(
                f"Class {c} has {len(idx)} training images: too few for validation_split="
                f"{fraction}. Use a larger dataset or validation_split=0."
            )
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def samples_per_class(y, n, num_classes, rng):
    if n < 1:
        raise ValueError(f"`samples_per_class` must be at least 1. Received: {n}")
    keep = []
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        if len(idx) < n:
            raise ValueError(
                f"Class {c} has {len(idx)} training images, fewer than samples_per_class={n}."
            )
        keep.append(rng.choice(idx, n, replace=False))
    return np.sort(np.concatenate(keep))
