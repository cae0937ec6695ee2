"""Layer transfer on a LeNet-5: retain the bottom n levels of a source net, fixed.

Reproduces Gutstein, Fuentes and Freudenthal, "Knowledge transfer in deep convolutional neural
nets" (2008): Table 1 and the learning curves of Figures 2-5.

A LeNet-5 variant (C1, S2, C3, S4, C5 and a 20-unit F6; 52,256 free parameters, Table 1) is
trained on a source set of classes. For each n = 0..5 a new net learns a different set of
classes with its bottom n levels copied from the source and kept fixed, from 1, 5, 10, 20 and 40
training samples per class, 5 trials each. Classes are targets coded as random +-1 20-bit
vectors (the paper's) or one-of-N codes; a prediction is the class with the nearest code.

Offline default: embedded MNIST digits 0-4 (source) -> digits 5-9 (target), 28x28 padded to
32x32. The paper used NIST SD-19 characters (20 source, 20 target classes), so absolute numbers
differ; the shape of the curves is what to compare.

Run (a few minutes on 2 CPU cores; the figure needs matplotlib, `pip install ".[plot]"`):

    python recipes/layer_transfer.py

`--seeds N` is the number of trials: trial t draws its training images, target codes and
initial weights with seed t (the source net is trained once, with seed 0), and the table gives
min/mean/max and the standard deviation over the trials. Seeded and deterministic by default:
the same command prints the same table. Other scales and data:

    python recipes/layer_transfer.py --seeds 2 --samples-per-class 1,10,40 --levels 0,3,4,5
    python recipes/layer_transfer.py --source fashion_mnist --source-classes all \\
        --target mnist --target-classes all --codes onehot
    python recipes/layer_transfer.py --data-root ../shared/data   # mnist_small.npz
    python recipes/layer_transfer.py --backup-dir runs/   # resumable; finished runs kept
    python recipes/layer_transfer.py --export   # SavedModel in saved_models/layer_transfer

`--source` and `--target` take `mnist`, `usps`, `fashion_mnist` (embedded, or their files in
`--data-root`) or anything `load_dataset` takes (an `.npz` path, an image folder, a
tensorflow-datasets name).
"""

import argparse
import dataclasses
import os
import sys
import time

import _common  # noqa: F401  (first: TensorFlow's start-up lines stay hidden; see _common)
import keras
import numpy as np
from _common import RunCache, add_common_flags, atomic_save, dataset_source, run_recipe, set_seeds

from kerastransfer._extras import require
from kerastransfer.callbacks import BackupAndRestore
from kerastransfer.data import load_dataset
from kerastransfer.methods.layer_transfer import (
    SourceReport,
    available_per_class,
    check_sweep_args,
    layer_transfer_sweep,
    train_source,
    trainable_free_parameters,
)
from kerastransfer.models.lenet import (
    LEVELS,
    TABLE_1,
    check_table_1,
    code_classifier,
    free_parameter_table,
    lenet5,
)

FIGURE = "The layer-transfer recipe's figure"

# What Gutstein et al. (2008) found (Discussion & Analysis, Conclusions).
FINDINGS = (
    "small training sets: retaining levels clearly beats no transfer (n = 0)",
    "more samples per class: transferred knowledge matters less, net capacity more",
    "C1-C5 retained (n = 5, 4.6% of parameters free): little gain beyond ~10 samples/class",
    "variance over the 5 trials is relatively slight",
)


