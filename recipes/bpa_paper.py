"""Distributed deep transfer learning by basic probability assignment: Tables 1-3.

Reproduces the experiments of A. Shahriari, "Distributed Deep Transfer Learning by Basic
Probability Assignment" (2017), with a corrected Dempster normaliser and a second Gamma functional
(`kerastransfer.methods.bpa.dempster_shafer`):

1. Table 1: a primary network per dataset (cached in `saved_models/primary/`), its train and
   test error.
2. Tables 2-3: for each (primary, target) pair, transfer the primary network to the target data
   - standard:  bottom layers frozen (`trainable=False`), the top retrained;
   - fine-tune: every layer trained, plain backpropagation (Gamma = 1: isolates the effect of
                Gamma, a control the paper does not report);
   - BPA:       distributed backpropagation: the gradients of filter k of the split layer (the
                first Conv2D, 20 filters as in the paper's MNIST network) scaled by Gamma_k,
                computed from the single-filter networks' confusion matrices, refreshed every
                epoch; one row per Gamma functional (`paper`: ||Theta||_2; `agreement`).
   Every transfer starts with a warm-up of the new head with the body frozen, so the
   single-filter networks' confusion matrices mean something.
   Several seeds; the table gives mean +- standard deviation of train and test error (%).

The paper's pairs need SVHN and CIFAR through tensorflow-datasets (`--pairs mnist:svhn_cropped,
svhn_cropped:mnist,cifar10:cifar100,cifar100:cifar10,mnist:cifar10,cifar10:mnist,
svhn_cropped:cifar100,cifar100:svhn_cropped --image-shape 32,32,3`; gray data is repeated to RGB,
RGB data converted to gray, as the paper does). Offline, the same recipe runs on MNIST <-> USPS and
MNIST <-> Fashion-MNIST from the embedded samples (default: the MNIST <-> USPS pairs, ~4 minutes
on 2 CPU cores; add the Fashion-MNIST pairs with `--pairs`):

    python recipes/bpa_paper.py
    python recipes/bpa_paper.py \
        --pairs mnist:usps,usps:mnist,mnist:fashion_mnist,fashion_mnist:mnist

`--data-root ../shared/data` uses the larger `.npz` files there instead (`mnist_small.npz`,
`usps.npz`, `fashion_mnist_small.npz`); any source `load_dataset` takes (an `.npz` path, an image
folder, a tensorflow-datasets name) works as a pair member. `--export` writes each pair's BPA
model as a SavedModel into `saved_models/bpa_<primary>_to_<target>/`. `--backup-dir DIR` makes
every fit resumable and keeps finished runs, so a re-run after a kill skips them. Seeded and
deterministic by default: the same command prints the same table.
"""

import argparse
import os
import time

import _common  # noqa: F401  (first: TensorFlow's start-up lines stay hidden; see _common)
import keras
import numpy as np
from _common import (
    RunCache,
    add_common_flags,
    atomic_save,
    fit,
    load,
    primary_path,
    run_recipe,
    set_seeds,
    tag,
    train_or_load_primary,
)

from kerastransfer import surgery
from kerastransfer.export import export_serving
from kerastransfer.fine_tuning.command_line import positive_ints
from kerastransfer.methods.bpa import BPAModel, GammaRefresh
from kerastransfer.models import mobilenet_v2_classifier, small_cnn

OFFLINE_PAIRS = "mnist:usps,usps:mnist"

