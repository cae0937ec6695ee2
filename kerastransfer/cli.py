"""The `kerastransfer` command.

    kerastransfer fit SOURCE DATA          fine-tune SOURCE (MobileNetV2, a .keras file) on DATA
    kerastransfer tune [DATA]              keras-tuner search; prints the best `fit` command
    kerastransfer predict EXPORT IMAGES... labels from an export (folder, .onnx or .tflite)
    kerastransfer data DATA                describe a dataset (embedded:mnist, .npz, folder, tfds)
    kerastransfer inspect MODEL            levels and weighted layers (.keras or application name)
    kerastransfer import SOURCE TARGET     which layers of SOURCE would be imported into TARGET
    kerastransfer gap MODEL --source S --target T   domain gap (MK-MMD) at each named layer

Every mistake (a wrong flag value, an unknown method, missing data, a source that cannot load
offline) ends with exit status 2 and one line on stderr that names the fix.
Recipes (the experiments of the source documents) are scripts in `recipes/`, benchmarks (ratios
measured in one run) scripts in `benchmarks/`.
"""

import argparse
import os
import sys

from kerastransfer.fine_tuning.command_line import (
    add_fit_flags,
    non_negative_int,
    positive_int,
    run_fit,
)
from kerastransfer.fine_tuning.fine_tune_config import FineTuneConfig

FORMATS = ("saved_model", "onnx", "litert")


