"""One worker of a two-worker BPA training run, for `test_multiworker.py`.

Run one process per worker, each with its `TF_CONFIG`; it trains a small CNN with
`MultiWorkerTrainer` and writes the final weights (.npz) and a JSON report on stdout.
"""

import argparse
import json
import os

import keras
import numpy as np
import tensorflow as tf

from kerastransfer.methods.bpa.multiworker import MultiWorkerTrainer


def synthetic(samples, num_classes, seed):
    rng = np.random.default_rng(seed)
    y = (np.arange(samples) % num_classes).astype("int64")
    x = rng.uniform(0, 64, (samples, 28, 28, 1)).astype("float32")
    x[np.arange(samples), 4 + 2 * y, 4 + 2 * y, 0] = 255.0  # a class-dependent bright pixel
    return x, y


def synced_cnn(input_shape=(28, 28, 1), num_classes=10, filters=(6, 8), dense=16):
    """A small CNN whose BatchNormalization layers synchronise batch statistics across replicas.

    Plain BatchNormalization normalises (and updates its moving statistics) with each replica's
    own batch, so the workers' moving statistics drift apart; `synchronized=True` uses the global
    batch, which keeps every worker's copy of the model identical.
    """
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, n in enumerate(filters, start=1):
        x = keras.layers.Conv2D(n, 5, padding="same", name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(synchronized=True, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="synced_cnn")


def main(argv=None):
    """One worker of a BPA training run; the cluster comes from `TF_CONFIG`."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", required=True, help="where to write the final weights (.npz)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16, help="global batch size")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--gamma", default="agreement", choices=("paper", "agreement"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    keras.utils.set_random_seed(args.seed)  # every worker builds the same initial weights

    def model_fn():
        return synced_cnn(num_classes=args.classes)

    trainer = MultiWorkerTrainer(strategy, model_fn, gamma=args.gamma)
    x, y = synthetic(args.samples, args.classes, args.seed)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size)
    history = trainer.fit(dataset, epochs=args.epochs)
    weights = {
        v.path.replace("/", "__"): keras.ops.convert_to_numpy(v) for v in trainer.model.weights
    }
    np.savez(args.out, **weights)
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    report = {
        "task": task,
        "loss": history["loss"],
        "replicas": strategy.num_replicas_in_sync,
        "gamma": [{k: v.tolist() for k, v in g.items()} for g in history["gamma"]],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
