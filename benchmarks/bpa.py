"""BPA training and Gamma refresh against plain Keras, measured in one run on one model and data.

Prints five ratios (goals from the issue in brackets), on `small_cnn` or, with
`--model mobilenet_v2`, on `mobilenet_v2_classifier` (ImageNet weights from `$KERAS_HOME/models/`,
`--image-size` 96 by default; split layer: the first Conv2D, `mobilenetv2_1.00_96/Conv1`):

1. BPA training throughput / plain Keras `fit` throughput (>= 0.95);
1b. a whole BPA transfer / plain fine-tuning, wall time (<= 1.10): `--transfer-epochs` epochs
   from a fresh model each, `GammaRefresh` every epoch (at its defaults, or on
   `--samples-per-class` images per class), tracing and compilation included;
2. Gamma refresh time / naive d full forward passes (<= 0.5): the refresh runs the part below the
   split layer once per batch and the part above it for the d masks batched (see
   `kerastransfer.methods.bpa.filter_probe`); the naive baseline runs the whole network once per
   filter and batch, compiled the same way;
3. Gamma refresh time as a share of one BPA training epoch at default settings (<= 10%): the
   refresh runs on the whole training set, so this is about (d masked forward passes of the
   layers above the split) / (one forward and backward pass of the network);
4. peak memory of the refresh vs a plain evaluation pass over the same data. On an accelerator
   this is TensorFlow's allocator peak (`tf.config.experimental.get_memory_info`); on CPU, where
   TensorFlow keeps no such statistics, each pass runs in a fresh process (the model saved and
   reloaded) and the figure is its resident-set high-water mark (`resource.getrusage`) above the
   resident set before the pass (measured with psutil after a one-batch warm-up).

    python benchmarks/bpa.py [--data embedded:mnist] [--samples N] [--epochs 4]
        [--model small_cnn|mobilenet_v2] [--transfer-epochs 3] [--samples-per-class N] ...
"""

import argparse
import os
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from _measure import (
    EpochTimer,
    accelerator,
    accelerator_peak,
    command_line,
    interleaved_times,
    run_json,
    timed,
)

from kerastransfer.data import load_dataset, to_image_shape
from kerastransfer.fine_tuning.command_line import positive_ints
from kerastransfer.methods.bpa import BPAModel, GammaRefresh, filter_confusions, filter_probe
from kerastransfer.models import mobilenet_v2_classifier, small_cnn

_CHILD = """
import json, resource, sys
import numpy as np, keras, psutil, tensorflow as tf
import kerastransfer  # registers BPAModel
model = keras.saving.load_model(sys.argv[1])
arrays = np.load(sys.argv[2])
data = tf.data.Dataset.from_tensor_slices((arrays["x"], arrays["y"])).batch(int(sys.argv[4]))
if sys.argv[3] == "eval":
    run = lambda d: model.network.predict(d, verbose=0)
else:
    run = model.compute_gamma
run(data.take(1))
before = psutil.Process().memory_info().rss
run(data)
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before))
"""

RSS_SOURCE = (
    "RSS high-water (resource.getrusage) above the RSS before the pass, each pass in a fresh "
    "process"
)


