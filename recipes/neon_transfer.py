"""Transfer learning the Intel neon way: TL-1, TL-2, TL-3 and feature extraction.

Reproduces, at laptop scale, the experiments of the neon course on transfer learning
(`shared/seeds/001_8dbeee1f01b071be.txt`): a primary network trained on task A is transferred to
task B by importing its matching layers into a target network with a new head, then

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
SavedModel for serving into `saved_models/neon_transfer/`. `--backup-dir` makes every fit
resumable (`keras.callbacks.BackupAndRestore`).
"""

import argparse
import os
import time

import keras
import numpy as np

from kerastransfer import optimizers, surgery
from kerastransfer.methods import feature_extraction
from kerastransfer.data import load_dataset
from kerastransfer.export import export_serving
from kerastransfer.models import mobilenet_v2_classifier, small_cnn, train_or_load_primary

SAVED_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "saved_models")
PUBLISHED = {"TL-1": 85.6, "TL-2": 85.3, "TL-3": 86.3}  # seed 001, VGG-16 on IMDB-WIKI, %


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default="embedded:mnist", help="primary (task A) dataset")
    p.add_argument("--target", default="embedded:usps", help="target (task B) dataset")
    p.add_argument("--backbone", choices=["small_cnn", "mobilenet_v2"], default="small_cnn")
    p.add_argument("--image-size", type=int, default=28, help="side of the network input")
    p.add_argument("--channels", type=int, choices=[1, 3], default=None,
                   help="network input channels (default: 1 for small_cnn, 3 for mobilenet_v2)")
    p.add_argument("--primary-epochs", type=int, default=4)
    p.add_argument("--epochs", type=int, default=8, help="max epochs per transfer experiment")
    p.add_argument("--patience", type=int, default=2, help="early stopping on val_loss")
    p.add_argument("--samples-per-class", type=int, default=None, help="target training images per class")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01, help="base SGD rate (neon: 0.001 for 90 epochs)")
    p.add_argument("--linear", choices=["softmax", "hinge"], default="softmax")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-cache", action="store_true", help="retrain the primary network")
    p.add_argument("--backup-dir", default=None, help="make fits resumable (BackupAndRestore)")
    p.add_argument("--export", action="store_true", help="export the best model for serving")
    p.add_argument("--saved-models", default=SAVED_MODELS,
                   help="where the primary network is cached and exports go (saved_models/)")
    p.add_argument("--verbose", type=int, default=2)
    return p.parse_args(argv)


def build(args, num_classes, weights=None):
    shape = (args.image_size, args.image_size, args.channels)
    if args.backbone == "mobilenet_v2":
        return mobilenet_v2_classifier(shape, num_classes, weights=weights or None)
    return small_cnn(shape, num_classes)


def callbacks(args, name):
    cbs = [keras.callbacks.EarlyStopping("val_loss", patience=args.patience, restore_best_weights=True)]
    if args.backup_dir:
        cbs.append(keras.callbacks.BackupAndRestore(os.path.join(args.backup_dir, name)))
    return cbs


def fit(model, data, args, name, epochs):
    start = time.perf_counter()
    history = model.fit(
        data.train, validation_data=data.validation, epochs=epochs,
        callbacks=callbacks(args, name), verbose=args.verbose, shuffle=False,  # data.train reshuffles
    )
    return time.perf_counter() - start, len(history.history["loss"])


def sgd(args):
    return keras.optimizers.SGD(args.lr, momentum=0.9, weight_decay=0.0005)


def primary_network(args, shape):
    """Train the task-A network, or load it from saved_models/primary/ when cached."""
    tag = f"{args.source}_{args.backbone}_{'x'.join(map(str, shape))}_{args.seed}".replace(":", "-").replace("/", "_")
    path = os.path.join(args.saved_models, "primary", f"{tag}.keras")
    source = load_dataset(args.source, image_shape=shape, batch_size=args.batch_size, seed=args.seed)
    weights = "imagenet" if args.backbone == "mobilenet_v2" else None
    print(f"Primary network on {args.source} ({source})")
    model, cached = train_or_load_primary(
        lambda n: build(args, n, weights=weights), source, path, epochs=args.primary_epochs,
        callbacks=callbacks(args, "primary"), verbose=args.verbose, retrain=args.no_cache,
    )
    print(f"Primary network: {path}{' (cached; --no-cache retrains it)' if cached else ''}")
    return model, source


