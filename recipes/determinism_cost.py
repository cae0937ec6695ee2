"""What deterministic TensorFlow ops cost: `fit` throughput with and without op determinism.

Every recipe runs with `tf.config.experimental.enable_op_determinism()` by default (the same
command prints the same table) and takes `--nondeterministic` for speed. Determinism cannot be
switched off inside a process, so this script times the same seeded `fit` of the same model on the
same data in fresh child processes, alternating the two modes `--repeats` times, and prints the
ratio of the medians and whether two deterministic runs gave bit-identical weights:

    python recipes/determinism_cost.py
    python recipes/determinism_cost.py --model mobilenet_v2 --image-size 96 --samples 500
"""

import argparse
import json
import subprocess
import sys

import numpy as np

CHILD = r"""
import hashlib, json, sys, time
import keras, numpy as np, tensorflow as tf
from kerastransfer.data import load_dataset
from kerastransfer.models import mobilenet_v2_classifier, small_cnn

args = json.loads(sys.argv[1])
keras.utils.set_random_seed(0)
if args["deterministic"]:
    tf.config.experimental.enable_op_determinism()
size = args["image_size"]
channels = 3 if args["model"] == "mobilenet_v2" else 1
data = load_dataset("embedded:mnist", image_shape=(size, size, channels), validation_split=0,
                    samples_per_class=args["samples"] // 10, batch_size=64)
if args["model"] == "mobilenet_v2":
    model = mobilenet_v2_classifier((size, size, 3), 10, weights=None)
else:
    model = small_cnn((size, size, 1), 10)
model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy")
model.fit(data.train, epochs=1, verbose=0)  # warm-up: tracing, allocation
start = time.perf_counter()
model.fit(data.train, epochs=args["epochs"], verbose=0)
seconds = time.perf_counter() - start
digest = hashlib.sha1(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest()
print(json.dumps({"seconds": seconds, "weights": digest}))
"""


def run_child(settings, deterministic):
    argv = json.dumps({**settings, "deterministic": deterministic})
    out = subprocess.run(
        [sys.executable, "-c", CHILD, argv], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["small_cnn", "mobilenet_v2"], default="small_cnn")
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--samples", type=int, default=2000, help="training images")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    p.add_argument("--repeats", type=int, default=3, help="child processes per mode")
    args = p.parse_args(argv)
    settings = {k: getattr(args, k) for k in ("model", "image_size", "samples", "epochs")}
    runs = {True: [], False: []}
    for _ in range(args.repeats):
        for deterministic in (True, False):  # alternating, so drifts in machine load cancel
            runs[deterministic].append(run_child(settings, deterministic))
    det = np.median([r["seconds"] for r in runs[True]])
    nondet = np.median([r["seconds"] for r in runs[False]])
    identical = len({r["weights"] for r in runs[True]}) == 1
    print(
        f"{args.model} {args.image_size}x{args.image_size}, {args.samples} images, "
        f"{args.epochs} epochs, median of {args.repeats} processes per mode"
    )
    print("| mode | fit seconds | ratio | weights identical across runs |")
    print("| --- | --- | --- | --- |")
    print(f"| deterministic ops | {det:.2f} | {det / nondet:.3f} | {identical} |")
    nondet_identical = len({r["weights"] for r in runs[False]}) == 1
    print(f"| default ops | {nondet:.2f} | 1.000 | {nondet_identical} |")
    return {"ratio": det / nondet, "identical": identical}


if __name__ == "__main__":
    main()
