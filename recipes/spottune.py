"""SpotTune (Guo et al. 2019) on a stacked LSTM and on MobileNetV2, against fine-tuning.

Reproduces the experiment of the project report "Transfer Learning" (Chen, Guo, Konti), which
implemented SpotTune ("SpotTune: Transfer Learning through Adaptive Fine-tuning", Guo, Shi, Kumar,
Grauman, Rosing and Feris, CVPR 2019) on a 3-layer LSTM with two dense layers and a 2-layer LSTM
policy, pretrained on one sensor dataset and transferred to another, and found it heavy and no
better than its benchmark after 10 epochs (test accuracy SpotTune / benchmark = 0.3196 / 0.3478
= 0.91; the benchmark is the same network trained from random initialisation).

`--scenario recurrent` (default): offline real data as sequences. Each image is read row by row,
28 steps of 28 features: the network is pretrained on MNIST rows, then transferred to USPS rows
(USPS's 16x16 digits resized to 28x28). Rows: SpotTune (each LSTM layer is a block: a frozen and a
fine-tuned copy, chosen per input by the LSTM policy), standard fine-tuning (every layer trained
from the pretrained weights), training from scratch (the report's "benchmark"). Any `.npz` of
`(N, T, F)` sequences (`x_train, y_train, x_test, y_test`; e.g. UCI HAR's 128 steps of 9 sensor
channels) can replace the target with `--sequences FILE`, and the source with
`--source-sequences FILE` (needed when the shape differs from 28x28).

`--scenario conv`: MobileNetV2 with ImageNet weights on Fashion-MNIST at 96x96 (embedded sample),
`mobilenet_v2_classifier(..., flat=True)` (SpotTune's blocks must be layers of the model, not of a
nested backbone). Rows: SpotTune (the 10 inverted residual blocks with a skip connection are
blocks, the default conv policy), fine-tuning of the whole network, frozen features + linear head
(`feature_extractor`, `extract_features`, `fit_linear_classifier` for all `--head-epochs`, without
weight decay). The linear head is trained first; fine-tuning and SpotTune start from it.
BatchNormalization stays in inference mode everywhere (small target set).

All three rows of a scenario share the data, batches, epochs and optimizer family (Adam); the
SpotTune policy has its own learning rate (`--policy-lr`, default lr / 10 as the authors' 0.01
against 0.1), through `spottune_optimizer`. Test accuracy is the last epoch's model's.

Run (each default a few minutes on 2 CPU cores; seeded and deterministic):

    python recipes/spottune.py                         # recurrent, MNIST rows -> USPS rows
    python recipes/spottune.py --scenario conv --weights-file \\
        ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
    python recipes/spottune.py --data-root ../shared/data --target-samples 0 --epochs 10 \\
        --seeds 3                                      # full USPS training set

`--export` folds the blocks whose policy picks one copy for every validation input (printing the
size saved) and writes the SpotTune model to saved_models/spottune_<scenario> (conv: the
`export_serving` signature on raw 28x28 images; recurrent: Keras's SavedModel export).
"""

import argparse
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402, F401  (first: TensorFlow's start-up lines stay hidden; see _common)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import (  # noqa: E402
    RunCache,
    add_common_flags,
    fit,
    load,
    mean_sd,
    positive_int,
    print_table,
    run_recipe,
    set_seeds,
)

from kerastransfer.data import shuffled_indices  # noqa: E402
from kerastransfer.export import export_serving  # noqa: E402
from kerastransfer.methods.feature_extraction import (  # noqa: E402
    extract_features,
    feature_extractor,
    fit_linear_classifier,
)
from kerastransfer.methods.spottune import (  # noqa: E402
    SpotTuneModel,
    fold_blocks,
    lstm_policy,
    policy_usage,
    spottune_optimizer,
)
from kerastransfer.models import lstm_stack, mobilenet_v2_classifier  # noqa: E402

