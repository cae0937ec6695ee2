"""Transfer learning the Intel neon way: TL-1, TL-2, TL-3 and feature extraction.

Reproduces, at laptop scale, the experiments of Intel's neon course on transfer learning
(Intel Nervana, "Transfer learning with neon", VGG-16 on IMDB-WIKI faces): a primary network
trained on task A is transferred to task B by importing its matching layers into a target network
with a new head, then

- TL-1: only the new layers learn; imported layers get learning rate 0 (neon MultiOptimizer);
- TL-2: all layers are fine-tuned from the imported weights;
- TL-3: the same structure trained from random initial weights;
- FE:   the primary network as a fixed feature extractor + a linear classifier
        (softmax, or `--linear hinge` for a linear SVM);
- direct use: the primary network applied unchanged (when both tasks have the same classes).

The course used VGG-16 on IMDB-WIKI faces (90 epochs on a Tesla K40). The default here is a
LeNet-style CNN trained on MNIST and transferred to USPS digits, both embedded in the package, so
the run needs no network and finishes in a few minutes on 2 CPU cores:

    python recipes/neon_transfer.py

Scale up with flags: full datasets (`--source ../shared/data/mnist.npz`, tfds names such as
`--source svhn_cropped --target mnist`), more epochs, or an ImageNet MobileNetV2 backbone
(`--backbone mobilenet_v2 --image-size 96`). `--export` writes the best transfer model as a
SavedModel for serving into `saved_models/neon_transfer/`. `--backup-dir DIR` makes every fit
resumable (`kerastransfer.callbacks.BackupAndRestore`) and keeps finished runs. `--seeds N`
repeats every transfer with N seeds (mean +- sd); seeded and deterministic by default.
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
    load,
    mean_sd,
    primary_path,
    print_table,
    run_recipe,
    set_seeds,
    tag,
    train_or_load_primary,
)
from _common import (
    fit as fit_resumable,
)

from kerastransfer import optimizers, surgery
from kerastransfer.export import export_serving
from kerastransfer.methods import feature_extraction
from kerastransfer.models import mobilenet_v2_classifier, small_cnn

PUBLISHED = {"TL-1": 85.6, "TL-2": 85.3, "TL-3": 86.3}  # the neon course, VGG-16 on IMDB-WIKI, %


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--source",
        default="mnist",
        help="primary (task A) dataset: mnist, usps, "
        "fashion_mnist (embedded, or from --data-root), an .npz, a folder or a tfds name",
    )
    p.add_argument("--target", default="usps", help="target (task B) dataset, as --source")
    p.add_argument("--backbone", choices=["small_cnn", "mobilenet_v2"], default="small_cnn")
    p.add_argument("--image-size", type=int, default=28, help="side of the network input")
    p.add_argument(
        "--channels",
        type=int,
        choices=[1, 3],
        default=None,
        help="network input channels (default: 1 for small_cnn, 3 for mobilenet_v2)",
    )
    p.add_argument("--primary-epochs", type=int, default=4)
    p.add_argument("--patience", type=int, default=2, help="early stopping on val_loss")
    p.add_argument(
        "--samples-per-class", type=int, default=None, help="target training images per class"
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--lr", type=float, default=0.01, help="base SGD rate (neon: 0.001 for 90 epochs)"
    )
    p.add_argument("--linear", choices=["softmax", "hinge"], default="softmax")
    p.add_argument("--no-cache", action="store_true", help="retrain the primary network")
    add_common_flags(p, seeds=3, epochs=8, verbose=0)  # --epochs: max epochs per transfer
    return p.parse_args(argv)


def build(args, num_classes, weights=None):
    shape = (args.image_size, args.image_size, args.channels)
    if args.backbone == "mobilenet_v2":
        return mobilenet_v2_classifier(shape, num_classes, weights=weights or None)
    return small_cnn(shape, num_classes)


def early_stopping(args):
    return keras.callbacks.EarlyStopping(
        "val_loss", patience=args.patience, restore_best_weights=True
    )


def fit(model, data, args, name, epochs):
    start = time.perf_counter()
    history = fit_resumable(
        model,
        data,
        epochs=epochs,
        backup_dir=args.backup_dir,
        name=name,
        callbacks=[early_stopping(args)],
        verbose=args.verbose,
    )
    return time.perf_counter() - start, len(history.history["loss"])


def sgd(args):
    return keras.optimizers.SGD(args.lr, momentum=0.9, weight_decay=0.0005)


def primary_network(args, shape):
    """Train the task-A network, or load it from saved_models/primary/ when cached."""
    path = primary_path(
        args.saved_models,
        "neon_transfer",
        tag(args.source, args.backbone, shape),
        epochs=args.primary_epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        data_root=args.data_root,
    )
    source = load(args.source, args, image_shape=shape, batch_size=args.batch_size, seed=0)
    weights = "imagenet" if args.backbone == "mobilenet_v2" else None
    print(f"Primary network on {args.source} ({source})")
    model, cached = train_or_load_primary(
        lambda n: build(args, n, weights=weights),
        source,
        path,
        epochs=args.primary_epochs,
        callbacks=[early_stopping(args)],
        backup_dir=args.backup_dir,
        verbose=args.verbose,
        retrain=args.no_cache,
    )
    print(f"Primary network: {path}{' (cached; --no-cache retrains it)' if cached else ''}")
    return model, source


def transfer_model(args, primary, num_classes):
    """Target network: the primary's structure with a new head, matching layers imported."""
    target = surgery.replace_head(
        build(args, num_classes), num_classes, cut_layer="dropout", pooling="flatten"
    )
    report = surgery.import_matching_layers(primary, target)
    return target, report


