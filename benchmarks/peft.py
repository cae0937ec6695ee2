"""What parameter-efficient fine-tuning costs against full fine-tuning, measured in one run.

One network, `keras.applications.MobileNetV2` (`include_top=False`, `pooling="avg"`) and a new
`Dense(10, softmax)` head named "classifier", built once; every variant starts from its weights
(`apply_*` copy them), is compiled with Adam (1e-4) and sparse categorical cross-entropy, and
trains through `fit` on one fixed in-memory batch of random images, repeated:

- full: every layer trainable (BatchNormalization in training mode);
- lora, dora: `apply_lora` / `apply_dora` with rank `--rank` on every supported layer of the
  backbone (its Conv2D and DepthwiseConv2D layers), the head in `train`; every other layer frozen
  (BatchNormalization in inference mode);
- bitfit: `apply_bitfit(normalization=True)`, the head in `train`. MobileNetV2's convolutions
  have no bias (a BatchNormalization follows each), so its BatchNormalization betas (and gammas)
  are what BitFit can tune; with `normalization=False` only the head would train.

Printed for each variant:

1. trainable parameters: the count, and its share of all the weights of that variant's model
   (`trainable_parameter_count`: BatchNormalization statistics and, for lora and dora, the
   adapter weights included in the total);
2. seconds per training step, wall-clock and the process's CPU time (all threads; other processes
   on a shared machine disturb it less): `--steps` steps of `fit` per round, the variants' rounds
   taking turns (`--rounds` of them, after an untimed first round that traces the step), the
   fastest round kept;
3. peak training memory. On an accelerator, TensorFlow's allocator
   (`tf.config.experimental.get_memory_info`): what the first round leaves allocated (the
   optimizer's state) plus the peak of a second round above that, i.e. the optimizer state,
   activations, gradients and temporaries, the weights left out. On CPU, where TensorFlow keeps
   no such statistics, each variant runs in a fresh process (`--child VARIANT` of this script)
   and the figure is the growth of its resident set (sampled every 2 ms) over two training rounds
   above the resident set once the model is built and compiled: an upper bound, since it also
   holds the tracing of the training step, the first-call set-up of `fit` and whatever the
   allocator keeps;

and the ratios of each variant to full: step time (wall, CPU) and peak memory.

The settings are those of the `kerastransfer fit` table (MobileNetV2 at 96x96, batch 32). The
backbone has `weights=None`: a step's cost does not depend on the weights' values, and nothing is
loaded. On a GPU machine the same command measures on the GPU: the step runs there (with Keras's
default `jit_compile="auto"`, i.e. XLA where Keras allows it, as `fit` itself) and the memory
column is the accelerator's allocator peak.

    python benchmarks/peft.py [--batch-size 32] [--steps 10] [--rounds 5] [--image-size 96]
        [--alpha 1.0] [--rank 8] [--variants full,lora,dora,bitfit] [--no-memory]
"""

import argparse
import json
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

from kerastransfer.methods.peft import (
    apply_bitfit,
    apply_dora,
    apply_lora,
    trainable_parameter_count,
)

VARIANTS = ("full", "lora", "dora", "bitfit")
CLASSES = 10
HEAD = "classifier"
MAX_RANK = 9  # a 3x3 depthwise filter has 9 values: no layer of the backbone takes more


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (fastest kept)")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2 width")
    parser.add_argument("--rank", type=int, default=8, help="LoRA and DoRA rank")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated, of " + ", ".join(VARIANTS) + " (full, the reference, always runs)",
    )
    parser.add_argument("--no-memory", action="store_true", help="leave the peak memory column out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.steps < 1 or args.rounds < 1:
        parser.error("--batch-size, --steps and --rounds must be >= 1")
    if args.image_size < 32 or not args.alpha > 0:
        parser.error("--image-size must be >= 32 and --alpha > 0 (MobileNetV2)")
    if not 1 <= args.rank <= MAX_RANK:
        parser.error(f"--rank must be in 1..{MAX_RANK} (a 3x3 depthwise kernel takes at most 9)")
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        parser.error(f"--variants: unknown {', '.join(unknown) or '(none given)'}; of {VARIANTS}")
    args.variants = [v for v in VARIANTS if v == "full" or v in names]
    return args


def base_model(args):
    """MobileNetV2 (random weights, seeded) and a new Dense head, in one functional model."""
    keras.utils.set_random_seed(args.seed)
    size = args.image_size
    backbone = keras.applications.MobileNetV2(
        input_shape=(size, size, 3),
        alpha=args.alpha,
        include_top=False,
        weights=None,
        pooling="avg",
    )
    inputs = keras.Input((size, size, 3), name="image")
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name=HEAD)(backbone(inputs))
    return keras.Model(inputs, outputs, name="mobilenet_v2_classifier")


def variant_models(args, variants):
    """variant -> compiled model, all from the same initial weights."""
    base = base_model(args)
    models = {}
    for v in variants:  # every variant is made before anything trains the base (= full)
        if v == "full":
            models[v] = base
        elif v == "lora":
            models[v] = apply_lora(base, rank=args.rank, seed=args.seed, train=[HEAD])
        elif v == "dora":
            models[v] = apply_dora(base, rank=args.rank, seed=args.seed, train=[HEAD])
        else:
            models[v] = apply_bitfit(base, normalization=True, train=[HEAD])
    for model in models.values():
        model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    return models