# The paper's published errors (%), train / test.
PAPER_TABLE1 = {
    "MNIST": (0.04, 0.55),
    "SVHN": (0.13, 3.81),
    "CIFAR-10": (0.01, 19.40),
    "CIFAR-100": (0.17, 50.90),
}
PAPER_TABLES23 = [  # primary, target, standard (train, test), distributed (train, test)
    ("MNIST", "SVHN", (0.01, 29.57), (0.24, 5.18)),
    ("SVHN", "MNIST", (0.35, 1.04), (0.16, 0.46)),
    ("CIFAR-10", "CIFAR-100", (0.53, 68.44), (0.29, 54.32)),
    ("CIFAR-100", "CIFAR-10", (0.11, 24.08), (0.05, 18.24)),
    ("MNIST", "CIFAR-10", (0.43, 28.92), (0.25, 20.85)),
    ("CIFAR-10", "MNIST", (0.44, 2.37), (0.23, 0.95)),
    ("SVHN", "CIFAR-100", (0.71, 89.31), (0.46, 61.10)),
    ("CIFAR-100", "SVHN", (0.01, 12.18), (0.28, 7.25)),
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--pairs", default=OFFLINE_PAIRS, help="comma-separated primary:target dataset pairs"
    )
    p.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir")
    p.add_argument(
        "--image-shape",
        type=positive_ints(3),
        default=(28, 28, 1),
        help="network input, e.g. 32,32,3 for the paper's pairs",
    )
    p.add_argument(
        "--samples-per-class", type=int, default=None, help="target training images per class"
    )
    p.add_argument("--primary-epochs", type=int, default=4)
    p.add_argument("--warmup-epochs", type=int, default=1, help="new head only, body frozen")
    p.add_argument(
        "--frozen-levels", type=int, default=2, help="levels frozen by standard transfer"
    )
    p.add_argument(
        "--gamma", default="paper,agreement", help="Gamma functionals to run: paper, agreement"
    )
    p.add_argument("--normalization", default="max", choices=["max", "mean", "none"])
    p.add_argument(
        "--bpa-set",
        default="validation",
        choices=["train", "validation", "train+validation"],
        help="the labelled set Gamma is computed on (the paper reports validation as "
        "generalising better; it is also 10x cheaper than train here)",
    )
    p.add_argument("--split-layers", default="conv1")
    p.add_argument(
        "--mobilenet",
        default=None,
        metavar="DATASET",
        help="also transfer an ImageNet MobileNetV2 to DATASET: fine-tuning vs BPA split "
        "at its first convolution (weights from $KERAS_HOME/models)",
    )
    p.add_argument(
        "--mobilenet-lr", type=float, default=1e-3, help="SGD rate of the MobileNetV2 transfers"
    )
    p.add_argument("--mobilenet-size", type=int, default=48, help="MobileNetV2 input side")
    p.add_argument(
        "--gamma-samples",
        type=int,
        default=None,
        help="Gamma on this many images per class of the BPA set (default: all)",
    )
    p.add_argument(
        "--lr", type=float, default=0.01, help="SGD rate of the transfers (momentum 0.9)"
    )
    p.add_argument("--batch-size", type=int, default=64)
    add_common_flags(p, seeds=3, epochs=3)  # --epochs: transfer epochs after the warm-up
    return p.parse_args(argv)


def load_pair_member(name, args, seed=0, **kwargs):
    return load(
        name,
        args,
        image_shape=args.shape,
        batch_size=args.batch_size,
        seed=seed,
        data_dir=args.data_dir,
        **kwargs,
    )


def errors(model, data):
    """Train and test error, %, of a compiled model (train set evaluated without dropout)."""
    return tuple(
        100 * (1 - model.evaluate(data.dataset(split), verbose=0, return_dict=True)["accuracy"])
        for split in ("train", "test")
    )


def primary_network(name, args):
    data = load_pair_member(name, args)
    path = primary_path(
        args.saved_models,
        "bpa_paper",
        tag(name, "small_cnn", args.shape),
        epochs=args.primary_epochs,
        batch_size=args.batch_size,
        data_root=args.data_root,
        data_dir=args.data_dir,
    )
    model, _ = train_or_load_primary(
        lambda n: small_cnn(args.shape, n, name=f"primary_{tag(name)}"),
        data,
        path,
        epochs=args.primary_epochs,
        seed=0,
        backup_dir=args.backup_dir,
        verbose=args.verbose,
    )
    return model, data


def small_cnn_target(primary, target, args):
    """The primary network's structure with a new head, matching layers imported."""
    net = surgery.replace_head(
        small_cnn(args.shape, target.info.num_classes, name="target"),
        target.info.num_classes,
        cut_layer="dropout",
    )
    surgery.import_matching_layers(primary, net)
    return net


def transfer(primary, target, args, method, seed):
    """One transfer run of the small CNN; returns (train error, test error, model, seconds,
    Gamma or None)."""
    set_seeds(seed, deterministic=not args.nondeterministic)
    net = small_cnn_target(primary, target, args)
    body = [
        net.get_layer(layer.name) for level in surgery.weighted_levels(net)[:-1] for layer in level
    ]
    run = f"{tag(args.primary_name, args.target_name)}-{method}-{seed}"
    return train_transfer(net, body, target, args, method, seed, args.split_layers.split(","), run)


