"""The source net and target nets that retain its bottom n levels."""

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from kerastransfer.callbacks.epoch_seeding import EpochSeeding
from kerastransfer.data import load_dataset
from kerastransfer.methods.layer_transfer.codes import (
    code_accuracy,
    make_codes,
)
from kerastransfer.models.lenet import (  # noqa: F401
    LEVELS,
    TABLE_1,
    free_parameter_table,
    lenet5,
)
from kerastransfer.surgery import freeze_bottom_levels, import_matching_layers, weighted_levels

IMAGE_SHAPE = (32, 32, 1)
MAX_RETAINED = len(LEVELS) - 1  # retaining all six levels would leave nothing to train


def compile_code_model(model, *, learning_rate=1e-3):
    """Compile a code net: squared error to the +-1 codes, Adam."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mean_squared_error")
    return model


def load_lenet_data(
    data, *, classes=None, samples_per_class=None, validation_split=0.0, resize="pad", seed=0
):
    """`load_dataset` at the LeNet-5 input, `IMAGE_SHAPE` (32x32x1): a `TransferData` whose
    pipelines and `take` give 32x32x1 float images in [0, 255] (28x28 digits padded by default).
    """
    return load_dataset(
        data,
        classes=classes,
        samples_per_class=samples_per_class,
        validation_split=validation_split,
        image_shape=IMAGE_SHAPE,
        resize=resize,
        seed=seed,
    )


def split_arrays(data, split):
    """`(images, labels)` arrays of one split of `data`: for the small sets of the sweep only
    (k samples per class); larger splits are read through `data.dataset`."""
    return data.take(split, np.arange(data.size(split)))


def coded(dataset, codes):
    """A dataset of `(images, labels)` as `(images, codes[labels])`, the code nets' targets."""
    codes = tf.constant(codes)
    return dataset.map(lambda x, y: (x, tf.gather(codes, y)))


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
    data,
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
    """Train the source LeNet-5 on the dataset `data` (all its training images of `classes`).

    The codes, the validation split (10%), the initial weights and the order of the training
    images (reshuffled every epoch) are drawn with `seed`; images are read batch by batch, the
    training split is never held whole. `callbacks` go to `fit` (e.g.
    `kerastransfer.callbacks.BackupAndRestore` to resume), after `EpochSeeding`: epoch e reads
    epoch e's order, in a resumed run too.

    Returns:
        `(model, SourceReport)`.
    """
    start = time.perf_counter()
    name = str(data)
    data = load_lenet_data(data, classes=classes, validation_split=0.1, resize=resize, seed=seed)
    info = data.info
    code_table = make_codes(codes, info.num_classes, seed=seed)
    keras.utils.set_random_seed(seed)
    model = compile_code_model(
        lenet5(code_table.shape[1], name="source"), learning_rate=learning_rate
    )
    train = data.dataset("train", shuffle=True, seed=seed, batch_size=batch_size)
    validation = data.dataset("validation", batch_size=batch_size)
    model.fit(
        coded(train, code_table),
        validation_data=coded(validation, code_table),
        epochs=epochs,
        callbacks=[EpochSeeding(), *callbacks],
        verbose=verbose,
        shuffle=False,  # the pipeline reshuffles, seeded
    )

    def accuracy(split):
        return code_accuracy(model, data.dataset(split, batch_size=500), None, code_table)

    report = SourceReport(
        source=name,
        classes=None if classes is None else list(classes),
        codes=code_table,
        train_accuracy=accuracy("train"),
        test_accuracy=accuracy("test"),
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
