"""What a SpotTune policy decides: `policy_usage` for a dataset and the `PolicyUsage` callback.

For inputs x_1..x_N and blocks 1..L with deterministic (argmax) decisions I_l(x_n) in {0, 1}:

- fraction fine-tuned per input: f_n = (1/L) sum_l I_l(x_n);
- usage of block l: u_l = (1/N) sum_n I_l(x_n), the share of inputs that run its fine-tuned copy.

Example:

>>> from kerastransfer.methods.spottune.spottune_model import SpotTuneModel
>>> inputs = keras.Input((6, 3))
>>> x = keras.layers.LSTM(4, name="lstm_a")(inputs)
>>> model = SpotTuneModel.from_model(keras.Model(inputs, keras.layers.Dense(2)(x)))
>>> usage = policy_usage(model, np.zeros((5, 6, 3), "float32"))
>>> usage["decisions"].shape, sorted(usage["block_usage"])
((5, 1), ['lstm_a'])
"""

import keras
import numpy as np
import tensorflow as tf


def _inputs_only(data, batch_size):
    if isinstance(data, tf.data.Dataset):
        return data.map(lambda *xy: xy[0] if len(xy) > 1 else xy[0])
    if isinstance(data, (tuple, list)):
        data = data[0]
    return tf.data.Dataset.from_tensor_slices(np.asarray(data)).batch(batch_size)


def policy_usage(model, data, batch_size=64):
    """The decisions of `model`'s policy on `data`.

    Args:
        model: a `SpotTuneModel`.
        data: inputs (array), `(inputs, labels)`, or a batched `tf.data.Dataset` of either.

    Returns:
        A dict: `decisions` (N, L) int array (the policy's, one column per block it was built
        for), `fraction` (N,) fine-tuned fraction per input, `mean_fraction`, and
        `block_usage` {routed block name: share of inputs fine-tuning it}.
    """
    decide = tf.function(model.decisions)
    batches = [decide(x).numpy() for x in _inputs_only(data, batch_size)]
    if not batches or sum(len(b) for b in batches) == 0:
        raise ValueError("`data` is empty: policy usage needs at least one input.")
    decisions = np.concatenate(batches)
    fraction = decisions.mean(axis=1)
    return {
        "decisions": decisions,
        "fraction": fraction,
        "mean_fraction": float(fraction.mean()),
        "block_usage": {
            name: float(decisions[:, block.index].mean())
            for name, block in zip(model.block_names, model.blocks)
        },
    }


class PolicyUsage(keras.callbacks.Callback):
    """Logs the policy's decisions on `data` at the end of every epoch.

    Adds to the epoch logs (so `History` and a later `TensorBoard` callback get them)
    `spottune_fraction` (mean fine-tuned fraction per input) and `spottune_usage/<block>`; with
    `log_dir`, also writes a histogram of the per-input fraction and the per-block usage as
    TensorBoard summaries. Put it before `TensorBoard` in the callback list.

    Args:
        data: validation inputs, as for `policy_usage`.
        log_dir: optional TensorBoard folder (a `spottune` sub-folder is written).
    """

    def __init__(self, data, log_dir=None, batch_size=64):
        super().__init__()
        self.data = data
        self.log_dir = log_dir
        self.batch_size = batch_size
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        usage = policy_usage(self.model, self.data, self.batch_size)
        if logs is not None:
            logs["spottune_fraction"] = usage["mean_fraction"]
            for name, value in usage["block_usage"].items():
                logs[f"spottune_usage/{name}"] = value
        if self.log_dir:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(f"{self.log_dir}/spottune")
            with self._writer.as_default(step=epoch):
                tf.summary.histogram("finetuned_fraction_per_input", usage["fraction"])
                tf.summary.scalar("finetuned_fraction", usage["mean_fraction"])
                for name, value in usage["block_usage"].items():
                    tf.summary.scalar(f"usage/{name}", value)
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
