"""
Title: Layer-transfer sweep on a LeNet-5 (retain the bottom n levels, fixed)
Description: Reproduces Gutstein, Fuentes & Freudenthal, "Knowledge transfer in deep
convolutional neural nets" (seed 002): Table 1 and the learning curves of Figures 2-5.

A LeNet-5 variant (C1, S2, C3, S4, C5 and a 20-unit F6; 52,256 free parameters, Table 1) is
trained on a source set of classes. For each n = 0..5 a new net learns a different set of
classes with its bottom n levels copied from the source and kept fixed, from 1, 5, 10, 20 and 40
training samples per class, 5 trials each. Classes are targets coded as random +-1 20-bit
vectors (seed 002) or one-of-N codes; a prediction is the class with the nearest code.

Offline default: embedded MNIST digits 0-4 (source) -> digits 5-9 (target), 28x28 padded to
32x32. The paper used NIST SD-19 characters (20 source, 20 target classes), so absolute numbers
differ; the shape of the curves is what to compare.

Run (a few minutes on 2 CPU cores):

    python recipes/layer_transfer.py

Other scales and data:

    python recipes/layer_transfer.py --trials 2 --samples-per-class 1,10,40 --levels 0,3,4,5
    python recipes/layer_transfer.py --source embedded:fashion_mnist --source-classes all \\
        --target embedded:mnist --target-classes all --codes onehot
    python recipes/layer_transfer.py --export   # SavedModel in saved_models/layer_transfer
"""

import argparse
import pathlib
import sys
import time

from kerastransfer.data import load_dataset
from kerastransfer.methods.layer_transfer import (
    available_per_class,
    best_model,
    check_sweep_args,
    format_table,
    layer_transfer_sweep,
    plot_learning_curves,
    summarize,
    train_source,
)
from kerastransfer.models.lenet import TABLE_1, check_table_1, free_parameter_table, lenet5

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_EXPORT = REPO / "saved_models" / "layer_transfer"