def transfer_model(args, primary, num_classes):
    """Target network: the primary's structure with a new head, matching layers imported."""
    target = surgery.replace_head(build(args, num_classes), num_classes, cut_layer="dropout", pooling="flatten")
    report = surgery.import_matching_layers(primary, target)
    return target, report


def main(argv=None):
    args = parse_args(argv)
    args.channels = args.channels or (3 if args.backbone == "mobilenet_v2" else 1)
    keras.utils.set_random_seed(args.seed)
    shape = (args.image_size, args.image_size, args.channels)
    primary, source = primary_network(args, shape)
    target = load_dataset(
        args.target, image_shape=shape, samples_per_class=args.samples_per_class,
        batch_size=args.batch_size, seed=args.seed,
    )
    num_classes = target.info.num_classes
    print(f"Target data: {target}")
    rows = []

    def evaluate(model):
        return model.evaluate(target.test, verbose=0, return_dict=True)["accuracy"]

    if source.info.num_classes == num_classes:
        primary.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        rows.append(dict(id="direct", experiment="Direct use of the primary network",
                         params="no training", accuracy=evaluate(primary), seconds=0.0, model=primary))

    experiments = [
        ("TL-1", "Learning the weights of the last layers", "imported lr = 0"),
        ("TL-2", "Fine-tuning of all weights", "all layers lr = base"),
        ("TL-3", "Complete training from random initial weights", "random init"),
    ]
    for exp_id, description, params in experiments:
        keras.utils.set_random_seed(args.seed)
        model, report = transfer_model(args, primary, num_classes)
        if exp_id == "TL-1":
            optimizer = optimizers.neon_optimizer(report, sgd(args))
        else:
            optimizer = sgd(args)
        if exp_id == "TL-3":
            model = keras.models.clone_model(model)  # same structure, fresh random weights
            print(f"{exp_id}: {description}")
        else:
            print(f"{exp_id}: {description} ({len(report.imported)} layers imported: {', '.join(report.imported)})")
        model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
        seconds, epochs = fit(model, target, args, exp_id, args.epochs)
        rows.append(dict(id=exp_id, experiment=description,
                         params=f"epochs = {epochs}, base_lr = {args.lr}, {params}",
                         accuracy=evaluate(model), seconds=seconds, model=model))

    print(f"FE: primary network as a feature extractor + linear {args.linear} classifier")
    start = time.perf_counter()
    extractor = feature_extraction.feature_extractor(primary, "fc1" if args.backbone == "small_cnn" else "dropout")
    x_train, y_train = feature_extraction.extract_features(extractor, target.dataset("train"))
    x_val, y_val = feature_extraction.extract_features(extractor, target.validation)
    classifier = feature_extraction.fit_linear_classifier(
        x_train, y_train, num_classes, loss=args.linear, validation=(x_val, y_val)
    )
    x_test, y_test = feature_extraction.extract_features(extractor, target.test)
    accuracy = float(np.mean(np.argmax(classifier.predict(x_test, verbose=0), -1) == y_test))
    fe_model = keras.Sequential([extractor, classifier, *([keras.layers.Softmax()] if args.linear == "hinge" else [])])
    rows.append(dict(id="FE", experiment="Fixed feature extractor + linear classifier",
                     params=f"linear {args.linear}", accuracy=accuracy,
                     seconds=time.perf_counter() - start, model=fe_model))

    print_table(rows, args)
    if args.export:
        best = max((r for r in rows if r["id"] != "direct"), key=lambda r: r["accuracy"])
        path = export_serving(
            best["model"], os.path.join(args.saved_models, "neon_transfer"), raw_shape=target.info.image_shape
        )
        print(f"Exported {best['id']} (accuracy {100 * best['accuracy']:.1f}%) to {path}")
    return [{k: v for k, v in r.items() if k != "model"} for r in rows]


def print_table(rows, args):
    print(f"\nTransfer {args.source} -> {args.target}, backbone {args.backbone}")
    print(f"{'Network id':<10} | {'Experiment':<46} | {'Training parameters':<50} | {'Accuracy, %':>11} | "
          f"{'Training time, s':>16} | {'neon course, %':>14}")
    print("-" * 160)
    for r in rows:
        published = PUBLISHED.get(r["id"])
        print(f"{r['id']:<10} | {r['experiment']:<46} | {r['params']:<50} | {100 * r['accuracy']:>11.1f} | "
              f"{r['seconds']:>16.1f} | {published if published else '':>14}")


if __name__ == "__main__":
    main()