# The project report, UCI Daily and Sports Activities -> UCI HAR, 10 epochs.
REPORT = {"spottune": 0.31964709874448594, "scratch": 0.34781133355955207}
REPORT_RATIO = REPORT["spottune"] / REPORT["scratch"]  # 0.91


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("recurrent", "conv"), default="recurrent")
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="epochs of every row (default: recurrent 10 as the report, conv 2)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="network learning rate (default: recurrent 1e-3, conv 1e-4)",
    )
    parser.add_argument("--policy-lr", type=float, default=None, help="default: lr / 10")
    parser.add_argument("--temperature", type=float, default=5.0)
    parser.add_argument(
        "--budget",
        type=float,
        default=0.0,
        help="weight of the fine-tuned-fraction penalty (0: off)",
    )
    parser.add_argument(
        "--target-samples",
        type=int,
        default=None,
        help="training samples per class of the target (0: all; default: recurrent 30, conv 20)",
    )
    parser.add_argument("--test-samples", type=int, default=1000, help="0: all")
    rec = parser.add_argument_group("recurrent")
    rec.add_argument("--sequences", default=None, help=".npz of (N, T, F) target sequences")
    rec.add_argument("--source-sequences", default=None, help=".npz of (N, T, F) source sequences")
    rec.add_argument(
        "--source-samples", type=int, default=300, help="source training samples per class (0: all)"
    )
    rec.add_argument("--source-epochs", type=positive_int, default=3)
    rec.add_argument("--units", type=positive_int, default=32, help="LSTM and dense units")
    conv = parser.add_argument_group("conv")
    conv.add_argument("--image-size", type=int, default=96)
    conv.add_argument(
        "--weights-file",
        default=None,
        help="MobileNetV2 ImageNet weights (no top); default $KERAS_HOME/models",
    )
    conv.add_argument("--head-epochs", type=positive_int, default=30)
    add_common_flags(parser, seeds=2)
    args = parser.parse_args(argv)
    recurrent = args.scenario == "recurrent"
    args.epochs = args.epochs or (10 if recurrent else 2)
    args.lr = args.lr or (1e-3 if recurrent else 1e-4)
    args.policy_lr = args.policy_lr or args.lr / 10
    if args.target_samples is None:
        args.target_samples = 30 if recurrent else 20
    if args.temperature <= 0:
        parser.error(f"--temperature must be > 0. Received: {args.temperature}")
    if args.weights_file and not os.path.exists(args.weights_file):
        raise FileNotFoundError(
            f"--weights-file {args.weights_file!r} does not exist. Give MobileNetV2's ImageNet "
            f"weights file (no top), or leave the flag out to use $KERAS_HOME/models/."
        )
    return args


# ---------------------------------------------------------------- data
# A split is `(x, y)` arrays (`.npz` sequences) or a `Stream` (a `TransferData` split, read batch
# by batch: no split is held whole); `_size`, `_shape` and `_batches` take either.
class Stream:
    """One split of a `TransferData`, read batch by batch at `image_shape` (its first `limit`
    examples): images, or with `rows` (N, 28, 28) row sequences in [0, 1] of 28x28x1 images."""

    def __init__(self, data, split, image_shape, *, rows=False, limit=None):
        self.data, self.split, self.image_shape, self.rows = data, split, image_shape, rows
        size = data.size(split)
        self.size = min(limit, size) if limit else size

    def batches(self, batch_size, shuffle_seed=None):
        shuffle = shuffle_seed is not None
        if shuffle and self.size < self.data.size(self.split):
            raise ValueError("A capped split is read in order: it cannot be shuffled.")
        ds = self.data.dataset(
            self.split,
            shuffle=shuffle,
            seed=shuffle_seed,
            batch_size=batch_size,
            image_shape=self.image_shape,
            resize="resize",
        )
        if self.size < self.data.size(self.split):  # the first `size` examples, as batched
            ds = ds.unbatch().take(self.size).batch(batch_size)
            batches = -(-self.size // batch_size)
            ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
        if self.rows:
            ds = ds.map(lambda x, y: (x[..., 0] / 255.0, y))
        return ds


def _size(split):
    return split.size if isinstance(split, Stream) else len(split[1])


def _shape(split):
    """The shape of one input: (timesteps, features) or (height, width, channels)."""
    if isinstance(split, Stream):
        return split.image_shape[:2] if split.rows else split.image_shape
    return split[0].shape[1:]


def _image_rows(name, args, per_class, seed):
    """Splits of 28x28 images (USPS 16x16 resized) read as (28, 28) row sequences in [0, 1]."""
    data = load(name, args, validation_split=0.1, samples_per_class=per_class or None, seed=seed)
    splits = {s: Stream(data, s, (28, 28, 1), rows=True) for s in ("train", "validation", "test")}
    return splits, data.info.num_classes


def _npz_sequences(path, seed):
    if not os.path.exists(path):
        raise FileNotFoundError(f"Sequence file {path!r} does not exist.")
    with np.load(path) as f:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
        if missing:
            raise ValueError(
                f"{path} must hold x_train, y_train, x_test, y_test. Missing: {sorted(missing)}"
            )
        x_train, y_train, x_test, y_test = (
            f[k] for k in ("x_train", "y_train", "x_test", "y_test")
        )
    for name, x in (("x_train", x_train), ("x_test", x_test)):
        if x.ndim != 3:
            raise ValueError(
                f"`{name}` of {path} must be (N, timesteps, features) sequences. "
                f"Received shape {x.shape}."
            )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x_train))
    n_val = max(1, len(order) // 10)
    val, train = order[:n_val], order[n_val:]
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    cast = lambda x, y: (np.asarray(x, "float32"), np.asarray(y, "int64"))  # noqa: E731
    return {
        "train": cast(x_train[train], y_train[train]),
        "validation": cast(x_train[val], y_train[val]),
        "test": cast(x_test, y_test),
    }, num_classes


def _per_class(splits, per_class, seed):
    if not per_class:
        return splits
    x, y = splits["train"]
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    )
    return {**splits, "train": (x[np.sort(keep)], y[np.sort(keep)])}


