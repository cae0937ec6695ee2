"""Benchmark of SpotTune against plain fine-tuning, measured in one run on one model and batch.

Prints, for MobileNetV2 (every inverted residual block with a skip as a SpotTune block, the
default conv policy) and the plain network it was built from, on the same batch:

1. SpotTune training step / fine-tuning step (training computes both copies of every block);
2. SpotTune inference / plain inference (goal <= 1.25): the full SpotTune model (policy + routed
   network) with the policy's own decisions, and with a forced 50/50 split of the batch at every
   block (the routing worst case);
3. the authors' way, both copies computed and masked at inference / plain inference;
4. peak memory of each of those passes. On an accelerator it is TensorFlow's allocator peak
   (`tf.config.experimental.get_memory_info`); on CPU, where TensorFlow keeps no such statistics,
   each pass runs in a fresh process and the figure is the growth of its resident set, sampled
   every 2 ms, above the resident set before the pass.

Each time is the median of `--repeats` calls of a compiled `tf.function` (no XLA, for both) after
a warm-up call, on one batch of random images; the passes take turns, so changes in machine load
hit all of them alike.

    python benchmarks/spottune.py [--image-size 96] [--batch-size 32] [--alpha 1.0]
        [--weights imagenet] [--repeats 10] [--memory auto|off]
"""

import argparse
import json
import statistics
import sys

import keras
import numpy as np
import tensorflow as tf
from _measure import (
    accelerator,
    accelerator_peak,
    command_line,
    interleaved_times,
    rss_growth,
    run_json,
)

from kerastransfer.methods.spottune import SpotTuneModel

MODES = (
    "plain_train",
    "spottune_train",
    "plain_infer",
    "spottune_infer",
    "spottune_split",
    "spottune_masked",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        choices=("mobilenet_v2", "tiny"),
        default="mobilenet_v2",
        help="tiny: a 2-block residual CNN (smoke tests)",
    )
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2 width")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument(
        "--weights", default=None, help="None (random), 'imagenet' or a weights file of MobileNetV2"
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--memory", choices=("auto", "off"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=MODES, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch_size < 2 or args.repeats < 1 or args.image_size < 32:
        parser.error("need --batch-size >= 2, --repeats >= 1 and --image-size >= 32")
    return args


def build(args):
    """The plain MobileNetV2 classifier, its SpotTune model (both compiled) and one batch."""
    keras.utils.set_random_seed(args.seed)
    size = args.image_size
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(inputs)
    blocks = None
    if args.model == "tiny":
        x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="stem")(x)
        blocks = [(f"b{b}_conv1", f"b{b}_add") for b in (1, 2)]
        for b in (1, 2):
            h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name=f"b{b}_conv1")(x)
            h = keras.layers.Conv2D(8, 3, padding="same", name=f"b{b}_conv2")(h)
            x = keras.layers.Add(name=f"b{b}_add")([x, h])
        features = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        features = keras.applications.MobileNetV2(
            input_tensor=x, include_top=False, alpha=args.alpha, weights=args.weights, pooling="avg"
        ).output
    outputs = keras.layers.Dense(args.classes, activation="softmax", name="classifier")(features)
    plain = keras.Model(inputs, outputs, name="plain")
    spottune = SpotTuneModel.from_model(plain, blocks, seed=args.seed)
    for model in (plain, spottune):
        model.compile(
            keras.optimizers.SGD(0.01, momentum=0.9),
            "sparse_categorical_crossentropy",
            jit_compile=False,
        )
    rng = np.random.default_rng(args.seed)
    images = tf.constant(rng.uniform(0, 255, (args.batch_size, size, size, 3)), tf.float32)
    labels = tf.constant(rng.integers(0, args.classes, args.batch_size))
    return plain, spottune, images, labels


