"""`SpotTuneBlock`: a frozen and a fine-tuned copy of one block, chosen per input.

Guo et al. (2019), "SpotTune: Transfer Learning through Adaptive Fine-tuning". For a decision
`I(x)` in {0, 1} per input (1: fine-tuned copy):

    y = I(x) F_tuned(x) + (1 - I(x)) F_frozen(x)

In training both copies run on the whole batch and are mixed with the (straight-through) decision,
so gradients reach the policy: dL/dI = <dL/dy, F_tuned(x) - F_frozen(x)>. At inference the batch is
routed: each sample runs only its chosen copy (`tf.dynamic_partition` / `tf.dynamic_stitch`), so a
served model does the work of one network, not two. `routing=False` computes both and masks
instead (the authors' test-time behaviour; for benchmarks and tests).

The frozen copy is not trainable (its BatchNormalization runs in inference mode); the tuned copy
starts from the same weights. Keras masks (e.g. from a `Masking` layer) are passed to both copies.

Example:

>>> inputs = keras.Input((4,))
>>> branch = keras.Model(inputs, keras.layers.Dense(3)(inputs))
>>> block = SpotTuneBlock.from_model(branch, index=0)
>>> x, decisions = np.ones((2, 4), "float32"), np.array([[0.0], [1.0]], "float32")
>>> block([x, decisions]).shape
TensorShape([2, 3])
"""

import keras
import numpy as np  # noqa: F401  (used in the docstring example)
import tensorflow as tf


def _copy(model, name, trainable):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.name = name
    clone.trainable = trainable
    return clone


@keras.saving.register_keras_serializable(package="kerastransfer")
class SpotTuneBlock(keras.layers.Layer):
    """Frozen and fine-tuned copies of one block; called on `[x, decisions]`.

    Args:
        frozen: the block with the pretrained weights (a Keras model, set non-trainable here).
        tuned: the block to fine-tune (same architecture).
        index: which column of `decisions` (shape `(batch, num_blocks)`) is this block's.
        routing: at inference, run each sample through its chosen copy only (default), or
            compute both copies and mask (False).
        keeps_mask: whether the block passes its input's Keras mask on (e.g. a recurrent layer
            returning sequences); False: its output has no mask.
    """

    def __init__(self, frozen, tuned, index, routing=True, keeps_mask=True, **kwargs):
        super().__init__(**kwargs)
        if int(index) < 0:
            raise ValueError(f"`index` must be >= 0. Received: {index}")
        self.frozen = frozen
        self.frozen.trainable = False
        self.tuned = tuned
        self.index = int(index)
        self.routing = bool(routing)
        self.keeps_mask = bool(keeps_mask)
        self.supports_masking = True
        for branch in (self.frozen, self.tuned):
            branch.supports_masking = True  # the mask is passed to them explicitly
        self.built = True

    @classmethod
    def from_model(cls, block_model, index, name=None, routing=True, keeps_mask=True):
        """Both copies from one block model (its weights are the pretrained ones)."""
        name = name or f"spottune_{block_model.name}"
        return cls(
            _copy(block_model, f"{name}_frozen", False),
            _copy(block_model, f"{name}_tuned", True),
            index,
            routing,
            keeps_mask,
            name=name,
        )

    def _decision(self, decisions):
        return decisions[:, self.index]

    def call(self, inputs, training=None, mask=None):
        x, decisions = inputs
        x_mask = mask[0] if isinstance(mask, (list, tuple)) else mask
        d = tf.cast(self._decision(decisions), x.dtype)
        if training or not self.routing:
            frozen = self.frozen(x, training=False, mask=x_mask)
            tuned = self.tuned(x, training=training, mask=x_mask)
            d = tf.reshape(tf.cast(d, tuned.dtype), [-1] + [1] * (len(tuned.shape) - 1))
            return d * tuned + (1.0 - d) * frozen
        return self._route(x, d, x_mask)

    def _route(self, x, d, x_mask):
        choice = tf.cast(d > 0.5, tf.int32)
        positions = tf.dynamic_partition(tf.range(tf.shape(x)[0]), choice, 2)
        parts = tf.dynamic_partition(x, choice, 2)
        masks = tf.dynamic_partition(x_mask, choice, 2) if x_mask is not None else [None, None]
        outputs = [
            self._run(branch, part, part_mask)
            for branch, part, part_mask in zip((self.frozen, self.tuned), parts, masks)
        ]
        return tf.dynamic_stitch(positions, outputs)

    def _run(self, branch, x, mask):
        """`branch(x)`, skipped when no sample chose it (some layers fail on an empty batch)."""

        def empty():
            shape = branch.compute_output_shape(tuple(x.shape))
            dims = [
                s if s is not None else (tf.shape(x)[i] if i < len(x.shape) else 1)
                for i, s in enumerate(shape[1:], start=1)
            ]
            return tf.zeros([0, *dims], branch.compute_dtype)

        return tf.cond(
            tf.shape(x)[0] > 0,
            lambda: tf.cast(branch(x, training=False, mask=mask), branch.compute_dtype),
            empty,
        )

    def compute_output_shape(self, input_shape):
        return self.tuned.compute_output_shape(input_shape[0])

    def compute_mask(self, inputs, mask=None):
        x_mask = mask[0] if isinstance(mask, (list, tuple)) else mask
        return x_mask if self.keeps_mask else None

    def get_config(self):
        return {
            **super().get_config(),
            "frozen": keras.saving.serialize_keras_object(self.frozen),
            "tuned": keras.saving.serialize_keras_object(self.tuned),
            "index": self.index,
            "routing": self.routing,
            "keeps_mask": self.keeps_mask,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["frozen"] = keras.saving.deserialize_keras_object(config["frozen"])
        config["tuned"] = keras.saving.deserialize_keras_object(config["tuned"])
        return cls(**config)
