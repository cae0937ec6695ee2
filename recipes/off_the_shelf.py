"""Off-the-shelf CNN features + a linear classifier, against fine-tuning the whole network.

Reproduces the "off-the-shelf" and "fine-tuning" parts of seed 003 (UPC/DCU "Transfer learning"
lecture): use the pooled outputs of a network trained on ImageNet as generic features and train a
shallow model on them, a softmax (logistic) regression or a linear SVM (Razavian et al. 2014,
"CNN features off-the-shelf", the lecture's table: CNN-SVM 74.7%, CNNaug-SVM 86.8% mean accuracy
on Oxford 102 Flowers); then fine-tune the network on the target labels "until validation loss
starts to increase" (early stopping on `val_loss`, best weights restored). A control row trains the
same linear probe on the features of the same network with random weights, to show what the
ImageNet features contribute.

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
cores):

    python recipes/off_the_shelf.py --weights-file \
        ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5

Larger: `--dataset cifar10 --samples-per-class 500 --image-size 160` (tensorflow-datasets name;
offline it needs a prepared copy, see `--data-dir`), `--backbone EfficientNetB0` (any backbone of
`BACKBONES`; its weights file must be in `$KERAS_HOME/models/` or given with `--weights-file`).
`--export` writes the best method (by validation accuracy) as a SavedModel that takes raw images:
`saved_models/off_the_shelf`.
"""

import argparse
import os
import time

import keras
import numpy as np

from kerastransfer.data import load_dataset
from kerastransfer.export import export_serving
from kerastransfer.methods.feature_extraction import extract_features, fit_linear_classifier
from kerastransfer.models import mobilenet_v2_classifier

# keras.applications backbones that take raw [0, 255] pixels (their preprocessing is built in),
# so the exported model needs no Python-side preprocessing. MobileNetV2 gets a Rescaling layer.
BACKBONES = (
    "mobilenet_v2", "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3",
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2S", "ConvNeXtTiny", "ConvNeXtSmall",
)
# Seed 003 (from Razavian et al. 2014), Oxford 102 Flowers, mean accuracy.
SOURCE_CLAIMS = {"softmax": "-", "svm": "74.7 (CNN-SVM; 86.8 with augmentation)",
                 "random": "-", "fine-tune": "-"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="embedded:fashion_mnist",
                        help="embedded:NAME, .npz path, image folder or tensorflow-datasets name")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data folder")
    parser.add_argument("--samples-per-class", type=int, default=50,
                        help="training images per class (0: all)")
    parser.add_argument("--validation-split", type=float, default=0.1)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--backbone", default="mobilenet_v2", choices=BACKBONES)
    parser.add_argument("--weights-file", default=None,
                        help="ImageNet weights file (no top) of the backbone; default: Keras looks "
                             "in $KERAS_HOME/models/ (downloads when online)")
    parser.add_argument("--linear-epochs", type=int, default=300)
    parser.add_argument("--linear-patience", type=int, default=20)
    parser.add_argument("--fine-tune-epochs", type=int, default=10)
    parser.add_argument("--fine-tune-patience", type=int, default=2)
    parser.add_argument("--fine-tune-lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--skip-random", action="store_true",
                        help="skip the random-weights control row")
    parser.add_argument("--skip-fine-tune", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", action="store_true",
                        help="export the best method to saved_models/off_the_shelf")
    parser.add_argument("--export-dir", default="saved_models")
    parser.add_argument("--verbose", type=int, default=0)
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
    extractor = keras.Model(model.inputs, model.get_layer("dropout").input,
                            name=f"{model.name}_features")
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
    raw = {split: extract_features(extractor, getattr(data, split))
           for split in ("train", "validation", "test")}
    normalizer = feature_normalizer(raw["train"][0].shape[1])
    feats = {split: (normalizer.predict(x, verbose=0, batch_size=256), y)
             for split, (x, y) in raw.items()}
    return feats, normalizer, time.perf_counter() - start


def linear_probe(feats, extract_s, num_classes, loss, args):
    """Fit a linear classifier (early stopping on validation loss); return its row and model."""
    start = time.perf_counter()
    clf = fit_linear_classifier(*feats["train"], num_classes, loss=loss,
                                epochs=args.linear_epochs, patience=args.linear_patience,
                                validation=feats["validation"], verbose=args.verbose)
    train_s = extract_s + time.perf_counter() - start

    def acc(split):
        x, y = feats[split]
        return float(np.mean(np.argmax(clf.predict(x, verbose=0), -1) == y))

    return {
        "trainable_params": int(clf.count_params()), "train_s": round(train_s, 1),
        "extract_s": round(extract_s, 1), "val_accuracy": acc("validation"),
        "test_accuracy": acc("test"), "features": int(feats["train"][0].shape[1]),
    }, clf


