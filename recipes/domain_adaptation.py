"""Unsupervised domain adaptation on digits: source only, DAN and DANN, MNIST <-> USPS.

Reproduces the digits rows of Transfer-Learning-Library (Jiang et al.): a LeNet trained from
scratch on labelled source digits and unlabelled target digits (28x28 gray; USPS's 16x16 images
are resized), evaluated on the target test set, for

- source only: the classifier trained on the source alone;
- DAN (Long et al. 2015): + lambda x MK-MMD on the 500-unit bottleneck features and on the
  class probabilities (DAN adapts the task-specific top layers, fc6-fc8 of AlexNet), lambda
  ramped by 2/(1+exp(-10p))-1 to `--dan-weight`;
- DANN (Ganin and Lempitsky 2015): + a domain classifier on the same features behind a gradient
  reversal layer whose scale ramps to `--dann-scale`.

The three rows share the network, optimizer (SGD, momentum 0.9), batches and number of steps.
Target labels are never read in training (`paired_dataset(..., drop_target_labels=True)`); the
reported accuracy is the last epoch's (no model selection on the target).

Run (default: embedded samples, 5000 MNIST / 3000 USPS training images, 3 seeds, a few minutes
on 2 CPU cores):

    python recipes/domain_adaptation.py
    python recipes/domain_adaptation.py --data-root ../shared/data --epochs 20 --seeds 1  # full
    python recipes/domain_adaptation.py --export       # + SavedModel serving raw USPS images

With `--data-root`, MNIST is the full 60000-image `mnist.npz` (or `mnist_small.npz` if that is
all there is) and USPS the full `usps.npz` (7291 / 2007).
"""

import argparse
import functools
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402, F401  (first: TensorFlow's start-up lines stay hidden; see _common)
import keras  # noqa: E402
from _common import (
    RunCache,
    add_common_flags,
    dataset_source,
    fit,
    mean_sd,
    print_table,
    run_recipe,
    set_seeds,
    tag,
)

from kerastransfer.data import load_dataset  # noqa: E402
from kerastransfer.export import export_serving  # noqa: E402
from kerastransfer.losses import MultiKernelMMD  # noqa: E402
from kerastransfer.methods.domain_adaptation import (  # noqa: E402
    AdaptationRamp,
    DANModel,
    DANNModel,
    paired_dataset,
)
from kerastransfer.models import digits_lenet  # noqa: E402

TASKS = {"mnist2usps": ("mnist", "usps"), "usps2mnist": ("usps", "mnist")}
METHODS = ("source_only", "dan", "dann")
# Transfer-Learning-Library, LeNet from scratch, target test accuracy (%).
TLLIB = {
    "source_only": {"mnist2usps": 82.1, "usps2mnist": 74.6},
    "dan": {"mnist2usps": 86.0, "usps2mnist": 89.5},
    "dann": {"mnist2usps": 91.7, "usps2mnist": 95.2},
}
LABELS = {"source_only": "Source only", "dan": "DAN", "dann": "DANN"}
TASK_NAMES = {"mnist2usps": "MNIST->USPS", "usps2mnist": "USPS->MNIST"}
IMAGE_SHAPE = (28, 28, 1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tasks", default="mnist2usps,usps2mnist", help=f"comma-separated, from {sorted(TASKS)}"
    )
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma-separated, from {list(METHODS)}"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per domain per step")
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--dan-weight", type=float, default=5.0, help="DAN lambda (ramp end)")
    parser.add_argument(
        "--dann-scale", type=float, default=1.0, help="DANN gradient reversal lambda (ramp end)"
    )
    parser.add_argument(
        "--dan-layers", default="bottleneck,probabilities", help="comma-separated layers DAN adapts"
    )
    parser.add_argument(
        "--estimate",
        default="quadratic",
        choices=("quadratic", "linear"),
        help="MK-MMD estimate of DAN",
    )
    parser.add_argument(
        "--samples-per-class",
        type=int,
        default=None,
        help="cut both training sets to this many images per class (tests)",
    )
    add_common_flags(parser, seeds=3, epochs=10)
    args = parser.parse_args(argv)
    args.tasks = _choices(args.tasks, TASKS, "--tasks")
    args.methods = _choices(args.methods, METHODS, "--methods")
    if args.dan_weight < 0 or args.dann_scale < 0:
        parser.error("--dan-weight and --dann-scale must be >= 0")
    return args


def _choices(text, allowed, flag):
    picked = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in picked if t not in allowed]
    if bad or not picked:
        raise SystemExit(f"{flag}: unknown {bad or picked}; choose from {sorted(allowed)}")
    return picked


def source_of(name, data_root):
    """Full sets in `--data-root` (`mnist.npz`), else the recipes' shared names."""
    if data_root and os.path.exists(os.path.join(data_root, f"{name}.npz")):
        return os.path.join(data_root, f"{name}.npz")
    return dataset_source(name, data_root)


