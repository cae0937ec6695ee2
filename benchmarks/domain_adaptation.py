"""Step-time ratios of DAN, DANN, CDAN+E and MCC against source-only training, in one run.

Every variant trains the same `digits_lenet(feature_units=256)` (the recipe's network, same
initial weights) with the same optimizer on
the same fixed batches, through `fit`; the rounds are interleaved so that a change in machine
load hits all variants alike, and the fastest round is kept (as `timeit` advises: slower
rounds measure other processes, not the code). Printed ratios:

- DAN step / source-only step, with the quadratic and the linear MK-MMD estimate;
- DANN, CDAN+E (multilinear map of the 256 features and 10 classes, 2560 wide) and MCC step /
  source-only step, the domain classifiers the recipe's (1024, 1024, batch normalisation);
- the same against a "joint" step: plain classifier training on the source and target images
  together (2 x batch images, no domain term). Adaptation runs the network on both domains, so
  it costs about two source-only steps on any implementation; the ratio to the joint step
  isolates what the domain term itself adds.

    python benchmarks/domain_adaptation.py [--batch-size 128] [--steps 20] [--rounds 10]
        [--layers features]
"""

import argparse
import sys

import keras
import numpy as np
import tensorflow as tf
from _measure import command_line, interleaved_times

from kerastransfer.losses import MultiKernelMMD
from kerastransfer.methods.domain_adaptation import CDANModel, DANModel, DANNModel, MCCModel
from kerastransfer.models import digits_lenet

VARIANTS = ("source_only", "joint", "dan_quadratic", "dan_linear", "dann", "cdan_e", "mcc")
DISCRIMINATOR = dict(
    discriminator_units=(1024, 1024), discriminator_dropout=0.0, discriminator_batch_norm=True
)


def _model(variant, layers, seed):
    keras.utils.set_random_seed(seed)
    classifier = digits_lenet(feature_units=256)
    if variant in ("source_only", "joint"):
        model = classifier
    elif variant.startswith("dan_"):
        estimate = variant.split("_")[1]
        model = DANModel(classifier, layers, mmd=MultiKernelMMD(estimate=estimate))
    elif variant == "dann":
        model = DANNModel(classifier, "features", **DISCRIMINATOR)
    elif variant == "cdan_e":
        model = CDANModel(classifier, "features", **DISCRIMINATOR)
    else:
        model = MCCModel(classifier)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy")
    return model


def _data(variant, batch_size, seed):
    rng = np.random.default_rng(seed)
    x_s = rng.integers(0, 256, (batch_size, 28, 28, 1)).astype("float32")
    x_t = rng.integers(0, 256, (batch_size, 28, 28, 1)).astype("float32")
    y_s = rng.integers(0, 10, batch_size).astype("int64")
    if variant == "source_only":
        batch = (x_s, y_s)
    elif variant == "joint":
        batch = (np.concatenate([x_s, x_t]), np.concatenate([y_s, y_s]))
    else:
        batch = ((x_s, x_t), y_s)
    return tf.data.Dataset.from_tensors(batch).repeat()


def measure(batch_size=128, steps=20, rounds=10, layers=("features",), seed=0):
    """Seconds per step of each variant, rounds interleaved, fastest round kept.

    Returns:
        {"wall": {variant: seconds}, "cpu": {variant: seconds}}: wall-clock time, and the
        process's CPU time (all threads), which other processes on a shared machine disturb less.
    """
    models = {v: _model(v, list(layers), seed) for v in VARIANTS}
    data = {v: _data(v, batch_size, seed) for v in VARIANTS}

    def round_of(v):
        return lambda: models[v].fit(data[v], steps_per_epoch=steps, epochs=1, verbose=0)

    # One untimed round first: tracing and first-call costs stay out of the timings.
    wall, cpu = interleaved_times({v: round_of(v) for v in VARIANTS}, rounds)
    return {
        "wall": {v: float(np.min(t)) / steps for v, t in wall.items()},
        "cpu": {v: float(np.min(t)) / steps for v, t in cpu.items()},
    }


def main(argv=None):
    """Measures and prints the ratios; returns {name: ratio}."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128, help="images per domain")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (fastest kept)")
    parser.add_argument("--layers", default="features", help="DAN layers, comma-separated")
    args = parser.parse_args(argv)
    if args.batch_size < 2 or args.steps < 1 or args.rounds < 1:
        parser.error("--batch-size must be >= 2, --steps and --rounds >= 1")
    print(command_line(__file__, argv))
    seconds = measure(args.batch_size, args.steps, args.rounds, args.layers.split(","))
    print(
        f"digits LeNet, batch {args.batch_size} per domain, {args.steps} steps x "
        f"{args.rounds} interleaved rounds (fastest), DAN on {args.layers}"
    )
    print(f"  {'variant':<14} {'wall ms/step':>12} {'cpu ms/step':>12}")
    for v in VARIANTS:
        wall, cpu = 1000 * seconds["wall"][v], 1000 * seconds["cpu"][v]
        print(f"  {v:<14} {wall:12.2f} {cpu:12.2f}")
    ratios = {}
    goals = {"dan_quadratic": 1.3, "dan_linear": 1.1, "dann": 1.3, "cdan_e": None, "mcc": None}
    for clock, suffix in (("wall", ""), ("cpu", " (cpu)")):
        for v, goal in goals.items():
            to_source = seconds[clock][v] / seconds[clock]["source_only"]
            to_joint = seconds[clock][v] / seconds[clock]["joint"]
            ratios[f"{v}/source_only{suffix}"] = to_source
            ratios[f"{v}/joint{suffix}"] = to_joint
            print(
                f"  [{clock}] {v} / source_only = {to_source:.2f}   {v} / joint = "
                f"{to_joint:.2f}" + (f"   (issue goal vs source only <= {goal})" if goal else "")
            )
    return ratios


if __name__ == "__main__":
    main()
