"""Target codes of +-1 values (one-of-N or random bit codes) and nearest-code decoding."""

import numpy as np

from kerastransfer.models.lenet import (  # noqa: F401
    LEVELS,
    TABLE_1,
    free_parameter_table,
    lenet5,
)

CODES = ("onehot", "random20")


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
    """Fraction of `images` whose nearest code is their label's.

    `images` and `labels` are arrays (run in batches of `batch_size`), or `images` is a batched
    `tf.data.Dataset` of `(images, labels)` (read once, batch by batch) and `labels` None.
    """
    # Direct calls, not `predict`: the sweep tests many nets once each, and `predict` would
    # trace a graph for every one of them.
    if labels is None:
        batches = ((x, np.asarray(y)) for x, y in images)
    else:
        labels = np.asarray(labels)
        batches = (
            (images[i : i + batch_size], labels[i : i + batch_size])
            for i in range(0, len(images), batch_size)
        )
    correct = total = 0
    for x, y in batches:
        outputs = np.asarray(model(x, training=False))
        correct += int(np.sum(decode(outputs, codes) == y))
        total += len(y)
    if not total:
        raise ValueError("No images to test: `images` is empty.")
    return float(correct / total)