def int_list(text):
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def class_list(text):
    return None if text.strip().lower() == "all" else int_list(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--source",
        default="mnist",
        help="source dataset: mnist, usps, fashion_mnist or a load_dataset source",
    )
    data.add_argument(
        "--source-classes",
        type=class_list,
        default=[0, 1, 2, 3, 4],
        help="source class ids, comma separated, or 'all'",
    )
    data.add_argument("--target", default="mnist", help="target dataset, as --source")
    data.add_argument(
        "--target-classes",
        type=class_list,
        default=[5, 6, 7, 8, 9],
        help="target class ids, comma separated, or 'all'",
    )
    data.add_argument(
        "--resize",
        choices=("pad", "resize"),
        default="pad",
        help="how images become 32x32: centre pad (28->32) or bilinear resize",
    )
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument(
        "--levels", type=int_list, default=[0, 1, 2, 3, 4, 5], help="retained level counts n (0..5)"
    )
    sweep.add_argument(
        "--samples-per-class",
        type=int_list,
        default=[1, 5, 10, 20, 40],
        help="target training samples per class",
    )
    sweep.add_argument(
        "--codes",
        choices=("random20", "onehot"),
        default="random20",
        help="target codes: the paper's random 20-bit codes or one-of-N",
    )
    train = parser.add_argument_group("training")
    train.add_argument("--source-epochs", type=int, default=8, help="epochs of the source net")
    train.add_argument(
        "--min-steps",
        type=int,
        default=100,
        help="fewest updates of a target run (small sets repeat)",
    )
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--learning-rate", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument(
        "--out",
        default=None,
        help="PNG of Figures 2-5 (default: layer_transfer.png in --saved-models)",
    )
    # --seeds: trials per (n, samples per class); --epochs: epochs of each target run.
    add_common_flags(parser, seeds=5, epochs=30)
    args = parser.parse_args(argv)
    for flag in ("source_epochs", "batch_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    args.out = args.out or os.path.join(args.saved_models, "layer_transfer.png")
    return args


# -- the source net ----------------------------------------------------------------------------


def source_network(args, cache):
    """The source net, trained with seed 0, or loaded from `--backup-dir` when a previous run
    finished it. Returns `(model, SourceReport)`."""
    path = cache.path.with_name(f"{cache.path.stem}_source.keras") if cache.path else None
    trained = {}

    def train():
        set_seeds(0, deterministic=not args.nondeterministic)
        callbacks = []
        if args.backup_dir:
            callbacks.append(
                BackupAndRestore(
                    os.path.join(args.backup_dir, "layer_transfer", f"{cache.path.stem}_source")
                )
            )
        model, report = train_source(
            dataset_source(args.source, args.data_root),
            classes=args.source_classes,
            codes=args.codes,
            epochs=args.source_epochs,
            batch_size=args.batch_size,
            resize=args.resize,
            seed=0,
            callbacks=callbacks,
            verbose=args.verbose,
        )
        if path is not None:
            atomic_save(model, path)
        trained["model"] = model
        report = dataclasses.asdict(report)
        report["codes"] = report["codes"].tolist()
        return report

    report = dict(cache.get("source", train))
    report["codes"] = np.asarray(report["codes"], "float32")
    report["raw_shape"] = tuple(report["raw_shape"])
    if "model" in trained:
        return trained["model"], SourceReport(**report)
    if not path.exists():
        raise FileNotFoundError(
            f"{cache.path} lists the source net as trained but {path} is missing. Delete "
            f"{cache.path} to train it again."
        )
    return keras.models.load_model(path), SourceReport(**report)


# -- reporting ---------------------------------------------------------------------------------


def summarize(rows):
    """Min / mean / max and standard deviation (population) of the accuracy over trials, for
    each (retained, samples_per_class).

    >>> rows = [{"retained": 0, "samples_per_class": 1, "accuracy": a} for a in (0.5, 0.7)]
    >>> summarize(rows)  # doctest: +NORMALIZE_WHITESPACE
    [{'retained': 0, 'samples_per_class': 1, 'min': 0.5, 'mean': 0.6, 'max': 0.7, 'sd': 0.1,
      'trials': 2}]
    """
    cells = {}
    for row in rows:
        cells.setdefault((row["retained"], row["samples_per_class"]), []).append(row["accuracy"])
    return [
        {
            "retained": n,
            "samples_per_class": k,
            "min": min(acc),
            "mean": sum(acc) / len(acc),
            "max": max(acc),
            "sd": round(float(np.std(acc)), 12),
            "trials": len(acc),
        }
        for (n, k), acc in sorted(cells.items())
    ]


def level_span(n):
    """The levels retained by n: "none", "C1", "C1-S2", ..."""
    return "none" if n == 0 else LEVELS[0] if n == 1 else f"{LEVELS[0]}-{LEVELS[n - 1]}"


def format_table(summary, table=TABLE_1):
    """A text table: one row per retained n, one `min/mean/max sd` column per samples per
    class."""
    levels = sorted({s["retained"] for s in summary})
    sizes = sorted({s["samples_per_class"] for s in summary})
    cell = {(s["retained"], s["samples_per_class"]): s for s in summary}
    total = sum(table.values())
    width = 22
    head = f"{'retained n':<16}{'free to train':>14} " + "".join(
        f"{f'{k}/class':>{width}}" for k in sizes
    )
    lines = [head, f"{'':<31}" + "".join(f"{'min/mean/max +-sd':>{width}}" for _ in sizes)]
    for n in levels:
        name = f"{n} ({level_span(n)})"
        free = trainable_free_parameters(n, table)
        line = f"{name:<16}{free:>7,} {100 * free / total:>5.1f}%  "
        for k in sizes:
            s = cell.get((n, k))
            text = (
                "-"
                if s is None
                else (f"{s['min']:.2f}/{s['mean']:.2f}/{s['max']:.2f} +-{s.get('sd', 0.0):.2f}")
            )
            line += f"{text:>{width}}"
        lines.append(line)
    return "\n".join(lines)


def plot_learning_curves(summary, path, *, panels=(1, 10, 40), title=None):
    """Figures 2-5 of Gutstein et al. (2008) in one PNG: mean accuracy vs retained levels, one
    curve per samples-per-class (Fig. 2), then min / mean / max panels for the sizes in `panels`
    that were run (Figs. 3-5; the smallest, middle and largest size run if none of them were)."""
    require("matplotlib", FIGURE).use("Agg")
    plt = require("matplotlib.pyplot", FIGURE)

    if not summary:
        raise ValueError("Nothing to plot: `summary` is empty.")
    sizes = sorted({s["samples_per_class"] for s in summary})
    chosen = [k for k in panels if k in sizes]
    if not chosen:
        chosen = sorted({sizes[0], sizes[len(sizes) // 2], sizes[-1]})
    fig, axes = plt.subplots(
        1, 1 + len(chosen), figsize=(4.2 * (1 + len(chosen)), 3.8), squeeze=False
    )
    axes = axes[0]

    def curve(k, key):
        points = sorted((s["retained"], s[key]) for s in summary if s["samples_per_class"] == k)
        return [p[0] for p in points], [p[1] for p in points]

    for k in reversed(sizes):
        axes[0].plot(*curve(k, "mean"), marker="o", label=f"{k}/class")
    axes[0].set_title("Fig. 2: mean accuracy")
    axes[0].legend(fontsize=8)
    for ax, k in zip(axes[1:], chosen):
        for key, style in (("max", "^--"), ("mean", "o-"), ("min", "v--")):
            ax.plot(*curve(k, key), style, label=key)
        ax.set_title(f"{k} sample{'s' if k > 1 else ''}/class: min, mean, max")
        ax.legend(fontsize=8)
    levels = sorted({s["retained"] for s in summary})
    for ax in axes:
        ax.set_xlabel("retained levels n")
        ax.set_ylabel("test accuracy")
        ax.set_xticks(levels)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(str(path))), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def best_model(rows):
    """The most accurate run's target net (kept by `layer_transfer_sweep(..., keep_best=True)`)
    as a probability classifier (`code_classifier`), ready for `export_serving`."""
    kept = [r for r in rows if "weights" in r]
    if not kept:
        raise ValueError("No weights were kept: run `layer_transfer_sweep(..., keep_best=True)`.")
    row = kept[0]
    model = lenet5(row["codes"].shape[1], name=f"target_retain{row['retained']}")
    model.set_weights(row["weights"])
    return code_classifier(model, row["codes"], name="layer_transfer_classifier"), row


def print_parameters(model):
    """Table 1 of Gutstein et al. (2008) next to the free parameters counted on the model."""
    table = free_parameter_table(model)
    print(f"\nFree parameters per level ({model.name}) vs Gutstein et al. (2008) Table 1")
    print(f"{'level':<7}{'model':>9}{'Table 1':>9}")
    for level, paper in TABLE_1.items():
        print(f"{level:<7}{table[level]:>9,}{paper:>9,}")
    print(f"{'total':<7}{sum(table.values()):>9,}{sum(TABLE_1.values()):>9,}")
    return table


def observations(summary):
    """Check the paper's findings against this run's table; one line each."""
    mean = {(s["retained"], s["samples_per_class"]): s["mean"] for s in summary}
    levels = sorted({n for n, _ in mean})
    sizes = sorted({k for _, k in mean})
    lines = []

    def gain(k):  # best retained n > 0 over no transfer, at k samples per class
        others = [mean[n, k] for n in levels if n > 0]
        return max(others) - mean[0, k] if 0 in levels and others else None

    small, large = sizes[0], sizes[-1]
    g = gain(small)
    if g is not None:
        lines.append(
            f"{small}/class: best n > 0 vs n = 0: {g:+.3f} "
            f"({'holds' if g > 0 else 'does not hold here'})"
        )
    if g is not None and large != small:
        g2 = gain(large)
        lines.append(
            f"transfer gain {small}/class {g:+.3f} vs {large}/class {g2:+.3f} "
            f"({'holds' if g > g2 else 'does not hold here'})"
        )
    if {0, 5} <= set(levels) and len(sizes) > 1:
        mid = min(sizes, key=lambda k: abs(k - 10))
        if mid != large:
            rise5, rise0 = mean[5, large] - mean[5, mid], mean[0, large] - mean[0, mid]
            lines.append(
                f"{mid}->{large}/class: n = 5 rises {rise5:+.3f}, n = 0 rises "
                f"{rise0:+.3f} ({'holds' if rise5 < rise0 else 'does not hold here'})"
            )
    if max(s["trials"] for s in summary) > 1:
        spread = max(s["max"] - s["min"] for s in summary)
        lines.append(f"largest max-min spread over trials: {spread:.3f}")
    return lines


# -- the recipe --------------------------------------------------------------------------------


def main(argv=None):
    """Run the sweep; return a dict with `summary` (min/mean/max/sd per cell), `rows` (every
    run), `free_parameters`, `source` (its SourceReport), `png` and `export` (path or None)."""
    args = parse_args(argv)
    require("matplotlib", FIGURE)  # before the sweep, not after it
    set_seeds(0, deterministic=not args.nondeterministic)
    start = time.perf_counter()
    target_data = dataset_source(args.target, args.data_root)
    # Validate the sweep settings against the data before the source net trains.
    check_sweep_args(
        args.levels,
        args.samples_per_class,
        args.seeds,
        available_per_class(target_data, args.target_classes),
    )
    # Finished runs, keyed by every flag that changes results (not where the PNG goes).
    settings = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "out"})
    cache = RunCache(args.backup_dir, "layer_transfer", settings)

    source, report = source_network(args, cache)
    print(report)

    def progress(row):
        print(
            f"  n={row['retained']} {row['samples_per_class']:>3}/class trial "
            f"{row['trial']}: accuracy {row['accuracy']:.3f} ({row['seconds']:.1f} s)",
            flush=True,
        )

    rows = layer_transfer_sweep(
        source,
        target_data,
        target_classes=args.target_classes,
        levels=args.levels,
        samples_per_class=args.samples_per_class,
        trials=args.seeds,
        codes=args.codes,
        epochs=args.epochs,
        min_steps=args.min_steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        resize=args.resize,
        seed=0,
        on_result=progress,
        keep_best=args.export,
        cache=cache,
    )
    summary = summarize(rows)
    target_info = load_dataset(target_data, classes=args.target_classes, validation_split=0).info
    code_bits = 20 if args.codes == "random20" else target_info.num_classes
    target_net = lenet5(code_bits, name=f"lenet5_{args.codes}")
    table = print_parameters(target_net)
    if args.codes == "random20":
        check_table_1(target_net)  # the free-parameter counts must be Table 1's
    else:
        print("(one-of-N codes: F6 has one unit per class, so F6 differs from Table 1)")
    png = plot_learning_curves(
        summary,
        args.out,
        title=f"{args.source} -> {args.target}, {args.codes} codes, {args.seeds} trials",
    )
    exported = None
    if args.export:
        from kerastransfer.export import export_serving

        classifier, best = best_model(rows)
        exported = export_serving(
            classifier,
            os.path.join(args.saved_models, "layer_transfer"),
            raw_shape=target_info.image_shape,
            resize=args.resize,
        )
        print(
            f"\nExported the most accurate run (n={best['retained']}, "
            f"{best['samples_per_class']}/class, trial {best['trial']}, test accuracy "
            f"{best['accuracy']:.3f}; chosen on the test split) to {exported}"
        )

    print(
        f"\nTest accuracy over {args.seeds} trial(s) (seeds 0..{args.seeds - 1}): "
        f"{args.source} {args.source_classes or 'all'} -> {args.target} "
        f"{args.target_classes or 'all'}, {args.codes} codes"
    )
    print(format_table(summary, table))
    print("\nGutstein et al. (2008) found:")
    for finding in FINDINGS:
        print(f"  - {finding}")
    print("This run:")
    for line in observations(summary):
        print(f"  - {line}")
    seconds = time.perf_counter() - start
    print(f"\nFigures 2-5: {png}    total time {seconds:.0f} s")
    return {
        "summary": summary,
        "rows": rows,
        "free_parameters": table,
        "source": report,
        "png": png,
        "export": exported,
        "seconds": seconds,
    }


if __name__ == "__main__":
    run_recipe(main, sys.argv[1:])
