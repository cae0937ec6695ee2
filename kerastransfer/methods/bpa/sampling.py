"""`stratified_sample`: a fixed, class-balanced sample of a labelled set, for a cheap Gamma.

Gamma needs d masked forward passes per sample, so `GammaRefresh` computes it on a sample of the
labelled set. Taking the first batches would be wrong on any class-sorted set (image folders are
read class by class): the sample is stratified instead, every class represented and balanced,
drawn uniformly within each class (one reservoir per class, so a `tf.data.Dataset` is read once),
seeded, and drawn once: every refresh sees the same images. From a `TransferData` the sample is
drawn on the labels alone and only its images are read (the same sample as from the split's
pipeline, example for example).

Example:

>>> import numpy as np
>>> x, y = np.zeros((30, 4, 4, 1), "float32"), np.repeat([0, 1, 2], 10)  # class-sorted
>>> xs, ys = stratified_sample((x, y), samples_per_class=4)
>>> np.bincount(ys).tolist()
[4, 4, 4]
"""

import numpy as np
import tensorflow as tf

from kerastransfer.methods.bpa.filter_costs import as_dataset, is_transfer_data, labelled_set


def _class_ids(y):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[-1] > 1:
        return np.argmax(y, axis=-1)  # one-hot
    return y.reshape(len(y)).astype(np.int64)


def _quotas(counts, samples_per_class, total):
    classes = sorted(counts)
    if total is None:
        return {c: min(samples_per_class, counts[c]) for c in classes}
    base, extra = divmod(total, len(classes))
    return {c: min(base + (i < extra), counts[c]) for i, c in enumerate(classes)}


def stratified_sample(data, samples_per_class=None, *, total=None, seed=0, subset="train"):
    """A class-balanced random sample of a labelled set, as `(x, y)` NumPy arrays.

    Args:
        data: `(x, y)` arrays, a batched `tf.data.Dataset` of `(x, y)` (sparse or one-hot
            labels; a third element, sample weights, is dropped), or a `TransferData` (its
            `subset`; only the sampled images are read).
        samples_per_class: images drawn from every class (all of a class that has fewer).
        total: instead of `samples_per_class`, the sample size: `total // C` per class (the
            first `total % C` classes one more), C the number of classes present.
        seed: the sample is a function of the set and the seed.
        subset: with a `TransferData`: "train", "validation" or "train+validation" (as for
            `GammaRefresh`).

    Returns:
        `(x, y)`: the sample, labels as in `data`.

    Raises:
        ValueError: both or neither of `samples_per_class` and `total`, a non-positive size,
            or an empty set.
    """
    if (samples_per_class is None) == (total is None):
        raise ValueError("Pass exactly one of `samples_per_class` and `total`.")
    size = samples_per_class if total is None else total
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"The sample size must be a positive integer. Received: {size!r}")
    rng = np.random.default_rng(seed)
    if is_transfer_data(data) and getattr(data, "skipped", None) is None:
        return _transfer_data_sample(data, subset, samples_per_class, total, rng)
    data = labelled_set(data, subset)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = np.asarray(data[0]), np.asarray(data[1])
        ids = _class_ids(y)
        counts = {int(c): int(n) for c, n in zip(*np.unique(ids, return_counts=True))}
        if not counts:
            raise ValueError("The labelled set for Gamma is empty: nothing to sample.")
        quotas = _quotas(counts, samples_per_class, total)
        keep = np.concatenate(
            [rng.choice(np.flatnonzero(ids == c), quotas[c], replace=False) for c in quotas]
        )
        keep.sort()
        return x[keep], y[keep]

    # A dataset: one reservoir per class, capped at the largest quota any class can get.
    def examples():
        for x, y in as_dataset(data):
            x, y = np.asarray(x), np.asarray(y)
            for i, c in enumerate(_class_ids(y)):
                yield int(c), (x[i], y[i])

    items = _reservoir_sample(examples(), samples_per_class, total, rng)
    return np.stack([x for x, _ in items]), np.stack([y for _, y in items])


def _reservoir_sample(examples, samples_per_class, total, rng):
    """The sampled items of a stream of `(class id, item)`: one reservoir per class, then a
    seeded draw of each class's quota from its reservoir."""
    cap = samples_per_class if total is None else total
    reservoirs, seen = {}, {}
    for c, item in examples:
        n = seen[c] = seen.get(c, 0) + 1
        slot = reservoirs.setdefault(c, [])
        if len(slot) < cap:
            slot.append(item)
        else:
            j = rng.integers(n)
            if j < cap:
                slot[j] = item
    if not seen:
        raise ValueError("The labelled set for Gamma is empty: nothing to sample.")
    quotas = _quotas(seen, samples_per_class, total)
    items = []
    for c, quota in quotas.items():
        order = rng.permutation(len(reservoirs[c]))[:quota]
        items.extend(reservoirs[c][j] for j in order)
    return items


def _transfer_data_sample(data, subset, samples_per_class, total, rng):
    """The sample the reservoirs would draw from the subset's pipeline (its splits in order,
    unshuffled), drawn on the labels alone; only the sampled examples are then read."""
    labelled_set(data, subset)  # a missing validation split: the same error
    splits = subset.split("+")
    examples = ((int(c), (split, i)) for split in splits for i, c in enumerate(data.labels(split)))
    picked = _reservoir_sample(examples, samples_per_class, total, rng)
    x, y = [None] * len(picked), [None] * len(picked)
    for split in splits:
        slots = [k for k, (s, _) in enumerate(picked) if s == split]
        if slots:
            xs, ys = data.take(split, [picked[k][1] for k in slots])
            for k, xi, yi in zip(slots, xs, ys):
                x[k], y[k] = xi, yi
    return np.stack(x), np.stack(y)


def first_batch_size(dataset, default=256):
    """The batch size of a batched dataset (its first batch), or `default`."""
    if isinstance(dataset, tf.data.Dataset):
        for x, _ in as_dataset(dataset).take(1):
            return int(tf.shape(tf.nest.flatten(x)[0])[0])
    return default
