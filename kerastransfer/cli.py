"""The `kerastransfer` command.

    kerastransfer data SOURCE              describe a dataset (embedded:mnist, an .npz, a folder, a tfds name)
    kerastransfer inspect MODEL            levels and weighted layers of a model (.keras file or application name)
    kerastransfer import SOURCE TARGET     which layers of SOURCE would be imported into TARGET (.keras)
    kerastransfer bench [...]              BPA engine benchmark (see `kerastransfer bench --help`)

Recipes (the experiments of the source documents) are scripts in `recipes/`.
"""

import argparse
import sys


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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        from kerastransfer.methods.bpa.bench import main as bench

        return bench(argv[1:])
    parser = argparse.ArgumentParser(
        prog="kerastransfer", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )
    sub = parser.add_subparsers(dest="command", required=True)
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
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, RuntimeError, TypeError) as e:
        print(f"kerastransfer {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
