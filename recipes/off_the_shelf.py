"""Off-the-shelf CNN features + a linear classifier, against fine-tuning the whole network.

Reproduces the "off-the-shelf" and "fine-tuning" parts of K. McGuinness's "Transfer learning"
lecture (UPC Barcelona deep learning winter school, 2018), after Razavian, Azizpour, Sullivan and
Carlsson, "CNN features off-the-shelf: an astounding baseline for recognition" (2014): use the
pooled outputs of a network trained on ImageNet as generic features and train a shallow model on
them, a softmax (logistic) regression or a linear SVM (the lecture's table, from Razavian et al.:
CNN-SVM 74.7%, CNNaug-SVM 86.8% mean accuracy on Oxford 102 Flowers); then fine-tune the network on
the target labels "until validation loss starts to increase" (early stopping on `val_loss`, best
weights restored). A control row trains the same linear probe on the features of the same
network with random weights, to show what the ImageNet features contribute.

Every row is one library call:

- the feature rows: `feature_extractor(backbone, input_shape=..., weights=...)` (the frozen,
  pooled backbone with its own preprocessing, taking raw pixels), `extract_features` on each
  split, and `fit_linear_classifier(..., normalize=True)`: features L2-normalised (as Razavian
  et al. do) and rescaled to unit RMS, early stopping on validation loss;
- the fine-tuning row: `kerastransfer.fine_tune` (the head warmed up on frozen features, then
  `--method`, BatchNormalization in inference mode, early stopping on `val_loss`).

Default: MobileNetV2 (ImageNet weights, 96x96 RGB input) on 50 Fashion-MNIST images per class from
the embedded sample (grayscale repeated to RGB and resized inside the input pipeline), 300
validation and 1,000 test images.

The ImageNet weights load offline from `$KERAS_HOME/models/` (Keras names the file by input
size, e.g. `mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5`; the 224 file works
for every size), or straight from a file with `--weights-file`. Run (a few minutes on 2 CPU
cores, one seed):

    python recipes/off_the_shelf.py --weights-file \
        ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5

`--seeds N` repeats every method with seeds 0..N-1 and reports mean +- sd. `--epochs` is the
fine-tuning's largest number of epochs. `--dataset` takes `mnist`, `usps`, `fashion_mnist`
(embedded, or their files in `--data-root`) or anything `load_dataset` takes. Larger:
`--dataset cifar10 --samples-per-class 500 --image-size 160`, `--backbone EfficientNetB0` (any
`keras.applications` name; its weights file must be in `$KERAS_HOME/models/` or given with
`--weights-file`). `--backup-dir DIR` makes fine-tuning resumable and keeps finished runs, so a
re-run after a kill skips them. `--export` writes the best method of seed 0 (by validation
accuracy) as a SavedModel that takes raw images: `saved_models/off_the_shelf`.
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
    print_table,
    run_recipe,
    set_seeds,
)

from kerastransfer import fine_tune
from kerastransfer.export import export_serving
from kerastransfer.fine_tuning import METHODS, FineTuneConfig
from kerastransfer.methods.feature_extraction import (
    extract_features,
    feature_extractor,
    fit_linear_classifier,
)
from kerastransfer.pretrained import application_builder

METHOD_NAMES = {
    "softmax": "ImageNet features + softmax regression",
    "svm": "ImageNet features + linear SVM (hinge)",
    "random": "random-weights features + softmax",
    "fine-tune": "fine-tuning, early stopping on val_loss",
}
# The lecture's table (Razavian et al. 2014), Oxford 102 Flowers, mean accuracy.
SOURCE_CLAIMS = {"svm": "74.7 (CNN-SVM; 86.8 with augmentation)"}


def parse_args(argv=None):
    default = FineTuneConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset",
        default="fashion_mnist",
        help="mnist, usps, fashion_mnist (embedded, or from --data-root), an .npz "
        "path, an image folder or a tensorflow-datasets name",
    )
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data folder")
    parser.add_argument(
        "--samples-per-class", type=int, default=50, help="training images per class (0: all)"
    )
    parser.add_argument("--validation-split", type=float, default=default.validation_split)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--backbone", default="MobileNetV2", type=_application)
    parser.add_argument(
        "--weights-file",
        default=None,
        help="ImageNet weights file (no top) of the backbone; default: Keras looks "
        "in $KERAS_HOME/models/ (downloads when online)",
    )
    parser.add_argument("--linear-epochs", type=int, default=300)
    parser.add_argument("--linear-patience", type=int, default=20)
    parser.add_argument("--method", default=default.method, choices=METHODS)
    parser.add_argument("--learning-rate", type=float, default=default.learning_rate)
    parser.add_argument("--patience", type=int, default=default.patience)
    parser.add_argument("--batch-size", type=int, default=default.batch_size)
    parser.add_argument("--skip-random", action="store_true", help="skip the random control")
    parser.add_argument("--skip-fine-tune", action="store_true")
    add_common_flags(parser, seeds=1, epochs=default.epochs)  # --epochs: fine-tuning's
    return parser.parse_args(argv)


def _application(name):
    if application_builder(name) is None:
        raise argparse.ArgumentTypeError(f"{name!r} is not a keras.applications model")
    return name


class SeedRuns:
    """The methods of one seed, each computed only when `--backup-dir` does not hold it yet
    (features are extracted once, when a method first needs them); every method starts with
    `set_seeds(seed)`, so a resumed run gives the same numbers."""

    def __init__(self, args, data, seed, cache):
        self.args, self.data, self.seed, self.cache = args, data, seed, cache
        self.weights = args.weights_file or "imagenet"
        self.models, self.features = {}, {}
        folder = os.path.join("off_the_shelf", cache.path.stem if cache.path else "runs")
        self.files = os.path.join(args.backup_dir or "", folder)

    def _set_seeds(self):
        set_seeds(self.seed, deterministic=not self.args.nondeterministic)

    def _features(self, weights):
        """(extractor, {split: (features, labels)}, seconds) of the backbone with `weights`."""
        if weights not in self.features:
            self._set_seeds()
            start = time.perf_counter()
            extractor = feature_extractor(
                self.args.backbone, input_shape=self.data.image_shape, weights=weights
            )
            splits = ("train", "validation", "test")
            feats = {s: extract_features(extractor, getattr(self.data, s)) for s in splits}
            self.features[weights] = (extractor, feats, time.perf_counter() - start)
        return self.features[weights]

    def _probe(self, key):
        weights = None if key == "random" else self.weights
        loss = "hinge" if key == "svm" else "softmax"
        extractor, feats, extract_s = self._features(weights)
        self._set_seeds()
        start = time.perf_counter()
        classifier = fit_linear_classifier(
            *feats["train"],
            self.data.info.num_classes,
            loss=loss,
            epochs=self.args.linear_epochs,
            patience=self.args.linear_patience,
            validation=feats["validation"],
            normalize=True,
            verbose=self.args.verbose,
        )
        probabilities = [keras.layers.Softmax(name="probabilities")] if loss == "hinge" else []
        self.models[key] = keras.Sequential([extractor, classifier, *probabilities], name=key)

        def accuracy(split):
            x, y = feats[split]
            return float(np.mean(np.argmax(classifier.predict(x, verbose=0), -1) == y))

        return {
            "trainable_params": int(classifier.count_params()),
            "train_s": round(extract_s + time.perf_counter() - start, 1),
            "extract_s": round(extract_s, 1),
            "val_accuracy": accuracy("validation"),
            "test_accuracy": accuracy("test"),
        }

    def _fine_tune(self):
        self._set_seeds()
        args, size = self.args, self.data.image_shape[0]
        backup = os.path.join(self.files, f"fine-tune-{self.seed}") if args.backup_dir else None
        result = fine_tune(
            args.backbone,
            self.data,
            weights=self.weights,
            method=args.method,
            learning_rate=args.learning_rate,
            epochs=args.epochs,
            patience=args.patience,
            batch_size=args.batch_size,
            image_size=size,
            channels=3,
            seed=self.seed,
            backup_dir=backup,
            verbose=args.verbose,
        )
        self.models["fine-tune"], report = result.model, result.report
        return {
            "trainable_params": int(sum(np.prod(v.shape) for v in result.model.trainable_weights)),
            "train_s": round(report.warmup_s + report.fine_tune_s, 1),
            "val_accuracy": report.val_accuracy,
            "test_accuracy": report.test_accuracy,
            "warmup_epochs": report.warmup_epochs,
            "epochs": report.epochs,
            "best_epoch": report.best_epoch,
        }

    def file(self, key):
        return os.path.join(self.files, f"{key}-{self.seed}.keras")

    def get(self, key):
        def compute():
            row = self._fine_tune() if key == "fine-tune" else self._probe(key)
            if self.args.backup_dir and self.seed == 0 and key != "random":
                atomic_save(self.models[key], self.file(key))  # to export from a resumed run
            return row

        return self.cache.get(f"{key}:{self.seed}", compute)

    def model(self, key):
        """The model of a method: from this process, or from `--backup-dir`."""
        return self.models.get(key) or keras.models.load_model(self.file(key))


def main(argv=None):
    """Run every method for every seed, print the table and return it.

    Returns:
        A dict with `rows` (one per method: key, method, trainable_params, train_s, val_accuracy
        and test_accuracy (means over seeds), val_runs, test_runs, ...), `models` (seed 0's
        Keras models trained in this process, by method key), `export_path` and `data`
        (seed 0's).
    """
    args = parse_args(argv)
    if args.weights_file and not os.path.exists(args.weights_file):
        raise FileNotFoundError(
            f"--weights-file {args.weights_file!r} does not exist. Give the path of the "
            f"backbone's ImageNet weights file (no top), or leave the flag out to let Keras use "
            f"$KERAS_HOME/models/."
        )
    set_seeds(0, deterministic=not args.nondeterministic)
    keys = ["softmax", "svm"] + ["random"] * (not args.skip_random)
    keys += ["fine-tune"] * (not args.skip_fine_tune)
    cache = RunCache(args.backup_dir, "off_the_shelf", args)
    results, first = {key: [] for key in keys}, None
    for seed in range(args.seeds):
        data = load(
            args.dataset,
            args,
            validation_split=args.validation_split,
            samples_per_class=args.samples_per_class or None,
            image_shape=(args.image_size, args.image_size, 3),
            batch_size=args.batch_size,
            seed=seed,
            data_dir=args.data_dir,
        )
        if data.validation is None:
            raise ValueError(
                "This recipe needs a validation split (early stopping): "
                "pass --validation-split > 0."
            )
        runs = SeedRuns(args, data, seed, cache)
        first = first or runs
        for key in keys:
            results[key].append(runs.get(key))
        scores = ", ".join(f"{k} {100 * results[k][-1]['test_accuracy']:.1f}%" for k in keys)
        print(f"  seed {seed}: {scores}")

    rows = []
    for key in keys:
        runs = results[key]
        row = {"key": key, "method": METHOD_NAMES[key], **runs[0]}
        for field in ("val_accuracy", "test_accuracy", "train_s"):
            row[field] = float(np.mean([r[field] for r in runs]))
        row["val_runs"] = [r["val_accuracy"] for r in runs]
        row["test_runs"] = [r["test_accuracy"] for r in runs]
        rows.append(row)
    show(rows, args, first.data)

    export_path = None
    if args.export:
        best = max((r for r in rows if r["key"] != "random"), key=lambda r: r["val_accuracy"])
        export_path = export_serving(
            first.model(best["key"]),
            os.path.join(args.saved_models, "off_the_shelf"),
            raw_shape=first.data.info.image_shape,
        )
        print(f"Exported '{best['method']}' (best validation accuracy, seed 0) to {export_path}")
    return {"rows": rows, "models": first.models, "export_path": export_path, "data": first.data}


def show(rows, args, data):
    """The results table (mean +- sd over the seeds) and what the times include."""
    table = [
        {
            "method": r["method"],
            "trainable params": f"{r['trainable_params']:,}",
            "train s": f"{r['train_s']:.1f}",
            "val acc, %": mean_sd(r["val_runs"], 100),
            "test acc, %": mean_sd(r["test_runs"], 100),
            "lecture (Flowers-102), %": SOURCE_CLAIMS.get(r["key"], "-"),
        }
        for r in rows
    ]
    print_table(
        table,
        list(table[0]),
        title=f"Off-the-shelf features vs fine-tuning: {args.backbone} on {args.dataset} "
        f"({data.size('train')} training images, {data.image_shape}), mean +- sd over "
        f"{args.seeds} seed(s)",
    )
    notes = [f"probe times include extracting every split's features ({rows[0]['extract_s']} s)"]
    tuned = [r for r in rows if r["key"] == "fine-tune"]
    if tuned:
        notes.append(
            f"fine_tune (head warm-up {tuned[0]['warmup_epochs']} epochs, then method "
            f"{args.method}) ran {tuned[0]['epochs']} epochs, best (restored) epoch "
            f"{tuned[0]['best_epoch']} (seed 0)"
        )
    print("; ".join(notes) + ".")


if __name__ == "__main__":
    run_recipe(main)