def _child_peaks(model, x, y, batch_size):
    """Peak RSS growth of an evaluation pass and of a refresh, each in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        model_path, data_path = os.path.join(tmp, "bpa.keras"), os.path.join(tmp, "data.npz")
        model.save(model_path)
        np.savez(data_path, x=x, y=y)
        return [
            run_json(
                [sys.executable, "-c", _CHILD, model_path, data_path, kind, str(batch_size)],
                timeout=600,
            )
            for kind in ("eval", "refresh")
        ]


def _naive_confusions(probe, dataset):
    """The baseline: d full forward passes per batch (whole network, one mask each)."""
    d, c = probe.num_filters, probe.num_classes

    @tf.function
    def step(x, y, k):
        labels = probe.labels(y)
        split, *skips = tf.nest.flatten(probe.below(x, training=False))
        mask = tf.reshape(tf.one_hot(k, d, dtype=split.dtype), [1] * (split.shape.rank - 1) + [d])
        scores = probe.above([split * mask] + skips, training=False)
        preds = tf.argmax(scores, axis=-1, output_type=tf.int32)
        return tf.math.confusion_matrix(labels, preds, num_classes=c, dtype=tf.int32)

    total = np.zeros((d, c, c), np.int64)
    for x, y in dataset:
        for k in range(d):
            total[k] += step(x, y, tf.constant(k)).numpy()
    return total


def _load(args):
    shape = (args.image_size, args.image_size, 3) if args.model == "mobilenet_v2" else None
    if args.data.startswith("synthetic"):
        rng = np.random.default_rng(0)
        y = (np.arange(args.samples or 512) % 10).astype("int64")
        x = rng.uniform(0, 255, (len(y), 28, 28, 1)).astype("float32")
        if shape is not None:
            x = np.concatenate(
                [np.asarray(to_image_shape(x[i : i + 256], shape)) for i in range(0, len(x), 256)]
            )
        return x.astype("float32"), y, 10
    data = load_dataset(args.data, validation_split=0.0, image_shape=shape)
    keep = np.arange(data.size("train"))
    if args.samples:  # a shuffled (seeded) subset: the split may be sorted by class
        keep = np.sort(np.random.default_rng(0).permutation(len(keep))[: args.samples])
    # Only the examples kept are read, converted to the model's input, 256 at a time.
    chunks = [data.take("train", keep[i : i + 256]) for i in range(0, len(keep), 256)]
    x, y = (np.concatenate(parts) for parts in zip(*chunks))
    return x.astype("float32"), y.astype("int64"), data.info.num_classes


def _builder(args, input_shape, num_classes):
    if args.model == "mobilenet_v2":
        weights = None if args.weights == "none" else args.weights

        def build():
            keras.utils.set_random_seed(0)
            return mobilenet_v2_classifier(input_shape, num_classes, weights=weights)

        return build
    filters = args.filters

    def build():
        keras.utils.set_random_seed(0)
        return small_cnn(input_shape, num_classes, filters=filters, dense=args.dense)

    return build


def _transfer_times(args, build, x, y, compile_):
    """Wall time of a whole transfer (`--transfer-epochs` epochs, tracing included): plain
    fine-tuning vs BPA with `GammaRefresh` at its defaults (every epoch, stratified sample)."""

    def dataset():
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size).prefetch(2)

    times = {"plain": [], "bpa": []}
    kwargs = {}
    if args.samples_per_class is not None:
        kwargs["samples_per_class"] = args.samples_per_class or None  # 0: the whole set
    epochs = args.transfer_epochs
    for _ in range(args.transfer_repeats):  # interleaved, fastest kept
        plain = compile_(build())
        start = time.perf_counter()
        plain.fit(dataset(), epochs=epochs, verbose=0)
        times["plain"].append(time.perf_counter() - start)
        bpa = compile_(BPAModel(build(), split_layers=args.split, gamma=args.gamma))
        refresh = GammaRefresh((x, y), every=args.refresh_every, **kwargs)
        start = time.perf_counter()
        bpa.fit(dataset(), epochs=epochs, verbose=0, callbacks=[refresh])
        times["bpa"].append(time.perf_counter() - start)
    return min(times["plain"]), min(times["bpa"]), refresh.samples_per_class


def run(args):
    x, y, num_classes = _load(args)
    build = _builder(args, x.shape[1:], num_classes)

    def dataset():
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size).prefetch(2)

    def compile_(model):
        model.compile(
            optimizer=keras.optimizers.SGD(0.001, momentum=0.9),
            loss="sparse_categorical_crossentropy",
        )
        return model

    plain = compile_(build())
    bpa = compile_(
        BPAModel(
            build(), split_layers=args.split, gamma=args.gamma, masks_per_pass=args.masks_per_pass
        )
    )
    bpa.compute_gamma(dataset())  # real (non-trivial) Gamma during the timed epochs; also traces
    plain_timer, bpa_timer = EpochTimer(), EpochTimer()
    plain_times, bpa_times = [], []
    for model in (plain, bpa):  # first epoch traces: not timed
        model.fit(dataset(), epochs=1, verbose=0, shuffle=False)
    for _ in range(args.epochs):  # interleaved, so drifts in machine load hit both alike
        plain.fit(dataset(), epochs=1, verbose=0, shuffle=False, callbacks=[plain_timer])
        plain_times += plain_timer.times
        bpa.fit(dataset(), epochs=1, verbose=0, shuffle=False, callbacks=[bpa_timer])
        bpa_times += bpa_timer.times
    # The fastest run of each: on a shared machine, other load only ever adds time.
    plain_epoch, bpa_epoch = float(np.min(plain_times)), float(np.min(bpa_times))

    probe = filter_probe(bpa.network, bpa.split_layers[0], args.masks_per_pass)
    tiled = filter_probe(bpa.network, bpa.split_layers[0], pass_strategy="tile")
    subset = dataset().take(args.compare_batches)
    fast = filter_confusions([probe], subset)[0]  # traces
    naive = _naive_confusions(tiled, subset)  # traces
    if not np.array_equal(fast, naive):
        raise RuntimeError("batched masked passes disagree with the naive passes")
    times, _ = interleaved_times(
        {
            "fast": lambda: filter_confusions([probe], subset),
            "naive": lambda: _naive_confusions(tiled, subset),
        },
        args.repeats,
        warmup=False,  # both traced above
    )
    fast_times, naive_times = times["fast"], times["naive"]
    # The whole refresh, every split layer, on the whole set: what the callback runs.
    refresh = min(timed(lambda: bpa.compute_gamma(dataset())) for _ in range(2))

    device = accelerator()
    if device:
        _, eval_peak = accelerator_peak(lambda: bpa.network.predict(dataset(), verbose=0), device)
        _, refresh_peak = accelerator_peak(lambda: bpa.compute_gamma(dataset()), device)
        memory_source = f"tf.config.experimental.get_memory_info('{device}') peak above current"
    else:
        eval_peak, refresh_peak = _child_peaks(bpa, x, y, args.batch_size)
        memory_source = RSS_SOURCE
    plain_transfer, bpa_transfer, per_class = _transfer_times(args, build, x, y, compile_)
    return {
        "model": args.model,
        "transfer_epochs": args.transfer_epochs,
        "refresh_every": args.refresh_every,
        "plain_transfer_s": plain_transfer,
        "bpa_transfer_s": bpa_transfer,
        "transfer_ratio": bpa_transfer / plain_transfer,
        "refresh_samples_per_class": per_class,
        "samples": len(y),
        "split_layers": bpa.split_layers,
        "filters": probe.num_filters,
        "probe_method": probe.pass_strategy,
        "plain_epoch_s": plain_epoch,
        "bpa_epoch_s": bpa_epoch,
        "throughput_ratio": plain_epoch / bpa_epoch,
        "refresh_s": refresh,
        "compare_batches": args.compare_batches,
        "refresh_layer_s": min(fast_times),
        "naive_s": min(naive_times),
        "refresh_vs_naive": min(fast_times) / min(naive_times),
        "refresh_share_of_epoch": refresh / bpa_epoch,
        "eval_peak_bytes": eval_peak,
        "refresh_peak_bytes": refresh_peak,
        "memory_ratio": refresh_peak / max(eval_peak, 1),
        "memory_source": memory_source,
    }


def main(argv=None):
    """Parses `argv` like the command line, prints the report and returns the measurements."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", default="embedded:mnist", help="a load_dataset source, or 'synthetic'"
    )
    parser.add_argument(
        "--samples", type=int, default=None, help="use the first N training samples"
    )
    parser.add_argument(
        "--epochs", type=int, default=4, help="timed epochs per variant (fastest kept)"
    )
    parser.add_argument(
        "--compare-batches",
        type=int,
        default=10,
        help="batches on which the refresh is compared with naive passes",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timings per comparison (fastest kept)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--model",
        default="small_cnn",
        choices=("small_cnn", "mobilenet_v2"),
        help="small_cnn, or mobilenet_v2_classifier (RGB, --image-size)",
    )
    parser.add_argument("--image-size", type=int, default=96, help="mobilenet_v2 input size")
    parser.add_argument(
        "--weights",
        default="imagenet",
        help="mobilenet_v2 weights: imagenet (from $KERAS_HOME/models) or none",
    )
    parser.add_argument(
        "--transfer-epochs",
        type=int,
        default=3,
        help="epochs of the whole-transfer comparison (recipe default: 3)",
    )
    parser.add_argument(
        "--refresh-every",
        type=int,
        default=1,
        help="epochs between Gamma refreshes in the transfer comparison",
    )
    parser.add_argument(
        "--transfer-repeats", type=int, default=1, help="whole transfers per variant (fastest kept)"
    )
    parser.add_argument(
        "--samples-per-class",
        type=int,
        default=None,
        help="GammaRefresh sample in the transfer comparison (default: its "
        "default; 0: the whole set)",
    )
    parser.add_argument(
        "--filters", type=positive_ints(), default=(20, 50), help="small_cnn convolution widths"
    )
    parser.add_argument("--dense", type=int, default=500)
    parser.add_argument(
        "--split", nargs="+", default=None, help="split layers (default: first Conv2D)"
    )
    parser.add_argument("--gamma", default="paper", choices=("paper", "agreement"))
    parser.add_argument("--masks-per-pass", type=int, default=None)
    args = parser.parse_args(argv)
    if min(args.epochs, args.compare_batches, args.repeats) < 1:
        parser.error("--epochs, --compare-batches and --repeats must be at least 1")
    if min(args.transfer_epochs, args.transfer_repeats, args.refresh_every) < 1:
        parser.error("--transfer-epochs, --transfer-repeats and --refresh-every must be at least 1")
    print(command_line(__file__, argv))
    r = run(args)
    mib = 1 / 2**20
    model = (
        f"small_cnn filters={args.filters}"
        if args.model == "small_cnn"
        else (f"mobilenet_v2 {args.image_size}x{args.image_size} weights={args.weights}")
    )
    print(
        f"BPA benchmark: {model}, data={args.data} "
        f"({r['samples']} samples), batch {args.batch_size}, split {r['split_layers']} "
        f"(d={r['filters']}), gamma={args.gamma}"
    )
    print(f"  epoch time: plain fit {r['plain_epoch_s']:.3f} s, BPA fit {r['bpa_epoch_s']:.3f} s")
    print(f"  throughput BPA / plain fit:          {r['throughput_ratio']:.3f}  (goal >= 0.95)")
    print(
        f"  BPA transfer / fine-tuning wall:     {r['transfer_ratio']:.3f}  "
        f"({r['bpa_transfer_s']:.2f} s vs {r['plain_transfer_s']:.2f} s, "
        f"{r['transfer_epochs']} epochs, Gamma refreshed every {r['refresh_every']} epoch(s) on "
        f"{r['refresh_samples_per_class'] or 'all'} images per class, tracing included; "
        "goal <= 1.10)"
    )
    print(
        f"  refresh / naive d full passes:       {r['refresh_vs_naive']:.3f}  "
        f"({r['refresh_layer_s']:.3f} s vs {r['naive_s']:.3f} s on {r['compare_batches']} "
        f"batches, {r['probe_method']} passes; goal <= 0.5)"
    )
    print(
        f"  refresh / one BPA training epoch:    {r['refresh_share_of_epoch']:.3f}  "
        f"({r['refresh_s']:.3f} s; goal <= 0.10)"
    )
    print(
        f"  peak memory refresh / evaluation:    {r['memory_ratio']:.2f}  "
        f"({r['refresh_peak_bytes'] * mib:.1f} MiB vs {r['eval_peak_bytes'] * mib:.1f} MiB; "
        f"{r['memory_source']})"
    )
    return r


if __name__ == "__main__":
    main()
