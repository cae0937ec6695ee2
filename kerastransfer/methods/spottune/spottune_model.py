"""`SpotTuneModel`: per-input choice between frozen and fine-tuned blocks.

Guo, Shi, Kumar, Grauman, Rosing and Feris (2019), "SpotTune: Transfer Learning through Adaptive
Fine-tuning". For each block l of a pretrained network, a frozen copy `F_f` (pretrained weights,
never updated, BatchNormalization in inference mode) and a fine-tuned copy `F_t` (initialised from
the same weights). A policy network reads the input and gives two logits per block; the decision
`I_l(x)` is a straight-through Gumbel-softmax sample in training (temperature `tau`, default 5 as
the authors) and `argmax` at inference, and

    x_l = I_l(x) F_t,l(x_{l-1}) + (1 - I_l(x)) F_f,l(x_{l-1})    (+ x_{l-1} where l has a skip)

Training computes both copies of every block and mixes them, so the policy gets gradients. At
inference each sample runs only the copy its policy chose (the batch is routed, not masked):
served models are deterministic and do the work of one network plus the small policy.

Optional budget (the authors' later "global policy" variant, off by default): a loss
`budget * mean_x(fraction of blocks fine-tuned for x)` added in training.

The policy's own learning rate: compile with `spottune_optimizer` (a `MultiOptimizer` map; the
authors use 0.1 for the network and 0.01 for the policy).

Example:

>>> inputs = keras.Input((6, 3))
>>> x = keras.layers.LSTM(4, return_sequences=True, name="lstm_a")(inputs)
>>> x = keras.layers.LSTM(4, name="lstm_b")(x)
>>> source = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
>>> model = SpotTuneModel.from_model(source)
>>> model.num_blocks, model(np.zeros((5, 6, 3), "float32")).shape
(2, TensorShape([5, 2]))
"""

import keras
import numpy as np  # noqa: F401  (used in the docstring example)
import tensorflow as tf

from kerastransfer import input_checks
from kerastransfer.methods.spottune.gumbel import GumbelSoftmax, _check_temperature
from kerastransfer.methods.spottune.network import spottune_blocks, spottune_network
from kerastransfer.methods.spottune.policy import default_policy