def train_transfer(net, body, target, args, method, seed, split_layers, run, lr=None):
    """Warm-up of the new head with `body` frozen, then `method` (standard, fine-tune or
    bpa-<gamma>) for `args.epochs` at rate `lr` (default `args.lr`); returns (train error, test
    error, net, seconds, Gamma)."""
    loss = "sparse_categorical_crossentropy"
    lr = lr or args.lr
    start = time.perf_counter()
    # Warm-up: only the new head learns, so the single-filter networks' confusions mean something.
    for layer in body:
        layer.trainable = False
    net.compile(keras.optimizers.SGD(lr, momentum=0.9), loss, metrics=["accuracy"])
    fit(
        net,
        target,
        epochs=args.warmup_epochs,
        backup_dir=args.backup_dir,
        name=f"{run}-warmup",
        verbose=args.verbose,
    )
    for layer in body:
        layer.trainable = True
    if method == "standard":
        surgery.freeze_bottom_levels(net, args.frozen_levels)
    model, callbacks = net, []
    if method.startswith("bpa-"):
        model = BPAModel(
            net, split_layers=split_layers, gamma=method[4:], normalization=args.normalization
        )
        callbacks = [
            GammaRefresh(
                target,
                every=1,
                subset=args.bpa_set,
                samples_per_class=args.gamma_samples,
                seed=seed,
            )
        ]
    model.compile(keras.optimizers.SGD(lr, momentum=0.9), loss, metrics=["accuracy"])
    fit(
        model,
        target,
        epochs=args.epochs,
        backup_dir=args.backup_dir,
        name=run,
        callbacks=callbacks,
        verbose=args.verbose,
    )
    seconds = time.perf_counter() - start
    gamma = model.gamma if method.startswith("bpa-") else None
    return (*errors(model, target), net, seconds, gamma)


def main(argv=None):
    args = parse_args(argv)
    set_seeds(0, deterministic=not args.nondeterministic)
    args.shape = args.image_shape
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"--pairs must be primary:target items. Received: {args.pairs}")
    methods = ["standard", "fine-tune"] + [f"bpa-{g}" for g in args.gamma.split(",")]
    for g in args.gamma.split(","):
        if g not in ("paper", "agreement"):
            raise SystemExit(f"--gamma takes paper and/or agreement. Received: {g!r}")

    print("Table 1: primary networks (baseline errors)")
    primaries, table1 = {}, []
    for name in dict.fromkeys(primary for primary, _ in pairs):
        primaries[name], data = primary_network(name, args)
        table1.append((name, *errors(primaries[name], data)))
    print_table1(table1)

    results = []
    cache = RunCache(args.backup_dir, "bpa_paper", args)
    for primary_name, target_name in pairs:
        args.primary_name, args.target_name = primary_name, target_name
        for method in methods:
            runs, last = [], {}
            export_run = args.export and method == methods[-1]
            for seed in range(args.seeds):
                target = load_pair_member(
                    target_name, args, seed=seed, samples_per_class=args.samples_per_class
                )
                key = f"{primary_name}:{target_name}:{method}:{seed}"
                model_file = os.path.join(args.backup_dir or "", "bpa_paper", tag(key) + ".keras")

                def run(seed=seed, target=target, model_file=model_file):
                    train_err, test_err, net, seconds, gamma = transfer(
                        primaries[primary_name], target, args, method, seed
                    )
                    last["net"] = net
                    if export_run and args.backup_dir:
                        atomic_save(net, model_file)
                    return dict(
                        train=train_err,
                        test=test_err,
                        seconds=seconds,
                        gamma=gamma_summary(gamma) if gamma else None,
                    )

                runs.append(cache.get(key, run))
                print_run(f"{primary_name} -> {target_name}", method, seed, runs[-1])
            results.append(summary_row(primary_name, target_name, method, runs))
            if export_run:
                net = last.get("net") or keras.models.load_model(model_file)  # cached: saved
                path = export_serving(
                    net,
                    os.path.join(
                        args.saved_models, f"bpa_{tag(primary_name)}_to_{tag(target_name)}"
                    ),
                    raw_shape=target.info.image_shape,
                )
                print(f"  exported {path}")
    print_tables23(results, args)
    if args.mobilenet:
        mobilenet = mobilenet_rows(args, cache, methods[1:])
        print_tables23(
            mobilenet,
            args,
            f"MobileNetV2 (ImageNet, {args.mobilenet_size}x"
            f"{args.mobilenet_size}) on {args.mobilenet}",
            paper=False,
            split=f"mobilenetv2_1.00_{args.mobilenet_size}/Conv1",
        )
        results += mobilenet
    return dict(table1=table1, results=results)


