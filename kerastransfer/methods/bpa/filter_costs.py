"""Gamma of every filter of a model's split layers: confusion matrices on a labelled set -> costs.

The per-filter confusion matrices (`tf.math.confusion_matrix`, summed across replicas and workers
under a `tf.distribute` strategy) of the single-filter networks are turned into costs Gamma by the
Dempster-Shafer functions of `dempster_shafer.py`.

Example:

>>> import numpy as np, keras
>>> inputs = keras.Input((8, 8, 1))
>>> x = keras.layers.Conv2D(3, 3, name="conv1")(inputs)
>>> x = keras.layers.Flatten()(x)
>>> model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
>>> data = (np.random.rand(16, 8, 8, 1).astype("float32"), np.arange(16) % 2)
>>> costs = compute_gamma(model, data, gamma="agreement")
>>> costs["conv1"].shape
(3,)
"""

import numpy as np
import tensorflow as tf

from kerastransfer import input_checks
from kerastransfer.methods.bpa import dempster_shafer
from kerastransfer.methods.bpa.base_probe import NONFINITE_SCORES
from kerastransfer.methods.bpa.probing import filter_probe
from kerastransfer.methods.bpa.split_layers import resolve_split_layer_paths

SUBSETS = ("train", "validation", "train+validation")


def labelled_set(data, subset="train"):
    """The labelled set Gamma is computed on.

    Args:
        data: a `kerastransfer.data.TransferData` (then `subset` picks its split: the training
            set by default, the validation set, or both, as the paper reports), or the set itself
            (a batched `tf.data.Dataset` or `(x, y)` arrays, returned as is).
        subset: `"train"`, `"validation"` or `"train+validation"` (TransferData only: with any
            other set, a `subset` other than `"train"` is an error, not silently ignored).
    """
    if subset not in SUBSETS:
        raise ValueError(f"`subset` must be one of {SUBSETS}. Received: subset={subset!r}")
    if not is_transfer_data(data):
        if subset != "train":
            raise ValueError(
                f"subset={subset!r} picks a split of a `kerastransfer.data.TransferData`, but the "
                f"labelled set is a {type(data).__name__}, which has no splits. Pass the "
                "TransferData, or pass the split itself (e.g. `data.validation`) with "
                "subset='train' (the default)."
            )
        return data
    if subset == "train":
        return data.dataset("train")  # unshuffled: the counts do not depend on the order
    if data.validation is None:
        raise ValueError(
            f"subset={subset!r} needs a validation split, but this TransferData has none. "
            "Load it with `validation_split` > 0, or use subset='train'."
        )
    if subset == "validation":
        return data.validation
    return data.dataset("train").concatenate(data.validation)


def is_transfer_data(data):
    return hasattr(data, "dataset") and hasattr(data, "arrays")


def as_dataset(data, batch_size=256):
    """A batched `tf.data.Dataset` of `(x, y)` from a dataset or an `(x, y)` tuple of arrays."""
    if isinstance(data, tf.data.Dataset):
        # Checked here, in Python: inside `map` the message would sit deep in a trace.
        _, y_spec = input_checks.split_spec(data, "The labelled set for Gamma")
        if y_spec is None:
            raise ValueError(
                "The labelled set for Gamma must yield (images, labels) batches; it yields "
                f"images only ({data.element_spec}). Gamma counts each filter's confusions "
                "against the labels: pass `tf.data.Dataset.from_tensor_slices((images, "
                "labels)).batch(32)`, an (images, labels) tuple, or the `TransferData`."
            )
        return data.map(_drop_sample_weight)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return tf.data.Dataset.from_tensor_slices(tuple(data)).batch(batch_size)
    raise ValueError(
        "The labelled set for Gamma must be a batched `tf.data.Dataset` of (x, y) or a tuple "
        f"(x, y) of arrays. Received: {type(data).__name__}"
    )


def _drop_sample_weight(*batch):
    if len(batch) == 1 and isinstance(batch[0], (tuple, list)):
        batch = tuple(batch[0])
    return batch[0], batch[1]  # labels present: checked by `as_dataset`


def _check_set(probes, dataset):
    """The images' shape of the labelled set against the model, before any pass is traced."""
    if probes:
        x_spec, _ = input_checks.split_spec(dataset)
        if isinstance(x_spec, tf.TensorSpec):
            input_checks.check_images(
                probes[0].model, x_spec.shape, "The images of the labelled set for Gamma"
            )


