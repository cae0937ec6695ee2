"""Unsupervised domain adaptation on digits, MNIST <-> USPS: source only, DAN, DANN, CDAN, MCC.

Reproduces the digits rows of Transfer-Learning-Library (Jiang et al.): TLlib's digits
classifiers (a LeNet from scratch; for the adaptation rows then a 256-unit bottleneck with batch
normalisation, the layer `features`, `digits_lenet(feature_units=256)`) trained on labelled
source digits and unlabelled target digits (28x28 gray; USPS's 16x16 images are resized),
evaluated on the target test set, for

- source only: the classifier trained on the source alone;
- DAN (Long et al. 2015): + lambda x MK-MMD on `features` and on the class probabilities,
  lambda ramped by 2/(1+exp(-10p))-1 to `--dan-weight`;
- DANN (Ganin and Lempitsky 2015): + a domain classifier on `features` behind a gradient
  reversal layer whose scale ramps to `--reversal-scale`;
- CDAN and CDAN+E (Long et al. 2018): the domain classifier reads the multilinear map of
  `features` and the predictions (+E: examples weighted by certainty);
- MCC (Jin et al. 2020): + the minimum class confusion loss of the target predictions;
- DANN + MCC, CDAN+E + MCC: both terms.

The adaptation rows share the network; all rows share the optimizer (SGD, Nesterov momentum
0.9, weight decay 1e-3, the rate lr0 (1 + 0.001 t)^-0.75 with TLlib's lr0: 0.01 MNIST->USPS,
0.1 USPS->MNIST), batches and number of steps; the domain classifiers are TLlib's (1024, 1024
units, batch normalisation). Target labels are never read in training (`paired_dataset(...,
drop_target_labels=True)`); the reported accuracy is the last epoch's (no model selection on
the target).

Run (default: embedded samples, 5000 MNIST / 3000 USPS training images, 3 seeds):

    python recipes/domain_adaptation.py
    python recipes/domain_adaptation.py --methods dann,cdan_e --tasks usps2mnist --seeds 1
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
    CDANModel,
    DANModel,
    DANNModel,
    MCCModel,
    paired_dataset,
)
from kerastransfer.models import digits_lenet  # noqa: E402
from kerastransfer.optimizers import InverseDecay  # noqa: E402

TASKS = {"mnist2usps": ("mnist", "usps"), "usps2mnist": ("usps", "mnist")}
METHODS = ("source_only", "dan", "dann", "cdan", "cdan_e", "mcc", "dann_mcc", "cdan_e_mcc")
# Transfer-Learning-Library's published digits results (LeNet from scratch, batch 128,
# 20 x 2500 iterations), target test accuracy (%).
TLLIB = {
    "source_only": {"mnist2usps": 82.1, "usps2mnist": 74.6},
    "dan": {"mnist2usps": 86.0, "usps2mnist": 89.5},
    "dann": {"mnist2usps": 91.7, "usps2mnist": 95.2},
    "cdan_e": {"mnist2usps": 96.0, "usps2mnist": 97.7},
    "mcc": {"mnist2usps": 95.1, "usps2mnist": 94.6},
}
LABELS = {
    "source_only": "Source only",
    "dan": "DAN",
    "dann": "DANN",
    "cdan": "CDAN",
    "cdan_e": "CDAN+E",
    "mcc": "MCC",
    "dann_mcc": "DANN + MCC",
    "cdan_e_mcc": "CDAN+E + MCC",
}
# TLlib's initial learning rates for the two tasks (its digits scripts).
LEARNING_RATES = {"mnist2usps": 0.01, "usps2mnist": 0.1}
DISCRIMINATOR = dict(
    discriminator_units=(1024, 1024), discriminator_dropout=0.0, discriminator_batch_norm=True
)
TASK_NAMES = {"mnist2usps": "MNIST->USPS", "usps2mnist": "USPS->MNIST"}
IMAGE_SHAPE = (28, 28, 1)
REVERSAL_SCALE = 1.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tasks", default="mnist2usps,usps2mnist", help=f"comma-separated, from {sorted(TASKS)}"
    )
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma-separated, from {list(METHODS)}"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per domain per step")
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="initial rate of every row (default: TLlib's, 0.01 MNIST->USPS, 0.1 USPS->MNIST)",
    )
    parser.add_argument("--dan-weight", type=float, default=5.0, help="DAN lambda (ramp end)")
    parser.add_argument(
        "--reversal-scale",
        type=float,
        default=REVERSAL_SCALE,
        help="DANN and CDAN gradient reversal lambda (ramp end)",
    )
    parser.add_argument("--mcc-weight", type=float, default=1.0, help="MCC loss weight")
    parser.add_argument("--temperature", type=float, default=2.5, help="MCC temperature")
    parser.add_argument(
        "--dan-layers", default="features,probabilities", help="comma-separated layers DAN adapts"
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
    if min(args.dan_weight, args.reversal_scale, args.mcc_weight) < 0:
        parser.error("--dan-weight, --reversal-scale and --mcc-weight must be >= 0")
    if not args.temperature > 0:
        parser.error("--temperature must be > 0")
    if args.learning_rate is not None and not args.learning_rate > 0:
        parser.error("--learning-rate must be > 0")
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


def build(method, task, source_data, steps, args):
    """The model of one row, compiled; returns (model to fit, classifier)."""
    # TLlib's classifiers: its source-only row has no bottleneck; the adaptation rows read the
    # batch-normalised bottleneck `features`.
    features = None if method == "source_only" else 256
    classifier = digits_lenet(source_data.info.num_classes, feature_units=features)
    ramp = functools.partial(AdaptationRamp, steps)
    mcc = dict(mcc_weight=args.mcc_weight, temperature=args.temperature)
    if method == "source_only":
        model = classifier
    elif method == "dan":
        model = DANModel(
            classifier,
            args.dan_layers.split(","),
            domain_loss_weight=ramp(maximum=args.dan_weight),
            mmd=MultiKernelMMD(estimate=args.estimate),
        )
    elif method == "mcc":
        model = MCCModel(classifier, **mcc)
    elif method in ("dann", "dann_mcc"):
        model = DANNModel(
            classifier,
            "features",
            reversal_scale=ramp(maximum=args.reversal_scale),
            **DISCRIMINATOR,
            **(mcc if method == "dann_mcc" else {}),
        )
    else:
        model = CDANModel(
            classifier,
            "features",
            reversal_scale=ramp(maximum=args.reversal_scale),
            entropy_conditioning=method != "cdan",
            **DISCRIMINATOR,
            **(mcc if method == "cdan_e_mcc" else {}),
        )
    rate = args.learning_rate or LEARNING_RATES[task]
    model.compile(
        keras.optimizers.SGD(InverseDecay(rate), momentum=0.9, nesterov=True, weight_decay=1e-3),
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
    model, classifier = build(method, task, source_data, steps * args.epochs, args)
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
            published = TLLIB.get(method, {}).get(task)
            row[f"{name} TLlib"] = "-" if published is None else f"{published:.1f}"
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
            f"{args.epochs} epochs, batch {args.batch_size} per domain; TLlib: published, "
            "batch 128, 20 x 2500 iterations"
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