def mobilenet_transfer(target, args, method, seed):
    """Fine-tuning or BPA of an ImageNet MobileNetV2 (new head warmed up first), as `transfer`;
    the split layer is the backbone's first convolution."""
    set_seeds(seed, deterministic=not args.nondeterministic)
    size = args.mobilenet_size
    net = mobilenet_v2_classifier((size, size, 3), target.info.num_classes, weights="imagenet")
    backbone = net.layers[2]  # image -> preprocess -> the nested MobileNetV2
    run = f"mobilenet-{tag(args.mobilenet)}-{method}-{seed}"
    train_err, test_err, _, seconds, gamma = train_transfer(
        net,
        [backbone],
        target,
        args,
        method,
        seed,
        [f"{backbone.name}/Conv1"],
        run,
        lr=args.mobilenet_lr,
    )
    return train_err, test_err, seconds, gamma


def mobilenet_rows(args, cache, methods):
    """Rows of the MobileNetV2 transfer: the same data, seeds and budget for every method."""
    rows = []
    for method in methods:
        runs = []
        for seed in range(args.seeds):
            target = load(
                args.mobilenet,
                args,
                image_shape=(args.mobilenet_size,) * 2 + (3,),
                batch_size=args.batch_size,
                seed=seed,
                data_dir=args.data_dir,
                samples_per_class=args.samples_per_class,
            )

            def run(seed=seed, target=target):
                train_err, test_err, seconds, gamma = mobilenet_transfer(target, args, method, seed)
                return dict(
                    train=train_err,
                    test=test_err,
                    seconds=seconds,
                    gamma=gamma_summary(gamma) if gamma else None,
                )

            runs.append(cache.get(f"mobilenet:{args.mobilenet}:{method}:{seed}", run))
            print_run(f"MobileNetV2 -> {args.mobilenet}", method, seed, runs[-1])
        rows.append(summary_row("imagenet", args.mobilenet, method, runs))
    return rows


def print_run(pair, method, seed, r):
    print(
        f"  {pair} {method:<14} seed {seed}: train {r['train']:5.2f}% "
        f"test {r['test']:5.2f}% ({r['seconds']:.1f} s)"
        + (f", Gamma {r['gamma']}" if r["gamma"] else "")
    )


def summary_row(primary, target, method, runs):
    """Mean and sd over seeds of the runs' train and test errors."""
    arr = np.array([(r["train"], r["test"], r["seconds"]) for r in runs])
    return dict(
        primary=primary,
        target=target,
        method=method,
        train=arr[:, 0].mean(),
        train_sd=arr[:, 0].std(),
        test=arr[:, 1].mean(),
        test_sd=arr[:, 1].std(),
        seconds=arr[:, 2].mean(),
    )


def gamma_summary(gamma):
    values = np.concatenate(list(gamma.values()))
    return f"min {values.min():.2f} mean {values.mean():.2f} max {values.max():.2f}"


def print_table1(rows):
    print(f"{'Dataset':<16} {'Train (%)':>10} {'Test (%)':>10}")
    for name, train, test in rows:
        print(f"{name:<16} {train:>10.2f} {test:>10.2f}")
    print("Paper (Table 1): " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in PAPER_TABLE1.items()))


def print_tables23(results, args, title="Tables 2-3: transfer errors", paper=True, split=None):
    print(
        f"\n{title}, mean +- sd over {args.seeds} seeds (Gamma normalisation: "
        f"{args.normalization}; Gamma set: {args.bpa_set}; split: {split or args.split_layers})"
    )
    print(
        f"{'Primary':<14} {'Target':<14} {'Method':<15} {'Train (%)':>14} {'Test (%)':>14} "
        f"{'Time (s)':>9}"
    )
    for r in results:
        print(
            f"{r['primary']:<14} {r['target']:<14} {r['method']:<15} "
            f"{r['train']:>7.2f} +-{r['train_sd']:>5.2f} {r['test']:>7.2f} +-{r['test_sd']:>5.2f} "
            f"{r['seconds']:>9.1f}"
        )
    if not paper:
        return
    print("\nPaper (Tables 2-3), standard vs distributed, train / test error (%):")
    for primary, target, standard, distributed in PAPER_TABLES23:
        print(
            f"{primary:<14} {target:<14} standard {standard[0]:.2f} / {standard[1]:.2f}   "
            f"distributed {distributed[0]:.2f} / {distributed[1]:.2f}"
        )


if __name__ == "__main__":
    run_recipe(main)