def batches(args):
    """One fixed batch of random images in [-1, 1] (MobileNetV2's range) and labels, repeated."""
    rng = np.random.default_rng(args.seed)
    size = args.image_size
    images = rng.uniform(-1, 1, (args.batch_size, size, size, 3)).astype("float32")
    labels = rng.integers(0, CLASSES, args.batch_size).astype("int64")
    return tf.data.Dataset.from_tensors((images, labels)).repeat()


def training_rounds(models, data, steps):
    """variant -> a no-argument callable running `steps` steps of `fit`."""

    def round_of(model):
        return lambda: model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)

    return {v: round_of(model) for v, model in models.items()}


def _accelerator_peaks(rounds, device):
    """variant -> bytes: what the first round leaves allocated plus the peak of a second round
    above that (the weights, allocated before, left out)."""
    peaks = {}
    for v, fn in rounds.items():
        before = tf.config.experimental.get_memory_info(device)["current"]
        fn()  # the untimed first round: optimizer state made, step traced
        kept = tf.config.experimental.get_memory_info(device)["current"] - before
        peaks[v] = kept + accelerator_peak(fn, device)[1]
    return peaks


def _child_argv(argv):
    """`argv` without `--child VARIANT` and `--no-memory`, for a child process."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--child":
            skip = True
        elif not a.startswith("--child=") and a != "--no-memory":
            out.append(a)
    return out


def _child_peaks(argv, variants):
    """variant -> bytes: RSS growth of two training rounds, each variant in a fresh process."""
    child = _child_argv(argv)
    return {
        v: run_json([sys.executable, __file__, *child, "--child", v], timeout=1800)["peak_bytes"]
        for v in variants
    }


def measure(args, argv=()):
    """Trainable parameters, seconds per step and peak training memory of each variant.

    Returns:
        {"params": {variant: (trainable, total)}, "wall": {variant: s}, "cpu": {variant: s},
        "memory": {variant: bytes} (empty with `--no-memory`), "device": "GPU:0" or "CPU",
        "memory_source": str}
    """
    models = variant_models(args, args.variants)
    params = {v: trainable_parameter_count(m) for v, m in models.items()}
    rounds = training_rounds(models, batches(args), args.steps)
    device = accelerator()
    memory, source, warm = {}, "off", False
    if not args.no_memory and device:
        memory = _accelerator_peaks(rounds, device)
        source = f"{device} allocator: optimizer state + peak of a training round"
        warm = True
    wall, cpu = interleaved_times(rounds, args.rounds, warmup=not warm)
    if not args.no_memory and not device:
        # Children after the timings: while one runs, nothing of this process is timed.
        memory = _child_peaks(argv, args.variants)
        source = "CPU: RSS growth of 2 training rounds in a fresh process (upper bound: tracing in)"
    return {
        "params": params,
        "wall": {v: float(np.min(t)) / args.steps for v, t in wall.items()},
        "cpu": {v: float(np.min(t)) / args.steps for v, t in cpu.items()},
        "memory": memory,
        "device": device or "CPU",
        "memory_source": source,
    }


def _run_child(args):
    """The `--child VARIANT` mode: one variant's RSS growth over two rounds, printed as JSON."""
    models = variant_models(args, [args.child])
    fn = training_rounds(models, batches(args), args.steps)[args.child]
    print(json.dumps({"variant": args.child, "peak_bytes": rss_growth(fn, calls=2)}))


def main(argv=None):
    """Measures and prints the table; returns {"V/full step", "V/full step (cpu)",
    "V/full memory": ratio} for each variant V other than full (memory left out with
    `--no-memory`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.child:
        _run_child(args)
        return None
    print(command_line(__file__, argv))
    r = measure(args, argv)
    size = args.image_size
    print(
        f"MobileNetV2 {size}x{size} (alpha {args.alpha}, weights=None) + Dense({CLASSES}) head, "
        f"batch {args.batch_size}, Adam 1e-4, on {r['device']}; {args.steps} steps x "
        f"{args.rounds} interleaved rounds (fastest kept); LoRA/DoRA rank {args.rank}; "
        f"memory: {r['memory_source']}"
    )
    print(
        "| variant | trainable params | % of weights | wall ms/step | cpu ms/step | peak MB "
        "| step / full (wall) | step / full (cpu) | memory / full |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = {}
    memory = r["memory"]
    for v in args.variants:
        trainable, total = r["params"][v]
        wall_ratio = r["wall"][v] / r["wall"]["full"]
        cpu_ratio = r["cpu"][v] / r["cpu"]["full"]
        peak, memory_ratio = "-", "-"
        if memory:
            peak = f"{memory[v] / 1e6:,.0f}"
            mem_ratio = memory[v] / max(memory["full"], 1)
            memory_ratio = f"{mem_ratio:.2f}"
        if v != "full":
            ratios[f"{v}/full step"] = wall_ratio
            ratios[f"{v}/full step (cpu)"] = cpu_ratio
            if memory:
                ratios[f"{v}/full memory"] = mem_ratio
        print(
            f"| {v} | {trainable:,} | {100 * trainable / total:.2f} | "
            f"{1e3 * r['wall'][v]:.1f} | {1e3 * r['cpu'][v]:.1f} | {peak} | "
            f"{wall_ratio:.2f} | {cpu_ratio:.2f} | {memory_ratio} |"
        )
    return ratios


if __name__ == "__main__":
    main()