@keras.saving.register_keras_serializable(package="kerastransfer")
class SpotTuneModel(keras.Model):
    """A SpotTune network and its policy.

    Args:
        network: a model `[inputs, decisions] -> outputs` with `SpotTuneBlock`s (see
            `spottune_network`, or build with `SpotTuneModel.from_model`).
        policy: a model `inputs -> (batch, num_blocks, 2)` logits.
        temperature: Gumbel-softmax temperature, > 0 (default 5).
        budget: weight of the fine-tuned-fraction penalty, >= 0 (default 0: off).
        seed: seed of the Gumbel noise.
    """

    def __init__(self, network, policy, temperature=5.0, budget=0.0, seed=None, **kwargs):
        temperature = _check_temperature(temperature)
        if not float(budget) >= 0:
            raise ValueError(f"`budget` must be >= 0. Received: {budget!r}")
        super().__init__(**kwargs)
        self.network = network
        self.policy = policy
        self.blocks = spottune_blocks(network)
        self.num_blocks = int(network.inputs[1].shape[1])
        expected = (None, self.num_blocks, 2)
        if tuple(policy.output_shape) != expected:
            raise ValueError(
                f"The policy must output (batch, num_blocks, 2) = {expected} logits. Received: "
                f"{policy.output_shape}"
            )
        self.temperature = temperature
        self.budget = float(budget)
        self.seed = seed
        self.gumbel = GumbelSoftmax(temperature, hard=True, seed=seed, name="gumbel_softmax")
        self.finetuned_fraction = keras.metrics.Mean(name="finetuned_fraction")
        self.built = True

    @classmethod
    def from_model(
        cls,
        model,
        blocks=None,
        policy=None,
        temperature=5.0,
        budget=0.0,
        seed=None,
        mask_value=None,
        **kwargs,
    ):
        """SpotTune on a pretrained functional `model`.

        Args:
            model: functional or Sequential model with one input, pretrained weights. Not
                modified; the SpotTune model shares no weights with it.
            blocks: None (found automatically, see `find_blocks`) or `(first, last)` pairs.
            policy: a policy model; default `conv_policy` (images) or `lstm_policy` (sequences).
            mask_value: for the default sequence policy, the padding value to mask.
        """
        network = spottune_network(model, blocks)
        num_blocks = network.inputs[1].shape[1]
        policy = policy or default_policy(
            tuple(model.inputs[0].shape[1:]), num_blocks, mask_value=mask_value
        )
        return cls(
            network,
            policy,
            temperature,
            budget,
            seed,
            name=kwargs.pop("name", f"spottune_{model.name}"),
            **kwargs,
        )

    @property
    def block_names(self):
        """Names of the routed blocks (`fold_blocks` removes folded ones), in block order."""
        return [b.name.removeprefix("spottune_") for b in self.blocks]

    @property
    def input_shape(self):
        return tuple(self.network.inputs[0].shape)

    @property
    def output_shape(self):
        return self.network.output_shape

    def decision_samples(self, inputs, training=False):
        """`(batch, num_blocks)` decisions, 1 = fine-tuned copy: straight-through Gumbel samples
        in training, argmax otherwise."""
        logits = self.policy(inputs, training=training)
        return self.gumbel(logits, training=training)[..., 1]

    def decisions(self, inputs):
        """Deterministic (argmax) decisions, `(batch, num_blocks)` int32."""
        return tf.cast(self.decision_samples(inputs, training=False) > 0.5, tf.int32)

    def call_with_decisions(self, inputs, decisions, training=False):
        """The network with given `(batch, num_blocks)` decisions (1 = fine-tuned copy)."""
        inputs = tf.convert_to_tensor(inputs)
        decisions = tf.cast(decisions, self.network.inputs[1].dtype)
        return self.network([inputs, decisions], training=training)

    def call(self, inputs, training=False):
        decisions = self.decision_samples(inputs, training=training)
        fraction = tf.reduce_mean(decisions, axis=-1)
        self.finetuned_fraction.update_state(fraction)
        if training and self.budget:
            self.add_loss(self.budget * tf.reduce_mean(fraction))
        return self.call_with_decisions(inputs, decisions, training=training)

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, with the data checked first (input shape, labels in `0..C-1`:
        arrays whole, a dataset by its element spec); a label out of range in a dataset's batch
        raises a one-line error."""
        classes = input_checks.output_classes(self.network)
        input_checks.check_fit_data(
            self, x, y, num_classes=classes, validation_data=kwargs.get("validation_data")
        )
        with input_checks.readable_step_errors(classes):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, with the data checked first, as in `fit`."""
        classes = input_checks.output_classes(self.network)
        input_checks.check_fit_data(self, x, y, num_classes=classes)
        with input_checks.readable_step_errors(classes):
            return super().evaluate(x, y, *args, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        y = input_checks.assert_labels_in_range(y, input_checks.output_classes(self.network))
        return super().compute_loss(x, y, y_pred, sample_weight, training=training)

    def compile(self, *args, jit_compile=False, **kwargs):
        """`keras.Model.compile`, with `jit_compile=False` by default: XLA cannot compile the
        data-dependent routing at inference."""
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config):
        # `compile` is overridden only for its default: restore the compiled state on load.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_output_shape(self, input_shape):
        return self.network.compute_output_shape([input_shape, (input_shape[0], self.num_blocks)])

    def get_config(self):
        return {
            **super().get_config(),
            "network": keras.saving.serialize_keras_object(self.network),
            "policy": keras.saving.serialize_keras_object(self.policy),
            "temperature": self.temperature,
            "budget": self.budget,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        config["policy"] = keras.saving.deserialize_keras_object(config["policy"])
        return cls(**config)
