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

Default: MobileNetV2 (ImageNet weights, 96x96 RGB input) on 50 Fashion-MNIST images per class from
the embedded sample (grayscale repeated to RGB and resized inside the input pipeline), 300
validation and 1,000 test images. Features are L2-normalised (as Razavian et al. do) and
rescaled to unit RMS before the linear classifier. Fine-tuning starts from the ImageNet weights
with the trained softmax probe as its head, trains every layer except BatchNormalization (kept in
inference mode, the Keras fine-tuning guide's advice for small target sets) at a low rate, and
stops when validation loss stops improving, restoring the best epoch.

The ImageNet weights load offline from `$KERAS_HOME/models/` (Keras names the file by input
size, e.g. `mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5`; the 224 file works
for every size), or straight from a file with `--weights-file`. Run (about 2-3 minutes on 2 CPU
cores, one seed):

    python recipes/off_the_shelf.py --weights-file \
        ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5

`--seeds N` repeats every method with seeds 0..N-1 (the training images drawn, the probes' and
heads' initial weights) and reports mean +- sd (N times the run time); seeded and deterministic by
default. `--epochs` is the fine-tuning's largest number of epochs. `--dataset` takes `mnist`,
`usps`, `fashion_mnist` (embedded, or their files in `--data-root`) or anything `load_dataset`
takes. Larger: `--dataset cifar10 --samples-per-class 500 --image-size 160` (tensorflow-datasets
name; offline it needs a prepared copy, see `--data-dir`), `--backbone EfficientNetB0` (any
backbone of `BACKBONES`; its weights file must be in `$KERAS_HOME/models/` or given with
`--weights-file`). `--backup-dir DIR` makes fine-tuning resumable and keeps finished runs, so a
re-run after a kill skips them. `--export` writes the best method of seed 0 (by validation
accuracy) as a SavedModel that takes raw images: `saved_models/off_the_shelf`.
"""

import argparse
import os
import time

import keras
import numpy as np
from _common import RunCache, add_common_flags, atomic_save, fit, load, mean_sd, set_seeds

from kerastransfer.export import export_serving
from kerastransfer.methods.feature_extraction import extract_features, fit_linear_classifier
from kerastransfer.models import mobilenet_v2_classifier

# keras.applications backbones that take raw [0, 255] pixels (their preprocessing is built in),
# so the exported model needs no Python-side preprocessing. MobileNetV2 gets a Rescaling layer.
BACKBONES = (
    "mobilenet_v2",
    "EfficientNetB0",
    "EfficientNetB1",
    "EfficientNetB2",
    "EfficientNetB3",
    "EfficientNetV2B0",
    "EfficientNetV2B1",
    "EfficientNetV2S",
    "ConvNeXtTiny",
    "ConvNeXtSmall",
)
# The lecture's table (Razavian et al. 2014), Oxford 102 Flowers, mean accuracy.
SOURCE_CLAIMS = {
    "softmax": "-",
    "svm": "74.7 (CNN-SVM; 86.8 with augmentation)",
    "random": "-",
    "fine-tune": "-",
}


def parse_args(argv=None):
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
    parser.add_argument("--validation-split", type=float, default=0.1)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--backbone", default="mobilenet_v2", choices=BACKBONES)
    parser.add_argument(
        "--weights-file",
        default=None,
        help="ImageNet weights file (no top) of the backbone; default: Keras looks "
        "in $KERAS_HOME/models/ (downloads when online)",
    )
    parser.add_argument("--linear-epochs", type=int, default=300)
    parser.add_argument("--linear-patience", type=int, default=20)
    parser.add_argument("--fine-tune-patience", type=int, default=2)
    parser.add_argument("--fine-tune-lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--skip-random", action="store_true", help="skip the random-weights control row"
    )
    parser.add_argument("--skip-fine-tune", action="store_true")
    add_common_flags(parser, seeds=1, epochs=10)  # --epochs: most fine-tuning epochs
    return parser.parse_args(argv)


def build_classifier(backbone, input_shape, num_classes, weights="imagenet"):
    """`inputs -> backbone (pooled) -> Dropout "dropout" -> Dense softmax "classifier"`.

    Takes raw pixels in [0, 255]; `weights` is "imagenet", None, or a weights-file path.
    """
    if backbone == "mobilenet_v2":
        return mobilenet_v2_classifier(input_shape, num_classes, weights=weights)
    if backbone not in BACKBONES:
        raise ValueError(f"Unknown backbone {backbone!r}. Choose one of {', '.join(BACKBONES)}.")
    base = getattr(keras.applications, backbone)(
        include_top=False, weights=weights, input_shape=input_shape, pooling="avg"
    )
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Dropout(0.2, name="dropout")(base(inputs))
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=f"{backbone.lower()}_transfer")


def pooled_features(model):
    """The frozen part of a `build_classifier` model: raw images -> pooled backbone features."""
    extractor = keras.Model(
        model.inputs, model.get_layer("dropout").input, name=f"{model.name}_features"
    )
    extractor.trainable = False
    return extractor


def feature_normalizer(num_features):
    """L2-normalise each feature vector (as Razavian et al. do), rescaled by sqrt(d) so a feature
    has unit root-mean-square: the linear probe sees every backbone's features at one scale. (It
    matters for the random-weights control, whose raw pooled features are ~1e-12.)"""
    inputs = keras.Input((num_features,), name="features")
    x = keras.layers.UnitNormalization(name="l2_normalize")(inputs)
    x = keras.layers.Rescaling(float(np.sqrt(num_features)), name="unit_rms")(x)
    return keras.Model(inputs, x, name="feature_normalizer")


def compose(extractor, normalizer, linear, name):
    """One model from raw images to probabilities: extractor -> normalizer -> linear classifier
    (a softmax added for the SVM, whose outputs are scores). This is what gets exported."""
    x = linear(normalizer(extractor.output))
    if not isinstance(linear.layers[-1], keras.layers.Softmax):
        x = keras.layers.Softmax(name="probabilities")(x)
    return keras.Model(extractor.inputs, x, name=name)


def accuracy(model, dataset):
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return float(model.evaluate(dataset, verbose=0, return_dict=True)["accuracy"])


def features_of(extractor, data):
    """Pooled, normalised features of every split, the normaliser, and the extraction time."""
    start = time.perf_counter()
    raw = {
        split: extract_features(extractor, getattr(data, split))
        for split in ("train", "validation", "test")
    }
    normalizer = feature_normalizer(raw["train"][0].shape[1])
    feats = {
        split: (normalizer.predict(x, verbose=0, batch_size=256), y)
        for split, (x, y) in raw.items()
    }
    return feats, normalizer, time.perf_counter() - start


def linear_probe(feats, extract_s, num_classes, loss, args):
    """Fit a linear classifier (early stopping on validation loss); return its row and model."""
    start = time.perf_counter()
    clf = fit_linear_classifier(
        *feats["train"],
        num_classes,
        loss=loss,
        epochs=args.linear_epochs,
        patience=args.linear_patience,
        validation=feats["validation"],
        verbose=args.verbose,
    )
    train_s = extract_s + time.perf_counter() - start

    def acc(split):
        x, y = feats[split]
        return float(np.mean(np.argmax(clf.predict(x, verbose=0), -1) == y))

    return {
        "trainable_params": int(clf.count_params()),
        "train_s": round(train_s, 1),
        "extract_s": round(extract_s, 1),
        "val_accuracy": acc("validation"),
        "test_accuracy": acc("test"),
        "features": int(feats["train"][0].shape[1]),
    }, clf


def fine_tune(data, normalizer, probe, weights, args, name="fine-tune"):
    """The whole network trained on the target labels, from ImageNet weights with the trained
    softmax probe (and its feature normaliser) as the head, early stopping on validation loss."""
    net = build_classifier(args.backbone, data.image_shape, data.info.num_classes, weights)
    backbone = keras.Model(net.inputs, net.get_layer("dropout").input, name="backbone")
    for layer in backbone.layers:
        for sub in layer.layers if isinstance(layer, keras.Model) else [layer]:
            if isinstance(sub, keras.layers.BatchNormalization):
                sub.trainable = False  # inference mode: keep the ImageNet statistics
    head = keras.models.clone_model(probe)
    head.set_weights(probe.get_weights())
    model = compose(backbone, normalizer, head, "fine_tuned")
    normalizer.trainable = False
    model.compile(
        keras.optimizers.Adam(args.fine_tune_lr),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    stop = keras.callbacks.EarlyStopping(
        "val_loss", patience=args.fine_tune_patience, restore_best_weights=True
    )
    start = time.perf_counter()
    history = fit(
        model,
        data,
        epochs=args.epochs,
        backup_dir=args.backup_dir,
        name=name,
        callbacks=[stop],
        verbose=args.verbose,
    )
    train_s = time.perf_counter() - start
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    return {
        "trainable_params": trainable,
        "train_s": round(train_s, 1),
        "val_accuracy": accuracy(model, data.validation),
        "test_accuracy": accuracy(model, data.test),
        "epochs": len(history.history["loss"]),
        "best_epoch": int(np.argmin(history.history["val_loss"])) + 1,
    }, model


class SeedRuns:
    """The methods of one seed, each computed only when `--backup-dir` does not hold it yet.
    Features are extracted once, when a method first needs them; every method starts with
    `set_seeds(seed)`, so a resumed run gives the same numbers."""

    def __init__(self, args, data, seed, cache, weights):
        self.args, self.data, self.seed, self.cache, self.weights = args, data, seed, cache, weights
        self.models, self.probes, self.features = {}, {}, {}
        digest = cache.path.stem if cache.path else "runs"
        self.prefix = os.path.join("off_the_shelf", digest)  # BackupAndRestore folders
        self.files = os.path.join(args.backup_dir or "", self.prefix)

    def _set_seeds(self):
        set_seeds(self.seed, deterministic=not self.args.nondeterministic)

    def _features(self, kind):
        """(extractor, features, normalizer, extraction seconds) of the ImageNet or random net."""
        if kind not in self.features:
            self._set_seeds()
            weights = self.weights if kind == "imagenet" else None
            extractor = pooled_features(
                build_classifier(
                    self.args.backbone, self.data.image_shape, self.data.info.num_classes, weights
                )
            )
            self.features[kind] = (extractor, *features_of(extractor, self.data))
        return self.features[kind]

    def _probe(self, key, loss, kind="imagenet"):
        extractor, feats, normalizer, extract_s = self._features(kind)
        self._set_seeds()
        row, clf = linear_probe(feats, extract_s, self.data.info.num_classes, loss, self.args)
        self.probes[key] = clf
        name = "random_features" if kind == "random" else f"off_the_shelf_{key}"
        self.models[key] = compose(extractor, normalizer, clf, name)
        return row

    def _train(self, key):
        if key == "softmax":
            return self._probe("softmax", "softmax")
        if key == "svm":
            return self._probe("svm", "hinge")
        if key == "random":
            return self._probe("random", "softmax", kind="random")
        if "softmax" not in self.probes:  # its head: the softmax probe (from a cached run)
            self._probe("softmax", "softmax")
        _, _, normalizer, _ = self._features("imagenet")
        self._set_seeds()
        row, model = fine_tune(
            self.data,
            normalizer,
            self.probes["softmax"],
            self.weights,
            self.args,
            name=os.path.join(self.prefix, f"fine-tune-{self.seed}"),
        )
        self.models["fine-tune"] = model
        return row

    def file(self, key):
        return os.path.join(self.files, f"{key}-{self.seed}.keras")

    def get(self, key):
        def compute():
            row = self._train(key)
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
        A dict with `rows` (one per method: method, trainable_params, train_s, val_accuracy and
        test_accuracy (means over seeds), val_sd, test_sd, test_runs, ...), `models` (seed 0's
        composed/fine-tuned Keras models trained in this process, by method key),
        `export_path` and `data` (seed 0's).
    """
    args = parse_args(argv)
    weights = args.weights_file or "imagenet"
    if args.weights_file and not os.path.exists(args.weights_file):
        raise FileNotFoundError(
            f"--weights-file {args.weights_file!r} does not exist. Give the path of the "
            f"backbone's ImageNet weights file (no top), or leave the flag out to let Keras use "
            f"$KERAS_HOME/models/."
        )
    set_seeds(0, deterministic=not args.nondeterministic)
    size = args.image_size
    keys = (
        ["softmax", "svm"]
        + ["random"] * (not args.skip_random)
        + ["fine-tune"] * (not args.skip_fine_tune)
    )
    labels = {
        "softmax": "ImageNet features + softmax regression",
        "svm": "ImageNet features + linear SVM (hinge)",
        "random": "random-weights features + softmax",
        "fine-tune": "fine-tuning, early stopping on val_loss",
    }
    cache = RunCache(args.backup_dir, "off_the_shelf", args)
    results = {key: [] for key in keys}
    for seed in range(args.seeds):
        data = load(
            args.dataset,
            args,
            validation_split=args.validation_split,
            samples_per_class=args.samples_per_class or None,
            image_shape=(size, size, 3),
            batch_size=args.batch_size,
            seed=seed,
            data_dir=args.data_dir,
        )
        if data.validation is None:
            raise ValueError(
                "This recipe needs a validation split (early stopping): "
                "pass --validation-split > 0."
            )
        if seed == 0:
            print(f"{data}; images converted to {data.image_shape}; backbone {args.backbone}")
            first, first_data = SeedRuns(args, data, seed, cache, weights), data
        runs = first if seed == 0 else SeedRuns(args, data, seed, cache, weights)
        for key in keys:
            results[key].append(runs.get(key))
        print(
            f"  seed {seed}: "
            + ", ".join(f"{key} {100 * results[key][-1]['test_accuracy']:.1f}%" for key in keys)
        )

    rows = []
    for key in keys:
        runs = results[key]
        row = {"key": key, "method": labels[key], **runs[0]}
        for field in ("val_accuracy", "test_accuracy", "train_s"):
            row[field] = float(np.mean([r[field] for r in runs]))
        row["val_sd"] = float(np.std([r["val_accuracy"] for r in runs]))
        row["test_sd"] = float(np.std([r["test_accuracy"] for r in runs]))
        row["val_runs"] = [r["val_accuracy"] for r in runs]
        row["test_runs"] = [r["test_accuracy"] for r in runs]
        rows.append(row)

    print_table(rows, args, first_data)
    export_path = None
    if args.export:
        best = max((r for r in rows if r["key"] != "random"), key=lambda r: r["val_accuracy"])
        export_path = export_serving(
            first.model(best["key"]),
            os.path.join(args.saved_models, "off_the_shelf"),
            raw_shape=first_data.info.image_shape,
        )
        print(
            f"Exported '{best['method']}' (best validation accuracy; seed 0's model) to "
            f"{export_path}"
        )
    return {"rows": rows, "models": first.models, "export_path": export_path, "data": first_data}


def print_table(rows, args, data):
    more = " (--seeds N for more)" if args.seeds == 1 else ""
    print()
    print(
        f"Off-the-shelf features vs fine-tuning: {args.backbone} on {args.dataset} "
        f"({data.size('train')} training images, {data.image_shape}), "
        f"mean +- sd over {args.seeds} seed(s){more}"
    )
    header = (
        f"| {'method':<40} | {'trainable params':>16} | {'train s':>7} | "
        f"{'val acc, %':>13} | {'test acc, %':>13} | {'lecture (Flowers-102), %':<40} |"
    )
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        val, test = mean_sd(r["val_runs"], 100), mean_sd(r["test_runs"], 100)
        print(
            f"| {r['method']:<40} | {r['trainable_params']:>16,} | {r['train_s']:>7.1f} | "
            f"{val:>13} | {test:>13} | {SOURCE_CLAIMS[r['key']]:<40} |"
        )
    notes = [
        f"linear-probe train time includes extracting the features of all splits "
        f"({rows[0]['extract_s']:.1f} s for ImageNet)"
    ]
    tuned = [r for r in rows if r["key"] == "fine-tune"]
    if tuned:
        notes.append(
            f"fine-tuning (time excludes the softmax probe it starts from) ran "
            f"{tuned[0]['epochs']} epochs, best (restored) epoch {tuned[0]['best_epoch']}"
            f"{' (seed 0)' if args.seeds > 1 else ''}"
        )
    print("; ".join(notes) + ".")


if __name__ == "__main__":
    main()