def load_task(task, args):
    source_name, target_name = TASKS[task]
    kwargs = dict(
        image_shape=IMAGE_SHAPE,
        validation_split=0,
        batch_size=args.batch_size,
        samples_per_class=args.samples_per_class,
    )
    source_data = load_dataset(source_of(source_name, args.data_root), **kwargs)
    target_data = load_dataset(source_of(target_name, args.data_root), **kwargs)
    return source_data, target_data


def build(method, source_data, steps, args):
    """The model of one row, compiled; returns (model to fit, classifier)."""
    classifier = digits_lenet(source_data.info.num_classes)
    if method == "source_only":
        model = classifier
    elif method == "dan":
        model = DANModel(
            classifier,
            args.dan_layers.split(","),
            domain_loss_weight=AdaptationRamp(steps, maximum=args.dan_weight),
            mmd=MultiKernelMMD(estimate=args.estimate),
        )
    else:
        model = DANNModel(
            classifier, "bottleneck", reversal_scale=AdaptationRamp(steps, maximum=args.dann_scale)
        )
    model.compile(
        keras.optimizers.SGD(args.learning_rate, momentum=0.9),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model, classifier


def run(task, method, seed, source_data, target_data, args):
    """Trains one row for one seed; returns (target test accuracy, seconds, classifier)."""
    set_seeds(seed, deterministic=not args.nondeterministic)
    if method == "source_only":
        train = source_data.dataset("train", shuffle=True)
        steps = source_data.size("train") // args.batch_size + 1
    else:
        train = paired_dataset(
            source_data, target_data, batch_size=args.batch_size, seed=seed, drop_target_labels=True
        )
        steps = source_data.size("train") // args.batch_size
    model, classifier = build(method, source_data, steps * args.epochs, args)
    start = time.time()
    fit(
        model,
        (train, None),
        epochs=args.epochs,
        backup_dir=args.backup_dir and os.path.join(args.backup_dir, "domain_adaptation"),
        name=f"{task}_{method}_{seed}",
        verbose=args.verbose,
    )
    seconds = time.time() - start
    accuracy = model.evaluate(target_data.test, verbose=0, return_dict=True)["accuracy"]
    return float(accuracy), seconds, classifier


def main(argv=None):
    args = parse_args(argv)
    cache = RunCache(args.backup_dir, "domain_adaptation", args)
    results = {}
    total = time.time()
    exported = None
    for task in args.tasks:
        source_data, target_data = load_task(task, args)
        print(f"{task}: source {source_data}, target {target_data}", flush=True)
        for method in args.methods:
            for seed in range(args.seeds):
                export_this = (
                    args.export
                    and task == "mnist2usps"
                    and seed == args.seeds - 1
                    and method == ("dann" if "dann" in args.methods else args.methods[-1])
                )
                if export_this:
                    accuracy, seconds, classifier = run(
                        task, method, seed, source_data, target_data, args
                    )
                    exported = _export(classifier, args, task, method)
                else:
                    compute = functools.partial(
                        run, task, method, seed, source_data, target_data, args
                    )
                    accuracy, seconds = cache.get(
                        f"{task}/{method}/{seed}", lambda compute=compute: compute()[:2]
                    )
                results.setdefault((task, method), []).append(accuracy)
                print(
                    f"  {method:<11} seed {seed}: target test accuracy {100 * accuracy:.2f}% "
                    f"({seconds:.0f} s)",
                    flush=True,
                )
    rows = []
    for method in args.methods:
        row = {"method": LABELS[method]}
        for task in args.tasks:
            name = TASK_NAMES[task]
            row[f"{name} ours"] = mean_sd(results[(task, method)], scale=100, digits=1)
            row[f"{name} TLlib"] = f"{TLLIB[method][task]:.1f}"
        rows.append(row)
    columns = ["method"] + [
        f"{TASK_NAMES[task]} {who}" for task in args.tasks for who in ("ours", "TLlib")
    ]
    data = "full sets in " + args.data_root if args.data_root else "embedded samples"
    print_table(
        rows,
        columns,
        title=(
            f"Target test accuracy (%), mean +- sd over {args.seeds} seed(s), {data}, "
            f"{args.epochs} epochs, batch {args.batch_size} per domain"
        ),
    )
    print(f"\nTotal time {time.time() - total:.0f} s")
    if exported:
        print(f"Exported the adapted classifier to {exported} (serve: raw 16x16x1 uint8 USPS)")
    return {f"{t}/{m}": v for (t, m), v in results.items()}


def _export(classifier, args, task, method):
    path = pathlib.Path(args.saved_models) / tag("domain_adaptation", task, method)
    return export_serving(classifier, str(path), raw_shape=(16, 16, 1))


if __name__ == "__main__":
    run_recipe(main)