class UsageError(Exception):
    """A command-line mistake: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises `UsageError` (one line) instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


def _formats(text):
    names = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in names if f not in FORMATS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(FORMATS)}, got {text!r}"
        )
    return tuple(names)


# ---- data, inspect, import -------------------------------------------------------------------


def _data(args):
    from kerastransfer.data import load_dataset

    data = load_dataset(args.data, data_dir=args.data_dir)
    print(data)
    print(f"classes: {data.info.num_classes} ({', '.join(data.info.class_names[:20])})")
    print(f"image shape: {data.info.image_shape}")


def _inspect(args):
    from kerastransfer.pretrained import load_source
    from kerastransfer.surgery import weighted_levels

    model = load_source(args.model)
    print(f"{model.name}: {model.count_params():,} parameters, input {model.input_shape}")
    for i, level in enumerate(weighted_levels(model), start=1):
        names = ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in level)
        params = sum(layer.count_params() for layer in level)
        print(f"  level {i:>3}: {names}: {params:,}")


def _import(args):
    from kerastransfer.pretrained import load_source
    from kerastransfer.surgery import import_matching_layers

    print(import_matching_layers(args.source, load_source(args.target)))


# ---- fit -------------------------------------------------------------------------------------


def _fit(args):
    _check_data(args.data)
    run_fit(args)


def _check_data(data):
    looks_like_path = os.sep in data or data.startswith(".") or data.endswith(".npz")
    if looks_like_path and not os.path.exists(data):
        raise FileNotFoundError(
            f"No dataset at '{data}': give an existing image folder or .npz file, or "
            "embedded:mnist / embedded:usps / embedded:fashion_mnist."
        )


# ---- tune ------------------------------------------------------------------------------------


def _tune(args):
    from kerastransfer.tuning.transfer_search import search

    _check_data(args.data)
    choices = {"epochs": args.epochs, "image_size": args.image_size, "seed": args.seed}
    if args.samples_per_class is not None:  # else the search's default
        choices["samples_per_class"] = args.samples_per_class
    search(
        args.data,
        source=args.source,
        trials=args.trials,
        directory=args.directory,
        export=args.export,
        export_formats=args.formats,
        verbose=args.verbose,
        **choices,
    )


# ---- predict ---------------------------------------------------------------------------------

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def _image_files(paths):
    files = []
    for path in paths:
        if os.path.isdir(path):
            files.extend(
                os.path.join(root, name)
                for root, _, names in sorted(os.walk(path))
                for name in sorted(names)
                if name.lower().endswith(_IMAGE_EXTENSIONS)
            )
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"No image file or folder at '{path}'.")
    if not files:
        raise ValueError(f"No images ({', '.join(_IMAGE_EXTENSIONS)}) in {', '.join(paths)}.")
    return files


def _predict(args):
    import numpy as np

    from kerastransfer.export import load_predictor

    predictor = load_predictor(args.export)
    channels = (predictor.raw_shape or predictor.image_shape or (None, None, 3))[-1]
    import keras

    for path in _image_files(args.images):
        try:
            image = keras.utils.img_to_array(
                keras.utils.load_img(path, color_mode="grayscale" if channels == 1 else "rgb")
            )
        except Exception as e:
            raise ValueError(f"Cannot read '{path}' as an image: {e}") from None
        probabilities = predictor(image[None].astype(np.float32))
        label = predictor.labels(probabilities)[0]
        print(f"{path}\t{label}\t{float(probabilities[0].max()):.4f}")


# ---- the parser ------------------------------------------------------------------------------


def _add_output_flags(p):
    p.add_argument("--export", default=None, help="write a serving export to this folder")
    p.add_argument(
        "--formats",
        type=_formats,
        default=("saved_model",),
        help="export formats: saved_model,onnx,litert (comma-separated)",
    )
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))


def build_parser():
    """The argument parser; add a sub-command with `sub.add_parser(...).set_defaults(run=f)`."""
    parser = _Parser(
        prog="kerastransfer",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("fit", help="fine-tune a pretrained network on a dataset")
    add_fit_flags(p)
    _add_output_flags(p)
    p.set_defaults(run=_fit)

    p = sub.add_parser("tune", help="keras-tuner search over transfer choices")
    p.add_argument("data", nargs="?", default="embedded:fashion_mnist")
    p.add_argument("--source", default="MobileNetV2")
    p.add_argument("--trials", type=positive_int, default=10)
    p.add_argument(
        "--directory",
        default="tune_results",
        help="results folder; an interrupted search resumes from it",
    )
    default = FineTuneConfig()  # a trial's budget is `fit`'s
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=default.epochs,
        help="fine-tuning epochs per trial at most",
    )
    p.add_argument(
        "--samples-per-class", type=positive_int, default=None, help="default 50 (the search's)"
    )
    p.add_argument("--image-size", type=positive_int, default=default.image_size)
    p.add_argument("--seed", type=non_negative_int, default=default.seed)
    _add_output_flags(p)
    p.set_defaults(run=_tune)

    p = sub.add_parser("predict", help="labels of images from an export")
    p.add_argument("export", help="export folder (SavedModel), model.onnx or model.tflite")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.set_defaults(run=_predict)

    p = sub.add_parser("data", help="describe a dataset")
    p.add_argument("data", help="embedded:NAME, an .npz, an image folder or a tfds name")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(run=_data)
    p = sub.add_parser("inspect", help="levels and weighted layers of a model")
    p.add_argument("model")
    p.set_defaults(run=_inspect)
    p = sub.add_parser("import", help="report of import_matching_layers(SOURCE, TARGET)")
    p.add_argument("source")
    p.add_argument("target")
    p.set_defaults(run=_import)
    sub.add_parser("gap", help="domain gap (MK-MMD) between two datasets at named layers")
    # Method commands with their own argument parsers (like `gap`) go into DELEGATED.
    return parser


# Sub-commands whose module parses its own arguments: name -> "module:function(argv)".
DELEGATED = {
    "gap": "kerastransfer.methods.domain_adaptation.discrepancy:domain_gap_main",
}

# What bad input raises: the command (and a recipe) answers it with one line and exit status 2.
USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    RuntimeError,
    TypeError,
    ImportError,
    OSError,
    KeyError,
)


def one_line(error):
    """The error's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__


# Benchmarks left the installed package for the repository's `benchmarks/` folder.
MOVED = {
    "bench": "benchmarks/bpa.py",
    "bench-dan": "benchmarks/domain_adaptation.py",
    "bench-spottune": "benchmarks/spottune.py",
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in MOVED:
        print(
            f"kerastransfer {argv[0]}: error: the benchmark moved out of the package; from a "
            f"checkout of the repository run `python {MOVED[argv[0]]}` with the same flags",
            file=sys.stderr,
        )
        return 2
    if argv[:1] and argv[0] in DELEGATED:
        import importlib

        module, function = DELEGATED[argv[0]].split(":")
        try:
            result = getattr(importlib.import_module(module), function)(argv[1:])
        except USER_ERRORS as e:
            print(f"kerastransfer {argv[0]}: error: {one_line(e)}", file=sys.stderr)
            return 2
        return result if isinstance(result, int) else 0  # `gap` returns its measurements
    try:
        args = build_parser().parse_args(argv)
    except UsageError as e:
        print(one_line(e), file=sys.stderr)
        return 2
    try:
        args.run(args)
    except UsageError as e:
        print(one_line(e), file=sys.stderr)
        return 2
    except USER_ERRORS as e:
        print(f"kerastransfer {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