def step_functions(plain, spottune, images, labels, seed=0):
    """name -> a no-argument callable running one compiled pass on the batch."""
    half = np.zeros((images.shape[0], spottune.num_blocks), "float32")
    half[: images.shape[0] // 2] = 1.0
    split = tf.constant(np.random.default_rng(seed).permuted(half, axis=0))

    @tf.function(jit_compile=False)
    def plain_infer(x):
        return plain(x, training=False)

    @tf.function(jit_compile=False)
    def spottune_infer(x):
        return spottune(x, training=False)

    @tf.function(jit_compile=False)
    def spottune_split(x):
        spottune.policy(x, training=False)  # the policy still runs; its choice is replaced
        return spottune.call_with_decisions(x, split)

    def spottune_masked():
        for block in spottune.blocks:
            block.routing = False
        try:
            return masked_fn(images)
        finally:
            for block in spottune.blocks:
                block.routing = True

    masked_fn = tf.function(lambda x: spottune(x, training=False), jit_compile=False)
    return {
        "plain_train": lambda: plain.train_on_batch(images, labels),
        "spottune_train": lambda: spottune.train_on_batch(images, labels),
        "plain_infer": lambda: plain_infer(images).numpy(),
        "spottune_infer": lambda: spottune_infer(images).numpy(),
        "spottune_split": lambda: spottune_split(images).numpy(),
        "spottune_masked": lambda: np.asarray(spottune_masked()),
    }


def _child_peaks(argv):
    """Peak RSS growth of each pass, each in a fresh process running this script."""
    return {
        mode: run_json([sys.executable, __file__, *argv, "--child", mode], timeout=900)
        for mode in MODES
    }


def main(argv=None):
    """Runs the benchmark; prints and returns the ratios, times (s) and peaks (bytes)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    plain, spottune, images, labels = build(args)
    fns = step_functions(plain, spottune, images, labels, args.seed)
    if args.child:  # one pass, in a fresh process: its peak RSS growth, warm-up call included
        print(json.dumps(rss_growth(fns[args.child], calls=2)))
        return None
    print(command_line(__file__, argv))
    wall, _ = interleaved_times(fns, args.repeats)
    times = {name: statistics.median(t) for name, t in wall.items()}
    decisions = spottune.decisions(images).numpy()
    device = accelerator()
    if args.memory == "off":
        peaks, source = {}, "off"
    elif device:
        peaks = {mode: accelerator_peak(fns[mode], device)[1] for mode in MODES}
        source = "tf.config.experimental.get_memory_info (GPU allocator peak)"
    else:
        peaks = _child_peaks([a for a in argv if a != "--child"])
        source = "RSS growth in a fresh process per pass (psutil, sampled every 2 ms)"
    result = {
        "device": "GPU" if device else "CPU",
        "model": args.model,
        "blocks": spottune.num_blocks,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "policy_finetuned_fraction": float(decisions.mean()),
        "times_s": times,
        "train_ratio": times["spottune_train"] / times["plain_train"],
        "inference_ratio": times["spottune_infer"] / times["plain_infer"],
        "split_inference_ratio": times["spottune_split"] / times["plain_infer"],
        "masked_inference_ratio": times["spottune_masked"] / times["plain_infer"],
        "peaks_bytes": peaks,
        "memory_source": source,
    }
    if peaks:
        result["train_memory_ratio"] = peaks["spottune_train"] / max(peaks["plain_train"], 1)
        result["inference_memory_ratio"] = peaks["spottune_infer"] / max(peaks["plain_infer"], 1)
    _print(result)
    return result


def _print(r):
    print(
        f"SpotTune benchmark: {r['model']} {r['image_size']}x{r['image_size']}, batch "
        f"{r['batch_size']}, {r['blocks']} SpotTune blocks, {r['device']}; policy fine-tunes "
        f"{r['policy_finetuned_fraction']:.0%} of block decisions on this batch"
    )
    t = r["times_s"]
    rows = [
        (
            "training step SpotTune / fine-tuning",
            r["train_ratio"],
            t["spottune_train"],
            t["plain_train"],
            "-",
        ),
        (
            "inference SpotTune (policy) / plain",
            r["inference_ratio"],
            t["spottune_infer"],
            t["plain_infer"],
            "<= 1.25",
        ),
        (
            "inference SpotTune (50/50 split) / plain",
            r["split_inference_ratio"],
            t["spottune_split"],
            t["plain_infer"],
            "<= 1.25",
        ),
        (
            "inference both copies + mask / plain",
            r["masked_inference_ratio"],
            t["spottune_masked"],
            t["plain_infer"],
            "(authors' code >= 2)",
        ),
    ]
    print(f"| {'measure':<42} | {'ratio':>6} | {'ours ms':>8} | {'plain ms':>8} | goal |")
    for name, ratio, ours, plain, goal in rows:
        print(f"| {name:<42} | {ratio:>6.2f} | {ours * 1e3:>8.1f} | {plain * 1e3:>8.1f} | {goal} |")
    if r["peaks_bytes"]:
        p = r["peaks_bytes"]
        print(
            f"peak memory ({r['memory_source']}), MiB: "
            + ", ".join(f"{mode} {p[mode] / 2**20:.1f}" for mode in MODES)
        )
        print(
            f"peak memory ratios: training SpotTune / fine-tuning "
            f"{r['train_memory_ratio']:.2f}; inference SpotTune / plain "
            f"{r['inference_memory_ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
