"""The `kerastransfer` command.

    kerastransfer fit SOURCE DATA          fine-tune SOURCE (MobileNetV2, a .keras file) on DATA
    kerastransfer tune [DATA]              keras-tuner search; prints the best `fit` command
    kerastransfer predict EXPORT IMAGES... labels from an export (folder, .onnx or .tflite)
    kerastransfer data SOURCE              describe a dataset (embedded:mnist, .npz, folder, tfds)
    kerastransfer inspect MODEL            levels and weighted layers (.keras or application name)
    kerastransfer import SOURCE TARGET     which layers of SOURCE would be imported into TARGET
    kerastransfer gap MODEL --source S --target T   domain gap (MK-MMD) at each named layer
    kerastransfer bench [...]              BPA engine benchmark (see `kerastransfer bench --help`)
    kerastransfer bench-dan [...]          DAN / DANN step against a source-only step
    kerastransfer bench-spottune [...]     SpotTune training and routed inference against plain

Every mistake (a wrong flag value, an unknown method, missing data, a source that cannot load
offline) ends with exit status 2 and one line on stderr that names the fix.
Recipes (the experiments of the source documents) are scripts in `recipes/`.
"""

import argparse
import os
import sys

# Same as `kerastransfer.fine_tuning.METHODS` (kept here so parsing never imports TensorFlow).
METHODS = ("neon", "discriminative", "layerwise_decay", "gradual", "bpa")
FORMATS = ("saved_model", "onnx", "litert")
# Same as `kerastransfer.fine_tuning.devices.PRECISIONS`.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


