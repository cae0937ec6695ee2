"""`kerastransfer fit`'s command line: a flag per `FineTuneConfig` field (its default), and back.

- `add_fit_flags(parser)`: the flags of `kerastransfer fit` (the config's fields, then the
  run's: `--backup-dir`, `--log-dir`, `--devices`, `--precision`, the data pipeline's).
- `config_from_flags(args)`: the `FineTuneConfig` of parsed flags.
- `fit_command_line(source, data, config)`: the `kerastransfer fit` command that trains
  `config` (what `kerastransfer tune` prints for its best trial).
- `run_fit(args)`: the command's work, `fine_tune` with the parsed flags.

Example:

>>> fit_command_line("MobileNetV2", "embedded:usps", FineTuneConfig(method="neon", epochs=3))
'kerastransfer fit MobileNetV2 embedded:usps --method neon --epochs 3 --seed 0'
"""

import argparse
import dataclasses
import difflib
import math

from kerastransfer.fine_tuning.devices import PRECISIONS
from kerastransfer.fine_tuning.fine_tune_config import METHODS, PEFT_METHODS, FineTuneConfig
from kerastransfer.methods.bpa.dempster_shafer import GAMMA_FUNCTIONALS


def int_at_least(minimum):
    """argparse type: an integer >= `minimum`."""
    wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_ints(length=None):
    """argparse type: comma-separated positive integers (`length` of them, if given), as a
    tuple: `"28,28,1"` -> `(28, 28, 1)`."""
    wanted = "comma-separated positive integers" + (f" ({length} of them)" if length else "")

    def parse(text):
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if min(values) < 1 or (length and len(values) != length):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return values

    return parse


def fraction(low_open=False, high_open=True):
    """argparse type: a number in [0, 1), with either end open or closed."""

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


def positive_float(text):
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def augment_names(text):
    """argparse type of `--augment`: auto, none, a preset or comma-separated augmentation names
    (checked here, before any data is read; `load_dataset` takes the text as is)."""
    from kerastransfer.data.augmentation import AUGMENTATION_PRESETS, AUGMENTATIONS

    known = (*AUGMENTATIONS, *AUGMENTATION_PRESETS)
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if text.strip().lower() in ("auto", "none") or (names and all(n in known for n in names)):
        return text
    hints = []
    for name in (n for n in names if n not in known):
        close = difflib.get_close_matches(name, (*known, "auto"))
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise argparse.ArgumentTypeError(
        f"expected auto, none, a preset ({', '.join(AUGMENTATION_PRESETS)}) or comma-separated "
        f"names from {', '.join(AUGMENTATIONS)}, got {text!r}"
        + (f"; unknown: {', '.join(hints)}" if hints else "")
    )


def _rate_or_find(text):
    return "find" if text == "find" else positive_float(text)


def layer_patterns(text):
    """argparse type: comma-separated layer names or patterns, as a tuple."""
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer names or patterns, got {text!r}"
        )
    return names


# FineTuneConfig field -> (argparse type or choices, help); switches (bool fields) take no value.
_CONFIG_FLAGS = {
    "method": ((*METHODS, *PEFT_METHODS), "the transfer method"),
    "learning_rate": (_rate_or_find, "rate of the new layers, or `find` (range test)"),
    "imported_rate": (
        fraction(high_open=False),
        "imported layers' rate as a multiple of --learning-rate (0 = neon)",
    ),
    "frozen_levels": (non_negative_int, "bottom levels kept frozen"),
    "groups": (positive_int, "body groups (discriminative)"),
    "every": (positive_int, "epochs per unfreezing (gradual)"),
    "bpa": (bool, "add BPA gradient costs to the method"),
    "gamma": (GAMMA_FUNCTIONALS, "BPA's Gamma functional"),
    "train_normalization": (bool, "train the body's normalization layers"),
    "rank": (positive_int, "rank of the LoRA/DoRA updates (default 8; methods lora, dora)"),
    "lora_alpha": (positive_float, "LoRA/DoRA updates scaled by lora-alpha/rank (default: rank)"),
    "lora_dropout": (fraction(), "dropout on the LoRA/DoRA adapter path's input"),
    "lora_targets": (
        layer_patterns,
        "backbone layers to adapt: comma-separated names or patterns (default: every Dense and "
        "convolution)",
    ),
    "head_width": (non_negative_int, "units of a ReLU layer before the classifier (0: none)"),
    "dropout": (fraction(), "dropout before the classifier"),
    "warmup_epochs": (non_negative_int, "head warm-up epochs at most (on frozen features)"),
    "warmup_learning_rate": (positive_float, "the head warm-up's rate"),
    "epochs": (positive_int, "fine-tuning epochs at most"),
    "patience": (positive_int, "early stopping patience (val_loss)"),
    "image_size": (positive_int, "input size of an application source (default 96)"),
    "channels": (positive_int, "input channels of an application source (default: the data's)"),
    "samples_per_class": (positive_int, "training images per class (default: all)"),
    "validation_split": (fraction(low_open=True), "validation share of the training images"),
    "batch_size": (positive_int, "the (global) batch size"),
    "seed": (non_negative_int, "seeds the data split, initialisation and dropout"),
}


