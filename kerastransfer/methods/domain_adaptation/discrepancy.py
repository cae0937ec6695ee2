"""`domain_gap`: MK-MMD between source and target features at each named layer of a model.

How far apart two domains are, as a network sees them, layer by layer: the multi-kernel MMD^2
(`MultiKernelMMD`) between the activations of source and target images, averaged over a few
batch pairs. Long et al. (2015, "Learning Transferable Features with Deep Adaptation Networks")
observe that the gap grows with depth, which is why DAN adapts the task-specific top layers;
comparing it before and after adaptation shows what training did. Labels are not read.

Command line (`domain_gap_main`, wired as `kerastransfer gap`):

    kerastransfer gap model.keras --source embedded:mnist --target embedded:usps \\
        --layers flatten,bottleneck

Example:

>>> from kerastransfer.data import load_dataset
>>> from kerastransfer.models.digits_network import digits_lenet
>>> mnist = load_dataset("embedded:mnist")
>>> usps = load_dataset("embedded:usps", image_shape=(28, 28, 1))
>>> gaps = domain_gap(digits_lenet(), mnist, usps, ["flatten", "bottleneck"], batches=1)
>>> sorted(gaps), all(v > 0 for v in gaps.values())
(['bottleneck', 'flatten'], True)
"""

import argparse

import keras
import numpy as np

from kerastransfer.data import TransferData, to_image_shape
from kerastransfer.losses.mmd import MultiKernelMMD


def domain_gap(
    model,
    source_data,
    target_data,
    layer_names=None,
    *,
    estimate="quadratic",
    batch_size=256,
    batches=4,
    split="test",
    seed=0,
):
    """MMD^2 between source and target activations at each named layer.

    Args:
        model: a functional classifier, or a `DANModel` / `DANNModel` (its classifier is read).
        source_data, target_data: the two domains, each a `TransferData` (of its `split`, only
            the images measured are read, at the data's `image_shape`) or image arrays
            (N, H, W, C). Images are converted to the model's input shape.
        layer_names: layers to measure (default: every layer with weights).
        estimate: "quadratic" or "linear" (see `MultiKernelMMD`).
        batch_size: images per domain in each batch pair (default 256).
        batches: batch pairs to average (default 4); images are drawn without replacement.
        split: split of `TransferData` inputs (default "test").
        seed: seed of the draw.

    Returns:
        A dict {layer name: MMD^2 (float)}, in layer order.
    """
    classifier = getattr(model, "classifier", model)
    if not isinstance(classifier, keras.Model) or not hasattr(classifier, "inputs"):
        raise TypeError(f"`model` must be a functional keras.Model. Received: {model!r}")
    known = [layer.name for layer in classifier.layers]
    if layer_names is None:
        layer_names = [layer.name for layer in classifier.layers if layer.weights]
    elif isinstance(layer_names, str):
        layer_names = [layer_names]
    missing = [n for n in layer_names if n not in known]
    if missing or not layer_names:
        raise ValueError(
            f"`layer_names` {missing or layer_names} name no layer of '{classifier.name}'. Its "
            f"layers are: {known}."
        )
    if batches < 1 or batch_size < 2:
        raise ValueError(
            f"`batches` must be >= 1 and `batch_size` >= 2. Received: {batches}, {batch_size}"
        )
    image_shape = tuple(classifier.inputs[0].shape[1:])
    n_s, read_s = _reader(source_data, split, "source_data")
    n_t, read_t = _reader(target_data, split, "target_data")
    per_batch = min(batch_size, n_s, n_t)
    if per_batch < 2:
        raise ValueError("`source_data` and `target_data` need at least 2 images each.")
    batches = min(batches, n_s // per_batch, n_t // per_batch)
    rng = np.random.default_rng(seed)
    order_s, order_t = rng.permutation(n_s), rng.permutation(n_t)
    taps = keras.Model(classifier.inputs, [classifier.get_layer(n).output for n in layer_names])
    mmd = MultiKernelMMD(estimate=estimate)
    totals = np.zeros(len(layer_names))
    for b in range(batches):
        pick = slice(b * per_batch, (b + 1) * per_batch)
        f_s = taps(to_image_shape(read_s(order_s[pick]), image_shape), training=False)
        f_t = taps(to_image_shape(read_t(order_t[pick]), image_shape), training=False)
        f_s = f_s if isinstance(f_s, (list, tuple)) else [f_s]
        f_t = f_t if isinstance(f_t, (list, tuple)) else [f_t]
        totals += [float(mmd(a, c)) for a, c in zip(f_s, f_t)]
    return {name: float(v / batches) for name, v in zip(layer_names, totals)}


def _reader(data, split, what):
    """`(number of images, read)`: `read(indices)` gives those images of `data` (only those
    are read from a `TransferData`)."""
    if isinstance(data, TransferData):
        return data.size(split), lambda indices: data.take(split, indices)[0]
    x = np.asarray(data)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(
            f"`{what}` must be a TransferData or images (N, H, W, C). Received shape {x.shape}."
        )
    return len(x), lambda indices: x[indices]


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose mistakes raise `ValueError` (one line: `kerastransfer gap: error: ...`,
    exit status 2) instead of printing the usage."""

    def error(self, message):
        raise ValueError(f"{message} (see `{self.prog} --help`)")


def _layer_names(text):
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated layer names, got {text!r}")
    return names


def domain_gap_main(argv=None):
    """`kerastransfer gap MODEL --source S --target T [--layers a,b]`: print the gap per layer."""
    from kerastransfer.data import load_dataset
    from kerastransfer.fine_tuning.command_line import int_at_least, non_negative_int, positive_int

    parser = _OneLineParser(
        prog="kerastransfer gap",
        description="MK-MMD between source and target features at each named layer of a model.",
    )
    parser.add_argument("model", help="a .keras file (a classifier, DANModel or DANNModel)")
    parser.add_argument(
        "--source",
        required=True,
        help="embedded:NAME, an .npz, a folder or a tensorflow-datasets name",
    )
    parser.add_argument("--target", required=True, help="as --source")
    parser.add_argument(
        "--layers",
        type=_layer_names,
        default=None,
        help="comma-separated layer names (default: every layer with weights)",
    )
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--estimate", default="quadratic", choices=("quadratic", "linear"))
    parser.add_argument("--batch-size", type=int_at_least(2), default=256)
    parser.add_argument("--batches", type=positive_int, default=4)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    args = parser.parse_args(argv)
    model = keras.saving.load_model(args.model)
    classifier = getattr(model, "classifier", model)
    shape = tuple(classifier.inputs[0].shape[1:])
    load = dict(image_shape=shape, validation_split=0, seed=args.seed)
    source_data = load_dataset(args.source, **load)
    target_data = load_dataset(args.target, **load)
    layers = args.layers
    gaps = domain_gap(
        classifier,
        source_data,
        target_data,
        layers,
        estimate=args.estimate,
        batch_size=args.batch_size,
        batches=args.batches,
        split=args.split,
        seed=args.seed,
    )
    width = max(len(n) for n in gaps)
    print(f"MK-MMD^2 ({args.estimate}), {args.source} vs {args.target} ({args.split} split)")
    print(f"{'layer':<{width}}  {'MMD^2':>9}")
    for name, value in gaps.items():
        print(f"{name:<{width}}  {value:9.4f}")
    return gaps