EXPERIMENTS = [
    ("TL-1", "Learning the weights of the last layers", "imported lr = 0"),
    ("TL-2", "Fine-tuning of all weights", "all layers lr = base"),
    ("TL-3", "Complete training from random initial weights", "random init"),
]


def transfer(args, primary, target, exp_id, seed):
    """One TL experiment; returns (accuracy, seconds, epochs, model)."""
    set_seeds(seed, deterministic=not args.nondeterministic)
    model, report = transfer_model(args, primary, target.info.num_classes)
    optimizer = optimizers.neon_optimizer(report, sgd(args)) if exp_id == "TL-1" else sgd(args)
    if exp_id == "TL-3":
        model = keras.models.clone_model(model)  # same structure, fresh random weights
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    seconds, epochs = fit(model, target, args, f"{exp_id}-{seed}", args.epochs)
    return evaluate(model, target), seconds, epochs, model


def feature_extraction_run(args, primary, target, seed):
    """The primary network as a fixed feature extractor + a linear classifier."""
    set_seeds(seed, deterministic=not args.nondeterministic)
    start = time.perf_counter()
    layer = "fc1" if args.backbone == "small_cnn" else None  # None: the pooled backbone
    extractor = feature_extraction.feature_extractor(primary, layer)
    x_train, y_train = feature_extraction.extract_features(extractor, target.dataset("train"))
    x_val, y_val = feature_extraction.extract_features(extractor, target.validation)
    classifier = feature_extraction.fit_linear_classifier(
        x_train, y_train, target.info.num_classes, loss=args.linear, validation=(x_val, y_val)
    )
    x_test, y_test = feature_extraction.extract_features(extractor, target.test)
    accuracy = float(np.mean(np.argmax(classifier.predict(x_test, verbose=0), -1) == y_test))
    head = [keras.layers.Softmax()] if args.linear == "hinge" else []
    model = keras.Sequential([extractor, classifier, *head])
    return accuracy, time.perf_counter() - start, 0, model


def evaluate(model, data):
    return model.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]


def main(argv=None):
    args = parse_args(argv)
    set_seeds(0, deterministic=not args.nondeterministic)
    args.channels = args.channels or (3 if args.backbone == "mobilenet_v2" else 1)
    shape = (args.image_size, args.image_size, args.channels)
    primary, source = primary_network(args, shape)
    cache = RunCache(args.backup_dir, "neon_transfer", args)
    rows, best = [], None
    experiments = (
        [("direct", "Primary network used as it is", "no training")]
        + EXPERIMENTS
        + [("FE", "Fixed feature extractor + linear classifier", f"linear {args.linear}")]
    )
    for exp_id, description, params in experiments:
        runs = []
        for seed in range(args.seeds):
            target = load(
                args.target,
                args,
                image_shape=shape,
                batch_size=args.batch_size,
                samples_per_class=args.samples_per_class,
                seed=seed,
            )
            if exp_id == "direct" and source.info.num_classes != target.info.num_classes:
                break  # direct use needs the same classes
            model_file = os.path.join(
                args.backup_dir or "", "neon_transfer", f"{exp_id}-{seed}.keras"
            )

            def run(exp_id=exp_id, target=target, seed=seed, model_file=model_file):
                if exp_id == "direct":
                    primary.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
                    accuracy, seconds, epochs, model = evaluate(primary, target), 0.0, 0, primary
                elif exp_id == "FE":
                    accuracy, seconds, epochs, model = feature_extraction_run(
                        args, primary, target, seed
                    )
                else:
                    accuracy, seconds, epochs, model = transfer(args, primary, target, exp_id, seed)
                if args.backup_dir and args.export and exp_id != "direct":
                    atomic_save(model, model_file)
                models[(exp_id, seed)] = model
                return dict(accuracy=accuracy, seconds=seconds, epochs=epochs)

            models = {}
            r = cache.get(f"{exp_id}:{seed}", run)
            runs.append(r)
            print(
                f"  {exp_id} seed {seed}: accuracy {100 * r['accuracy']:.1f}% "
                f"({r['epochs']} epochs, {r['seconds']:.1f} s)"
            )
            if exp_id != "direct" and (best is None or r["accuracy"] > best[0]):
                best = (r["accuracy"], exp_id, models.get((exp_id, seed)), model_file)
        if not runs:
            continue
        accuracies = [r["accuracy"] for r in runs]
        rows.append(
            {
                "Network id": exp_id,
                "experiment": description,
                "training": params
                if exp_id in ("direct", "FE")
                else f"{mean_sd([r['epochs'] for r in runs], digits=1)} epochs, {params}",
                "accuracy, %": mean_sd(accuracies, 100, 1),
                "training time, s": mean_sd([r["seconds"] for r in runs], digits=1),
                "neon course, %": PUBLISHED.get(exp_id, ""),
                "accuracy": float(np.mean(accuracies)),
                "id": exp_id,
                "seconds": float(np.mean([r["seconds"] for r in runs])),
            }
        )
    print_table(
        rows,
        [
            "Network id",
            "experiment",
            "training",
            "accuracy, %",
            "training time, s",
            "neon course, %",
        ],
        title=f"Transfer {args.source} -> {args.target}, backbone {args.backbone}, "
        f"mean +- sd over {args.seeds} seed(s)",
    )
    if args.export:
        accuracy, exp_id, model, model_file = best
        model = model or keras.models.load_model(model_file)
        path = export_serving(
            model,
            os.path.join(args.saved_models, "neon_transfer"),
            raw_shape=target.info.image_shape,
        )
        print(f"Exported {exp_id} (accuracy {100 * accuracy:.1f}%) to {path}")
    return rows


if __name__ == "__main__":
    run_recipe(main)