def _check_batch_labels(probes, strategy, y):
    """The labels of one batch, in Python: `tf.one_hot` would count one out of range as no
    class at all, silently."""
    if probes:
        for part in strategy.experimental_local_results(y):
            input_checks.check_labels(
                part.numpy(), probes[0].num_classes, "The labels of the labelled set for Gamma"
            )


def filter_confusions(probes, data, strategy=None, batch_size=256):
    """Sums the per-filter confusion matrices of each probe over a labelled set.

    Args:
        probes: list of `FilterProbe` (see `filter_probe`).
        data: batched `tf.data.Dataset` of `(x, y)` (or `(x, y, sample_weight)`), or `(x, y)`
            arrays.
        strategy: a `tf.distribute.Strategy`; batches are split across its replicas (and
            workers) and the counts summed across all of them. Default: the current strategy.
        batch_size: the batch size of `(x, y)` arrays (a dataset keeps its own batches).

    Returns:
        list of int64 arrays of shape (d, C, C), one per probe.
    """
    strategy = strategy or tf.distribute.get_strategy()
    dataset = as_dataset(labelled_set(data), batch_size)
    _check_set(probes, dataset)
    distributed = strategy.num_replicas_in_sync > 1 or isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    )
    totals = [np.zeros((p.num_filters, p.num_classes, p.num_classes), np.int64) for p in probes]

    def step(x, y):
        return [p.confusions(x, y) for p in probes]

    try:
        if distributed:
            dataset = strategy.experimental_distribute_dataset(dataset)
            for x, y in dataset:
                _check_batch_labels(probes, strategy, y)
                per_replica = strategy.run(step, args=(x, y))
                counts = [
                    strategy.reduce(tf.distribute.ReduceOp.SUM, c, axis=None) for c in per_replica
                ]
                for total, c in zip(totals, counts):
                    total += c.numpy()
        else:
            for x, y in dataset:
                _check_batch_labels(probes, strategy, y)
                for total, c in zip(totals, step(x, y)):
                    total += c.numpy()
    except tf.errors.InvalidArgumentError as error:
        if NONFINITE_SCORES in str(error):
            raise ValueError(
                "The labelled set for Gamma holds non-finite images, or the single-filter "
                "networks produced non-finite class scores (NaN or inf): check the images for "
                "NaN/inf values and the model for diverged weights. Gamma is not computed from "
                "them."
            ) from None
        raise
    if probes and totals[0].sum() == 0:
        raise ValueError(
            "The labelled set for Gamma is empty (no samples): Gamma cannot be computed from "
            "zero confusion counts. Check the dataset (or `subset`, `max_batches`, "
            "`samples_per_class`)."
        )
    return totals


def compute_gamma(
    model,
    data,
    split_layers=None,
    *,
    gamma="paper",
    normalization="max",
    masks_per_pass=None,
    strategy=None,
    subset="train",
    return_confusions=False,
):
    """Gamma for every filter of every split layer of `model` on a labelled set.

    Args:
        model: functional model with one class-score output.
        data: the labelled set (see `filter_confusions`).
        split_layers: names of Conv2D layers, paths into nested models (`"backbone/conv"`)
            (default: the first Conv2D).
        gamma: the cost functional, `"paper"` or `"agreement"` (see
            `dempster_shafer.gamma_costs`).
        normalization: `"max"`, `"mean"` or `"none"` across the d filters of each layer.
        masks_per_pass: see `FilterProbe`.
        strategy: see `filter_confusions`.
        subset: with a `TransferData` as `data`: `"train"`, `"validation"` or
            `"train+validation"` (see `labelled_set`).
        return_confusions: also return the (d, C, C) confusion matrices.

    Returns:
        dict split-layer name (as given) -> float64 array (d,) (and a dict of confusions when
        asked).
    """
    dempster_shafer.check_gamma(gamma)
    dempster_shafer.check_normalization(normalization)
    data = labelled_set(data, subset)
    named = resolve_split_layer_paths(model, split_layers)
    probes = [filter_probe(model, layer, masks_per_pass) for _, layer in named]
    confusions = filter_confusions(probes, data, strategy=strategy)
    costs = {
        name: dempster_shafer.normalized_costs(c, gamma, normalization)
        for (name, _), c in zip(named, confusions)
    }
    if return_confusions:
        return costs, {name: c for (name, _), c in zip(named, confusions)}
    return costs