# Seed 002's qualitative findings (Discussion & Analysis, Conclusions).
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
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def class_list(text):
    return None if text.strip().lower() == "all" else int_list(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--source", default="embedded:mnist", help="source dataset (load_dataset)")
    data.add_argument("--source-classes", type=class_list, default=[0, 1, 2, 3, 4],
                      help="source class ids, comma separated, or 'all'")
    data.add_argument("--target", default="embedded:mnist", help="target dataset")
    data.add_argument("--target-classes", type=class_list, default=[5, 6, 7, 8, 9],
                      help="target class ids, comma separated, or 'all'")
    data.add_argument("--resize", choices=("pad", "resize"), default="pad",
                      help="how images become 32x32: centre pad (28->32) or bilinear resize")
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--levels", type=int_list, default=[0, 1, 2, 3, 4, 5],
                       help="retained level counts n (0..5)")
    sweep.add_argument("--samples-per-class", type=int_list, default=[1, 5, 10, 20, 40],
                       help="target training samples per class")
    sweep.add_argument("--trials", type=int, default=5, help="trials per (n, samples per class)")
    sweep.add_argument("--codes", choices=("random20", "onehot"), default="random20",
                       help="target codes: seed 002's random 20-bit codes or one-of-N")
    train = parser.add_argument_group("training")
    train.add_argument("--source-epochs", type=int, default=8, help="epochs of the source net")
    train.add_argument("--epochs", type=int, default=30, help="epochs of each target run")
    train.add_argument("--min-steps", type=int, default=100,
                       help="fewest updates of a target run (small sets repeat)")
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--learning-rate", type=float, default=3e-3, help="Adam learning rate")
    train.add_argument("--seed", type=int, default=0)
    out = parser.add_argument_group("output")
    out.add_argument("--out", default=str(DEFAULT_EXPORT.parent / "layer_transfer.png"), help="PNG of Figures 2-5")
    out.add_argument("--export", nargs="?", const=str(DEFAULT_EXPORT), default=None,
                     metavar="DIR",
                     help=f"export the most accurate target net as a SavedModel "
                          f"(default DIR: {DEFAULT_EXPORT.relative_to(REPO)})")
    out.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    args = parser.parse_args(argv)
    for flag in ("trials", "source_epochs", "epochs", "batch_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    return args


def print_parameters(model):
    """Seed 002's Table 1 next to the free parameters counted on the model."""
    table = free_parameter_table(model)
    print(f"\nFree parameters per level ({model.name}) vs seed 002 Table 1")
    print(f"{'level':<7}{'model':>9}{'Table 1':>9}")
    for level, paper in TABLE_1.items():
        print(f"{level:<7}{table[level]:>9,}{paper:>9,}")
    print(f"{'total':<7}{sum(table.values()):>9,}{sum(TABLE_1.values()):>9,}")
    return table


def observations(summary):
    """Check seed 002's findings against this run's table; one line each."""
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
        lines.append(f"{small}/class: best n > 0 vs n = 0: {g:+.3f} "
                     f"({'holds' if g > 0 else 'does not hold here'})")
    if g is not None and large != small:
        g2 = gain(large)
        lines.append(f"transfer gain {small}/class {g:+.3f} vs {large}/class {g2:+.3f} "
                     f"({'holds' if g > g2 else 'does not hold here'})")
    if {0, 5} <= set(levels) and len(sizes) > 1:
        mid = min(sizes, key=lambda k: abs(k - 10))
        if mid != large:
            rise5, rise0 = mean[5, large] - mean[5, mid], mean[0, large] - mean[0, mid]
            lines.append(f"{mid}->{large}/class: n = 5 rises {rise5:+.3f}, n = 0 rises "
                         f"{rise0:+.3f} ({'holds' if rise5 < rise0 else 'does not hold here'})")
    if max(s["trials"] for s in summary) > 1:
        spread = max(s["max"] - s["min"] for s in summary)
        lines.append(f"largest max-min spread over trials: {spread:.3f}")
    return lines


def main(argv=None):
    """Run the sweep; return a dict with `summary` (min/mean/max per cell), `rows` (every run),
    `free_parameters`, `source` (its SourceReport), `png` and `export` (path or None)."""
    args = parse_args(argv)
    start = time.perf_counter()
    # Validate the sweep settings against the data before the source net trains.
    check_sweep_args(args.levels, args.samples_per_class, args.trials,
                     available_per_class(args.target, args.target_classes))

    source, report = train_source(
        args.source, classes=args.source_classes, codes=args.codes, epochs=args.source_epochs,
        batch_size=args.batch_size, resize=args.resize, seed=args.seed,
    )
    print(report)

    def progress(row):
        if not args.quiet:
            print(f"  n={row['retained']} {row['samples_per_class']:>3}/class trial "
                  f"{row['trial']}: accuracy {row['accuracy']:.3f} ({row['seconds']:.1f} s)",
                  flush=True)

    rows = layer_transfer_sweep(
        source, args.target, target_classes=args.target_classes, levels=args.levels,
        samples_per_class=args.samples_per_class, trials=args.trials, codes=args.codes,
        epochs=args.epochs, min_steps=args.min_steps, batch_size=args.batch_size,
        learning_rate=args.learning_rate, resize=args.resize, seed=args.seed,
        on_result=progress, keep_best=args.export is not None,
    )
    summary = summarize(rows)
    code_bits = 20 if args.codes == "random20" else _num_classes(args)
    target_net = lenet5(code_bits, name=f"lenet5_{args.codes}")
    table = print_parameters(target_net)
    if args.codes == "random20":
        check_table_1(target_net)  # the free-parameter counts must be Table 1's
    else:
        print("(one-of-N codes: F6 has one unit per class, so F6 differs from Table 1)")
    png = plot_learning_curves(
        summary, args.out,
        title=f"{args.source} -> {args.target}, {args.codes} codes, {args.trials} trials",
    )
    exported = None
    if args.export is not None:
        from kerastransfer.export import export_serving

        classifier, best = best_model(rows)
        raw_shape = load_dataset(args.target, classes=args.target_classes,
                                 validation_split=0).info.image_shape
        exported = export_serving(classifier, args.export, raw_shape=raw_shape,
                                  resize=args.resize)
        print(f"\nExported the most accurate run (n={best['retained']}, "
              f"{best['samples_per_class']}/class, trial {best['trial']}, test accuracy "
              f"{best['accuracy']:.3f}; chosen on the test split) to {exported}")

    print(f"\nTest accuracy over {args.trials} trial(s): {args.source} "
          f"{args.source_classes or 'all'} -> {args.target} {args.target_classes or 'all'}, "
          f"{args.codes} codes")
    print(format_table(summary, table))
    print("\nSeed 002 found:")
    for finding in FINDINGS:
        print(f"  - {finding}")
    print("This run:")
    for line in observations(summary):
        print(f"  - {line}")
    seconds = time.perf_counter() - start
    print(f"\nFigures 2-5: {png}    total time {seconds:.0f} s")
    return {"summary": summary, "rows": rows, "free_parameters": table, "source": report,
            "png": png, "export": exported, "seconds": seconds}


def _num_classes(args):
    data = load_dataset(args.target, classes=args.target_classes, validation_split=0)
    return data.info.num_classes


if __name__ == "__main__":
    main(sys.argv[1:])