def _cap_test(splits, n):
    if not n:
        return splits
    test = splits["test"]
    if isinstance(test, Stream):
        test = Stream(test.data, "test", test.image_shape, rows=test.rows, limit=n)
    else:
        test = (test[0][:n], test[1][:n])
    return {**splits, "test": test}


def sequence_data(args):
    """(source splits, target splits, num_classes): dicts of split -> (x, y)."""
    if args.sequences:
        target, n_target = _npz_sequences(args.sequences, 0)
        target = _per_class(target, args.target_samples, 0)
    else:
        target, n_target = _image_rows("usps", args, args.target_samples, 0)
    if args.source_sequences:
        source, n_source = _npz_sequences(args.source_sequences, 0)
        source = _per_class(source, args.source_samples, 0)
    else:
        source, n_source = _image_rows("mnist", args, args.source_samples, 0)
    if _shape(source["train"]) != _shape(target["train"]) or n_source != n_target:
        raise ValueError(
            f"Source sequences {_shape(source['train'])} with {n_source} classes do not "
            f"match target sequences {_shape(target['train'])} with {n_target} classes: "
            f"pass --source-sequences with the target's (timesteps, features) and classes."
        )
    return source, _cap_test(target, args.test_samples), n_target


# ---------------------------------------------------------------- models
def clone_with_weights(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _compile(model, optimizer):
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _train_eval(model, train, validation, test, args, name):
    start = time.perf_counter()
    fit(
        model,
        (train, validation),
        epochs=args.epochs,
        backup_dir=args.backup_dir,
        name=name,
        verbose=args.verbose,
    )
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(test, verbose=0)[:2]
    return {"test_accuracy": float(acc), "test_loss": float(loss), "train_s": seconds}


def _spottune(source, train, validation, test, args, name, policy=None):
    model = SpotTuneModel.from_model(
        source, policy=policy, temperature=args.temperature, budget=args.budget, seed=0
    )
    opt = spottune_optimizer(
        model,
        keras.optimizers.Adam(args.lr, name="network"),
        keras.optimizers.Adam(args.policy_lr, name="policy"),
    )
    row = _train_eval(_compile(model, opt), train, validation, test, args, name)
    usage = policy_usage(model, test)
    row["finetuned_fraction"] = usage["mean_fraction"]
    row["block_usage"] = usage["block_usage"]
    return row, model


def _batches(split, batch_size, shuffle_seed=None):
    """Batches of a split, reshuffled every epoch with a `shuffle_seed` (a `Stream`'s pipeline
    gives the batches these arrays gave)."""
    if isinstance(split, Stream):
        return split.batches(batch_size, shuffle_seed).prefetch(tf.data.AUTOTUNE)
    if shuffle_seed is None:
        ds = tf.data.Dataset.from_tensor_slices(split)
    else:
        x, y = (tf.constant(a) for a in split)
        ds = shuffled_indices(len(split[1]), shuffle_seed).map(
            lambda i: (tf.gather(x, i), tf.gather(y, i))
        )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- scenarios
def _recurrent_seed(seed, args, cache, pretrained, target, num_classes, runs, models):
    """One seed's rows, appended to `runs`."""
    shape = _shape(target["train"])
    set_seeds(seed, deterministic=not args.nondeterministic)
    train = _batches(target["train"], args.batch_size, seed)
    val, test = _batches(target["validation"], 256), _batches(target["test"], 256)

    def spot():
        policy = lstm_policy(shape, 3, units=(args.units, args.units), dense_units=args.units)
        row, models["spottune"] = _spottune(
            pretrained, train, val, test, args, f"spottune_{seed}", policy
        )
        return row

    def fine():
        model = _compile(clone_with_weights(pretrained), keras.optimizers.Adam(args.lr))
        models["fine-tune"] = model
        return _train_eval(model, train, val, test, args, f"finetune_{seed}")

    def scratch():
        model = _compile(lstm_stack(shape, num_classes, args.units), keras.optimizers.Adam(args.lr))
        return _train_eval(model, train, val, test, args, f"scratch_{seed}")

    for key, fn in (("spottune", spot), ("fine-tune", fine), ("scratch", scratch)):
        set_seeds(seed, deterministic=not args.nondeterministic)
        runs.setdefault(key, []).append(cache.get(f"recurrent/{key}/{seed}", fn))


def _conv_seed(seed, args, cache, split, weights, num_classes, runs, models):
    """One seed's rows, appended to `runs`: the linear head first, then SpotTune and
    fine-tuning starting from it."""
    set_seeds(seed, deterministic=not args.nondeterministic)
    train = _batches(split["train"], args.batch_size, seed)
    val = _batches(split["validation"], 64)
    test = _batches(split["test"], 64)
    size = args.image_size
    source = mobilenet_v2_classifier(
        (size, size, 3), num_classes, weights=weights, dropout=0.0, flat=True
    )
    for layer in source.layers:  # BatchNormalization in inference mode (a small target set)
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    extractor = feature_extractor(source)  # frozen, everything below `classifier_new`

    def head():
        start = time.perf_counter()
        datasets = {"train": _batches(split["train"], 64), "validation": val, "test": test}
        feats = {k: extract_features(extractor, d) for k, d in datasets.items()}
        linear = fit_linear_classifier(
            *feats["train"],
            num_classes,
            epochs=args.head_epochs,
            batch_size=args.batch_size,
            validation=feats["validation"],
            patience=None,  # all `--head-epochs`
            l2=0.0,
        )
        loss, acc = linear.evaluate(*feats["test"], verbose=0)
        return {
            "test_accuracy": float(acc),
            "test_loss": float(loss),
            "train_s": time.perf_counter() - start,
            "head": [w.tolist() for w in linear.get_layer("scores").get_weights()],
        }

    set_seeds(seed, deterministic=not args.nondeterministic)
    probe = cache.get(f"conv/linear/{seed}", head)
    runs.setdefault("linear", []).append({k: v for k, v in probe.items() if k != "head"})
    classifier = source.get_layer("classifier_new")
    classifier.set_weights([np.asarray(w, "float32") for w in probe["head"]])

    def spot():
        row, models["spottune"] = _spottune(
            clone_with_weights(source), train, val, test, args, f"conv_spottune_{seed}"
        )
        return row

    def fine():
        model = _compile(clone_with_weights(source), keras.optimizers.Adam(args.lr))
        models["fine-tune"] = model
        return _train_eval(model, train, val, test, args, f"conv_finetune_{seed}")

    for key, fn in (("spottune", spot), ("fine-tune", fine)):
        set_seeds(seed, deterministic=not args.nondeterministic)
        runs.setdefault(key, []).append(cache.get(f"conv/{key}/{seed}", fn))


def run_recurrent(args, cache):
    source_data, target, num_classes = sequence_data(args)
    shape = _shape(target["train"])
    set_seeds(0, deterministic=not args.nondeterministic)
    pretrained = _compile(lstm_stack(shape, num_classes, args.units), keras.optimizers.Adam(1e-3))
    pretrained.fit(
        _batches(source_data["train"], args.batch_size, 0),
        epochs=args.source_epochs,
        verbose=args.verbose,
        shuffle=False,
    )
    source_acc = pretrained.evaluate(_batches(source_data["test"], 256), verbose=0)[1]
    print(
        f"source: {_size(source_data['train'])} sequences {shape}, test accuracy "
        f"{source_acc:.3f}; target: {_size(target['train'])} train, "
        f"{_size(target['validation'])} validation, {_size(target['test'])} test"
    )
    runs, models = {}, {}
    for seed in range(args.seeds):
        _recurrent_seed(seed, args, cache, pretrained, target, num_classes, runs, models)
    return runs, models, target


def run_conv(args, cache):
    size = args.image_size
    weights = args.weights_file or "imagenet"
    data = load(
        "fashion_mnist",
        args,
        validation_split=0.1,
        samples_per_class=args.target_samples or None,
        seed=0,
    )
    num_classes = data.info.num_classes
    split = {s: Stream(data, s, (size, size, 3)) for s in ("train", "validation", "test")}
    split = _cap_test(split, args.test_samples)
    print(
        f"target: Fashion-MNIST {_size(split['train'])} train, {_size(split['validation'])} "
        f"validation, {_size(split['test'])} test, at {size}x{size}x3"
    )
    runs, models = {}, {}
    for seed in range(args.seeds):
        _conv_seed(seed, args, cache, split, weights, num_classes, runs, models)
    return runs, models, split


LABELS = {
    "spottune": "SpotTune (frozen / fine-tuned copy per input)",
    "fine-tune": "standard fine-tuning",
    "scratch": "training from scratch (report's benchmark)",
    "linear": "frozen features + linear head",
}


def table(runs, args):
    rows = []
    for key, results in runs.items():
        acc = [r["test_accuracy"] for r in results]
        row = {
            "method": LABELS[key],
            "test accuracy": mean_sd(acc, digits=3),
            "test loss": mean_sd([r["test_loss"] for r in results], digits=3),
            "train s": mean_sd([r["train_s"] for r in results], digits=1),
            "fine-tuned fraction": mean_sd([r["finetuned_fraction"] for r in results])
            if key == "spottune"
            else "-",
        }
        if args.scenario == "recurrent":
            row["report (10 epochs)"] = {
                "spottune": f"{REPORT['spottune']:.3f}",
                "scratch": f"{REPORT['scratch']:.3f}",
            }.get(key, "-")
        rows.append(row)
    columns = list(rows[0])
    print_table(
        rows,
        columns,
        title=f"SpotTune, {args.scenario} scenario, {args.epochs} epochs, "
        f"{args.seeds} seed(s) (mean +- sd)",
    )
    if "scratch" in runs:
        ratios = [
            s["test_accuracy"] / max(b["test_accuracy"], 1e-9)
            for s, b in zip(runs["spottune"], runs["scratch"])
        ]
        print(
            f"test accuracy SpotTune / from scratch: ours {mean_sd(ratios)}; report "
            f"{REPORT['spottune']:.4f} / {REPORT['scratch']:.4f} = {REPORT_RATIO:.3f} "
            f"(reported as 0.91; other data: UCI sports activities -> UCI HAR)"
        )
    usage = runs["spottune"][-1]["block_usage"]
    print(
        "SpotTune block usage on the test set (share of inputs fine-tuning each block, last "
        "seed): " + ", ".join(f"{k} {v:.2f}" for k, v in usage.items())
    )
    return rows


def export(models, split, args):
    model = models.get("spottune")
    if model is None:
        print("--export: the SpotTune run came from the cache (--backup-dir); nothing to export.")
        return None
    validation = split["validation"]
    folded, report = fold_blocks(model, _batches(validation, 64))
    print(
        f"folded {len(report['folded'])} of {model.num_blocks} blocks "
        f"({report['folded'] or 'none'}): {report['bytes_saved'] / 2**20:.2f} MiB saved "
        f"({report['bytes_before'] / 2**20:.2f} -> {report['bytes_after'] / 2**20:.2f} MiB)"
    )
    path = os.path.join(args.saved_models, f"spottune_{args.scenario}")
    if args.scenario == "conv":
        export_serving(folded, path, raw_shape=(28, 28, 1))
    else:
        spec = tf.TensorSpec((None, *_shape(validation)), tf.float32, name="sequences")
        folded.export(path, format="tf_saved_model", verbose=False, input_signature=[spec])
    print(f"exported to {path}")
    return path


def main(argv=None):
    """Run the scenario, print the table; return {"runs", "rows", "models", "export_path"}."""
    args = parse_args(argv)
    cache = RunCache(args.backup_dir, "spottune", args)
    run = run_recurrent if args.scenario == "recurrent" else run_conv
    runs, models, split = run(args, cache)
    rows = table(runs, args)
    path = export(models, split, args) if args.export else None
    return {"runs": runs, "rows": rows, "models": models, "export_path": path}


if __name__ == "__main__":
    run_recipe(main)