class UsageError(Exception):
    """A command-line mistake: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises `UsageError` (one line) instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _fraction(low_open=False, high_open=True):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = (value > 0 if low_open else value >= 0) and (value < 1 if high_open else value <= 1)
        if not ok:
            interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {text!r}")
        return value

    return parse


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _rate_or_find(text):
    return "find" if text == "find" else _positive_float(text)


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

    data = load_dataset(args.source, data_dir=args.data_dir)
    print(data)
    print(f"classes: {data.info.num_classes} ({', '.join(data.info.class_names[:20])})")
    print(f"image shape: {data.info.image_shape}")


def _inspect(args):
    from kerastransfer.surgery import load_source, weighted_levels

    model = load_source(args.model)
    print(f"{model.name}: {model.count_params():,} parameters, input {model.input_shape}")
    for i, level in enumerate(weighted_levels(model), start=1):
        names = ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in level)
        params = sum(layer.count_params() for layer in level)
        print(f"  level {i:>3}: {names}: {params:,}")


def _import(args):
    from kerastransfer.surgery import import_matching_layers, load_source

    print(import_matching_layers(args.source, load_source(args.target)))


# ---- fit -------------------------------------------------------------------------------------


def add_fit_flags(p, *, with_source=True):
    """The flags of `kerastransfer fit` (also the choices `kerastransfer tune` prints)."""
    if with_source:
        p.add_argument("source", help="keras.applications name (ImageNet weights), or .keras file")
        p.add_argument("data", help="embedded:NAME, an .npz, an image folder or a tfds name")
    p.add_argument("--method", default="discriminative", choices=METHODS)
    p.add_argument("--epochs", type=_positive_int, default=10, help="fine-tuning epochs at most")
    p.add_argument("--patience", type=_positive_int, default=2)
    p.add_argument(
        "--warmup-epochs",
        type=_non_negative_int,
        default=200,
        help="head warm-up epochs at most (on frozen features)",
    )
    p.add_argument(
        "--learning-rate",
        type=_rate_or_find,
        default=1e-4,
        help="rate of the new layers, or `find` (learning-rate range test)",
    )
    p.add_argument(
        "--imported-rate",
        type=_fraction(high_open=False),
        default=None,
        help="imported layers' rate as a multiple of --learning-rate (0 = neon)",
    )
    p.add_argument("--frozen-levels", type=_non_negative_int, default=0)
    p.add_argument("--head-width", type=_non_negative_int, default=0)
    p.add_argument("--dropout", type=_fraction(), default=0.2)
    p.add_argument("--bpa", action="store_true", help="add BPA gradient costs to the method")
    p.add_argument("--gamma", default="agreement", choices=("agreement", "paper"))
    p.add_argument("--every", type=_positive_int, default=1, help="epochs per unfreezing (gradual)")
    p.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        help="input size of an application source (default 96)",
    )
    p.add_argument("--samples-per-class", type=_positive_int, default=None)
    p.add_argument("--validation-split", type=_fraction(low_open=True), default=0.1)
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--seed", type=_non_negative_int, default=0)


def _fit(args):
    from kerastransfer.fine_tuning import fine_tune

    _check_data(args.data)
    if args.devices is not None:  # before any data is loaded
        from kerastransfer._command_startup import quiet_native_output
        from kerastransfer.fine_tuning.devices import check_device_count, visible_gpus

        with quiet_native_output():  # TensorFlow's device start-up lines (the CUDA probe)
            visible_gpus()
        try:
            check_device_count(args.devices)
        except ValueError as e:
            raise UsageError(
                f"kerastransfer fit: error: argument --devices: {e} "
                "(see `kerastransfer fit --help`)"
            ) from None
    fine_tune(
        args.source,
        args.data,
        method=args.method,
        epochs=args.epochs,
        patience=args.patience,
        warmup_epochs=args.warmup_epochs,
        learning_rate=args.learning_rate,
        imported_rate=args.imported_rate,
        frozen_levels=args.frozen_levels,
        head_width=args.head_width,
        dropout=args.dropout,
        bpa=args.bpa,
        gamma=args.gamma,
        every=args.every,
        image_size=args.image_size,
        samples_per_class=args.samples_per_class,
        validation_split=args.validation_split,
        batch_size=args.batch_size,
        seed=args.seed,
        backup_dir=args.backup_dir,
        log_dir=args.log_dir,
        export=args.export,
        export_formats=args.formats,
        verbose=args.verbose,
        distribution=args.devices,
        precision=args.precision,
        augment=args.augment,
        cache=args.cache,
        skip_unreadable=args.skip_unreadable,
    )


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
    search(
        args.data,
        source=args.source,
        trials=args.trials,
        directory=args.directory,
        epochs=args.epochs,
        samples_per_class=args.samples_per_class,
        image_size=args.image_size,
        export=args.export,
        export_formats=args.formats,
        seed=args.seed,
        verbose=args.verbose,
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
    p.add_argument("--backup-dir", default=None, help="resume an interrupted run from here")
    p.add_argument("--log-dir", default=None, help="TensorBoard logs")
    p.add_argument(
        "--devices",
        type=_positive_int,
        default=None,
        help="GPUs to train on (MirroredStrategy; default: all visible, or the CPU)",
    )
    p.add_argument(
        "--precision",
        default=None,
        choices=PRECISIONS,
        help="Keras dtype policy (mixed_float16 adds loss scaling; default float32)",
    )
    p.add_argument(
        "--augment",
        default=None,
        help="training augmentation: auto (by kind of data: no flips for digits), digits, "
        "photos, or names such as flip,rotation",
    )
    p.add_argument("--cache", default=None, help="keep decoded images: memory, or a folder")
    p.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave unreadable image files out (counted in the report) instead of stopping",
    )
    _add_output_flags(p)
    p.set_defaults(run=_fit)

    p = sub.add_parser("tune", help="keras-tuner search over transfer choices")
    p.add_argument("data", nargs="?", default="embedded:fashion_mnist")
    p.add_argument("--source", default="MobileNetV2")
    p.add_argument("--trials", type=_positive_int, default=10)
    p.add_argument(
        "--directory",
        default="tune_results",
        help="results folder; an interrupted search resumes from it",
    )
    p.add_argument(
        "--epochs", type=_positive_int, default=10, help="fine-tuning epochs per trial at most"
    )
    p.add_argument("--samples-per-class", type=_positive_int, default=50)
    p.add_argument("--image-size", type=_positive_int, default=None)
    p.add_argument("--seed", type=_non_negative_int, default=0)
    _add_output_flags(p)
    p.set_defaults(run=_tune)

    p = sub.add_parser("predict", help="labels of images from an export")
    p.add_argument("export", help="export folder (SavedModel), model.onnx or model.tflite")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.set_defaults(run=_predict)

    p = sub.add_parser("data", help="describe a dataset")
    p.add_argument("source")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(run=_data)
    p = sub.add_parser("inspect", help="levels and weighted layers of a model")
    p.add_argument("model")
    p.set_defaults(run=_inspect)
    p = sub.add_parser("import", help="report of import_matching_layers(SOURCE, TARGET)")
    p.add_argument("source")
    p.add_argument("target")
    p.set_defaults(run=_import)
    sub.add_parser("bench", help="BPA engine benchmark")
    sub.add_parser("bench-dan", help="DAN / DANN step cost against a source-only step")
    sub.add_parser("bench-spottune", help="SpotTune cost against plain fine-tuning")
    sub.add_parser("gap", help="domain gap (MK-MMD) between two datasets at named layers")
    # Method commands with their own argument parsers (like `bench`) go into DELEGATED.
    return parser


# Sub-commands whose module parses its own arguments: name -> "module:function(argv)".
DELEGATED = {
    "bench": "kerastransfer.methods.bpa.bench:main",
    "bench-dan": "kerastransfer.methods.domain_adaptation.bench:main",
    "bench-spottune": "kerastransfer.methods.spottune.bench:main",
    "gap": "kerastransfer.methods.domain_adaptation.discrepancy:domain_gap_main",
}

_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    RuntimeError,
    TypeError,
    ImportError,
    OSError,
    KeyError,
)


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in DELEGATED:
        import importlib

        module, function = DELEGATED[argv[0]].split(":")
        try:
            result = getattr(importlib.import_module(module), function)(argv[1:])
        except _ERRORS as e:
            print(f"kerastransfer {argv[0]}: error: {_one_line(e)}", file=sys.stderr)
            return 2
        return result if isinstance(result, int) else 0  # some return their measurements
    try:
        args = build_parser().parse_args(argv)
    except UsageError as e:
        print(_one_line(e), file=sys.stderr)
        return 2
    try:
        args.run(args)
    except UsageError as e:
        print(_one_line(e), file=sys.stderr)
        return 2
    except _ERRORS as e:
        print(f"kerastransfer {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