def fine_tune(data, normalizer, probe, weights, args):
    """The whole network trained on the target labels, from ImageNet weights with the trained
    softmax probe (and its feature normaliser) as the head, early stopping on validation loss."""
    net = build_classifier(args.backbone, data.image_shape, data.info.num_classes, weights)
    backbone = keras.Model(net.inputs, net.get_layer("dropout").input, name="backbone")
    for layer in backbone.layers:
        for sub in (layer.layers if isinstance(layer, keras.Model) else [layer]):
            if isinstance(sub, keras.layers.BatchNormalization):
                sub.trainable = False  # inference mode: keep the ImageNet statistics
    head = keras.models.clone_model(probe)
    head.set_weights(probe.get_weights())
    model = compose(backbone, normalizer, head, "fine_tuned")
    normalizer.trainable = False
    model.compile(keras.optimizers.Adam(args.fine_tune_lr), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping("val_loss", patience=args.fine_tune_patience,
                                         restore_best_weights=True)
    start = time.perf_counter()
    history = model.fit(data.train, validation_data=data.validation, epochs=args.fine_tune_epochs,
                        callbacks=[stop], verbose=args.verbose, shuffle=False)
    train_s = time.perf_counter() - start
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    return {
        "trainable_params": trainable, "train_s": round(train_s, 1),
        "val_accuracy": accuracy(model, data.validation),
        "test_accuracy": accuracy(model, data.test),
        "epochs": len(history.history["loss"]),
        "best_epoch": int(np.argmin(history.history["val_loss"])) + 1,
    }, model


def main(argv=None):
    """Run every method, print the table and return it.

    Returns:
        A dict with `rows` (method, trainable_params, train_s, val_accuracy, test_accuracy, ...),
        `models` (the composed/fine-tuned Keras models, by method key) and `export_path`.
    """
    args = parse_args(argv)
    weights = args.weights_file or "imagenet"
    if args.weights_file and not os.path.exists(args.weights_file):
        raise FileNotFoundError(
            f"--weights-file {args.weights_file!r} does not exist. Give the path of the "
            f"backbone's ImageNet weights file (no top), or leave the flag out to let Keras use "
            f"$KERAS_HOME/models/.")
    keras.utils.set_random_seed(args.seed)
    size = args.image_size
    data = load_dataset(
        args.dataset, validation_split=args.validation_split,
        samples_per_class=args.samples_per_class or None, image_shape=(size, size, 3),
        batch_size=args.batch_size, seed=args.seed, data_dir=args.data_dir,
    )
    if data.validation is None:
        raise ValueError("This recipe needs a validation split (early stopping): "
                         "pass --validation-split > 0.")
    print(f"{data}; images converted to {data.image_shape}; backbone {args.backbone}")

    rows, models = [], {}
    num_classes = data.info.num_classes
    pretrained = build_classifier(args.backbone, data.image_shape, num_classes, weights)
    extractor = pooled_features(pretrained)
    feats, normalizer, extract_s = features_of(extractor, data)
    for key, loss, label in (("softmax", "softmax", "ImageNet features + softmax regression"),
                             ("svm", "hinge", "ImageNet features + linear SVM (hinge)")):
        row, clf = linear_probe(feats, extract_s, num_classes, loss, args)
        rows.append({"key": key, "method": label, **row})
        models[key] = compose(extractor, normalizer, clf, f"off_the_shelf_{key}")
        if key == "softmax":
            softmax_probe = clf
    if not args.skip_random:
        random_extractor = pooled_features(
            build_classifier(args.backbone, data.image_shape, num_classes, None))
        random_feats, random_normalizer, random_s = features_of(random_extractor, data)
        row, clf = linear_probe(random_feats, random_s, num_classes, "softmax", args)
        rows.append({"key": "random", "method": "random-weights features + softmax", **row})
        models["random"] = compose(random_extractor, random_normalizer, clf, "random_features")
    if not args.skip_fine_tune:
        row, model = fine_tune(data, normalizer, softmax_probe, weights, args)
        label = "fine-tuning, early stopping on val_loss"
        rows.append({"key": "fine-tune", "method": label, **row})
        models["fine-tune"] = model

    print_table(rows, args, data)
    export_path = None
    if args.export:
        best = max((r for r in rows if r["key"] != "random"), key=lambda r: r["val_accuracy"])
        export_path = export_serving(models[best["key"]],
                                     os.path.join(args.export_dir, "off_the_shelf"),
                                     raw_shape=data.info.image_shape)
        print(f"Exported '{best['method']}' (best validation accuracy) to {export_path}")
    return {"rows": rows, "models": models, "export_path": export_path, "data": data}


def print_table(rows, args, data):
    print()
    print(f"Off-the-shelf features vs fine-tuning: {args.backbone} on {args.dataset} "
          f"({len(data.arrays('train')[1])} training images, {data.image_shape})")
    header = (f"| {'method':<40} | {'trainable params':>16} | {'train s':>7} | {'val acc':>7} | "
              f"{'test acc':>8} | {'seed 003 (Flowers-102)':<40} |")
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['method']:<40} | {r['trainable_params']:>16,} | {r['train_s']:>7.1f} | "
              f"{r['val_accuracy']:>7.2%} | {r['test_accuracy']:>8.2%} | "
              f"{SOURCE_CLAIMS[r['key']]:<40} |")
    notes = [f"linear-probe train time includes extracting the features of all splits "
             f"({rows[0]['extract_s']:.1f} s for ImageNet)"]
    tuned = [r for r in rows if r["key"] == "fine-tune"]
    if tuned:
        notes.append(f"fine-tuning (time excludes the softmax probe it starts from) ran "
                     f"{tuned[0]['epochs']} epochs, best (restored) epoch {tuned[0]['best_epoch']}")
    print("; ".join(notes) + ".")


if __name__ == "__main__":
    main()