def add_fit_flags(parser):
    """Adds `kerastransfer fit`'s arguments to an argparse parser (defaults: `FineTuneConfig`'s)."""
    parser.add_argument(
        "source",
        help="keras.applications name (ImageNet weights), .keras file, or KerasHub preset "
        "(folder, kaggle:// or hf:// handle)",
    )
    parser.add_argument("data", help="embedded:NAME, an .npz, an image folder or a tfds name")
    default = FineTuneConfig()
    for name, (kind, help_text) in _CONFIG_FLAGS.items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action="store_true", help=help_text)
        elif isinstance(kind, tuple):
            parser.add_argument(flag, choices=kind, default=getattr(default, name), help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=getattr(default, name), help=help_text)
    parser.add_argument("--backup-dir", default=None, help="resume an interrupted run from here")
    parser.add_argument("--log-dir", default=None, help="TensorBoard logs")
    parser.add_argument(
        "--devices",
        type=positive_int,
        default=None,
        help="GPUs to train on (MirroredStrategy; default: all visible, or the CPU)",
    )
    parser.add_argument(
        "--precision",
        default=None,
        choices=PRECISIONS,
        help="Keras dtype policy (mixed_float16 adds loss scaling; default float32)",
    )
    parser.add_argument(
        "--augment",
        type=augment_names,
        default=None,
        help="training augmentation: auto (by kind of data: no flips for digits), digits, "
        "photos, or names such as flip,rotation",
    )
    parser.add_argument("--cache", default=None, help="keep decoded images: memory, or a folder")
    parser.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave unreadable image files out (counted in the report) instead of stopping",
    )


def config_from_flags(args):
    """The `FineTuneConfig` of parsed `kerastransfer fit` flags."""
    return FineTuneConfig(**{name: getattr(args, name) for name in _CONFIG_FLAGS})


def fit_command_line(source, data, config, *, always=()):
    """The `kerastransfer fit` command that trains `config`: the fields named in `always` (in
    that order), then every other field that differs from its default, then `--seed`."""
    default = FineTuneConfig()
    names = [*always, *(f.name for f in dataclasses.fields(config) if f.name not in always)]
    parts = ["kerastransfer", "fit", str(source), str(data)]
    for name in names:
        value = getattr(config, name)
        is_default = name not in always and value == getattr(default, name)
        if name == "seed" or value is None or is_default:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts += [flag] if value else []
        elif isinstance(value, float):
            parts += [flag, f"{value:g}" if float(f"{value:g}") == value else repr(value)]
        elif isinstance(value, tuple):  # layer patterns
            parts += [flag, ",".join(getattr(v, "__name__", str(v)) for v in value)]
        else:
            parts += [flag, str(value)]
    return " ".join([*parts, "--seed", str(config.seed)])


def run_fit(args):
    """`kerastransfer fit`: checks `--devices` against the machine, then runs `fine_tune`."""
    from kerastransfer.fine_tuning import fine_tune  # looked up at each run (tests replace it)

    if args.devices is not None:  # before any data is loaded
        from kerastransfer._command_startup import quiet_native_output
        from kerastransfer.fine_tuning.devices import check_device_count, visible_gpus

        with quiet_native_output():  # TensorFlow's device start-up lines (the CUDA probe)
            visible_gpus()
        try:
            check_device_count(args.devices)
        except ValueError as e:
            raise ValueError(f"argument --devices: {e} (see `kerastransfer fit --help`)") from None
    fine_tune(
        args.source,
        args.data,
        config=config_from_flags(args),
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
