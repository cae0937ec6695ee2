"""`CDANModel`: conditional adversarial domain adaptation (Long, Cao, Wang and Jordan 2018).

Long, Cao, Wang and Jordan (2018, "Conditional Adversarial Domain Adaptation") condition the
domain classifier D of DANN on the classifier's predictions: D reads the multilinear map
T(f, g) of the features f (of a named layer, d_f values) and the softmax predictions g (C
classes), behind a gradient reversal layer R:

    loss = L_cls(y_s, G(x_s)) + w * sum_i v_i L_bce(domain_i, D(R_lambda(T(f_i, g_i)))) / n

- T(f, g) = f (x) g, the flattened outer product (width d_f x C), or, when d_f x C exceeds
  4096 (or with `randomized=True`), the randomized map (1/sqrt(d)) (f R_f) * (g R_g) with fixed
  N(0, 1) matrices R_f, R_g of output width d (`randomized_dim`, default 1024); see
  `kerastransfer.layers.MultilinearMap`.
- g is a constant in T and in v (no gradient), as in the authors' code; R passes -lambda times
  D's gradient to f (lambda: `reversal_scale`, a number or a schedule such as `AdaptationRamp`).
- CDAN+E (`entropy_conditioning=True`, the default) weights each example by its certainty,
  v_i = 1 + exp(-H(g_i)), normalised within each domain to average 1 over that domain's
  examples (v_i = n_D (1 + exp(-H(g_i))) / sum_{j in D} (1 + exp(-H(g_j))); with equal halves
  this is the authors' weighting); without it v_i = 1 (plain CDAN).

The classifier must end in a softmax, or output logits (then g = softmax(logits)). Logged:
`domain_loss` (the weighted adversarial loss before w) and `domain_accuracy`. With `mcc_weight`
the MCC loss is added on the target predictions (CDAN + MCC, as Jin et al. 2020 report).

Example:

>>> import numpy as np
>>> inputs = keras.Input((4,))
>>> hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
>>> outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(hidden)
>>> model = CDANModel(keras.Model(inputs, outputs), "hidden", discriminator_units=(16,))
>>> model.conditioning_width, model.randomized
(24, False)
>>> model.compile("adam", "sparse_categorical_crossentropy")
>>> x_s, x_t, y_s = np.zeros((8, 4)), np.ones((8, 4)), np.zeros(8, "int64")
>>> history = model.fit((x_s, x_t), y_s, batch_size=4, epochs=1, verbose=0)
>>> sorted(history.history)
['domain_accuracy', 'domain_loss', 'loss']
"""

import math

import keras
from keras import ops

from kerastransfer.layers.gradient_reversal import GradientReversal
from kerastransfer.layers.multilinear_map import MultilinearMap, RandomizedMultilinearMap
from kerastransfer.losses.class_confusion import certainty_weights
from kerastransfer.methods.domain_adaptation.adaptation_model import (
    PACKAGE,
    DomainAdaptationModel,
    check_weight,
    predicts_logits,
    serialize_weight,
)
from kerastransfer.methods.domain_adaptation.discriminator import (
    check_discriminator,
    domain_discriminator,
    domain_labels,
)

RANDOMIZE_ABOVE = 4096  # the paper's switch to the randomized map: d_f x C > 4096
MAX_WEIGHTS = 2**28  # weights of the map's matrices or the first discriminator layer (1 GiB)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CDANModel(DomainAdaptationModel):
    """A classifier trained with source labels and a domain classifier conditioned on its
    predictions through a multilinear map.

    Args:
        classifier: a functional `keras.Model` (one image input, one softmax or logits output).
        feature_layer: name of the classifier layer whose output is f.
        reversal_scale: lambda >= 0 of the gradient reversal, a number or a
            `LearningRateSchedule` evaluated at the optimizer's step. Default 1.
        domain_loss_weight: w >= 0, the weight of the domain loss (default 1).
        entropy_conditioning: weight examples by certainty (CDAN+E, default True).
        randomized: None (default: randomized when d_f x C > 4096), True or False.
        randomized_dim: d, the width of the randomized map (default 1024).
        seed: seed of the randomized map's matrices (default: Keras's global seed).
        discriminator_units: hidden ReLU widths of the domain classifier (default (1024, 1024),
            the authors'); it ends in one logit. Layers are named `domain_*`.
        discriminator_dropout: dropout after each hidden layer (default 0.5).
        **kwargs: `mcc_weight`, `temperature` (`DomainAdaptationModel`) and base `keras.Model`
            arguments (name).

    A conditioning width that would not fit in memory (more than 2**28 weights in the map or
    in the first discriminator layer) is refused when the model is built.
    """

    def __init__(
        self,
        classifier,
        feature_layer,
        reversal_scale=1.0,
        domain_loss_weight=1.0,
        entropy_conditioning=True,
        randomized=None,
        randomized_dim=1024,
        seed=None,
        discriminator_units=(1024, 1024),
        discriminator_dropout=0.5,
        discriminator_batch_norm=False,
        **kwargs,
    ):
        if not isinstance(feature_layer, str):
            raise TypeError(f"`feature_layer` must be one layer name. Received: {feature_layer!r}")
        if randomized not in (None, True, False):
            raise TypeError(f"`randomized` must be None, True or False. Received: {randomized!r}")
        if isinstance(randomized_dim, bool) or int(randomized_dim) != randomized_dim:
            raise TypeError(f"`randomized_dim` must be an integer. Received: {randomized_dim!r}")
        if randomized_dim < 1:
            raise ValueError(f"`randomized_dim` must be >= 1. Received: {randomized_dim}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"`seed` must be an integer or None. Received: {seed!r}")
        super().__init__(classifier, [feature_layer], domain_loss_weight, **kwargs)
        self.from_logits = predicts_logits(classifier, "CDAN")
        self.feature_layer = feature_layer
        self.reversal_scale = check_weight(reversal_scale, "reversal_scale")
        self.entropy_conditioning = bool(entropy_conditioning)
        self.discriminator_units, self.discriminator_dropout = check_discriminator(
            discriminator_units, discriminator_dropout
        )
        self.discriminator_batch_norm = bool(discriminator_batch_norm)
        self.randomized_dim = int(randomized_dim)
        self.seed = seed

        feature_shape = self.feature_shapes[0]
        if any(d is None for d in feature_shape[1:]):
            raise ValueError(
                f"The output of `feature_layer` '{feature_layer}' must have a known size to be "
                f"conditioned on. Received shape: {feature_shape}"
            )
        feature_width = math.prod(feature_shape[1:])
        num_classes = int(classifier.outputs[0].shape[-1])
        self.conditioning_width = feature_width * num_classes
        self.randomized = (
            self.conditioning_width > RANDOMIZE_ABOVE if randomized is None else randomized
        )
        first_units = self.discriminator_units[0] if self.discriminator_units else 1
        if self.randomized:
            weights = (feature_width + num_classes) * self.randomized_dim
            if weights > MAX_WEIGHTS:
                raise ValueError(
                    f"The randomized multilinear map of '{feature_layer}' ({feature_width} "
                    f"features) and {num_classes} classes would hold ({feature_width} + "
                    f"{num_classes}) x {self.randomized_dim} = {weights:,} random weights, more "
                    f"than {MAX_WEIGHTS:,}: condition on a pooled (narrower) layer, or lower "
                    "`randomized_dim`."
                )
            self.multilinear_map = RandomizedMultilinearMap(
                self.randomized_dim, seed=seed, name="domain_multilinear_map"
            )
            map_width = self.randomized_dim
        else:
            weights = self.conditioning_width * first_units
            if weights > MAX_WEIGHTS:
                raise ValueError(
                    f"The multilinear map of '{feature_layer}' ({feature_width} features) and "
                    f"{num_classes} classes is {feature_width} x {num_classes} = "
                    f"{self.conditioning_width:,} wide: the discriminator's first layer would "
                    f"hold {self.conditioning_width:,} x {first_units} = {weights:,} weights "
                    f"({weights * 4 / 2**30:.1f} GiB in float32), more than {MAX_WEIGHTS:,}. "
                    f"Use the randomized map: `randomized=True` (width `randomized_dim`, "
                    f"default 1024)."
                )
            self.multilinear_map = MultilinearMap(name="domain_multilinear_map")
            map_width = self.conditioning_width
        self.multilinear_map.build([feature_shape, tuple(classifier.outputs[0].shape)])
        self.reversal = GradientReversal(name="gradient_reversal")
        self.discriminator = domain_discriminator(
            (None, map_width),
            self.discriminator_units,
            self.discriminator_dropout,
            batch_norm=self.discriminator_batch_norm,
        )
        self.domain_loss_tracker = keras.metrics.Mean(name="domain_loss")
        self.domain_accuracy = keras.metrics.BinaryAccuracy(name="domain_accuracy", threshold=0.0)

    def adaptation_loss(self, predictions, features, num_source, training=None):
        loss = self.domain_loss(features, num_source, training=training, predictions=predictions)
        return loss + self.class_confusion_loss(predictions, num_source)

    def domain_loss(self, features, num_source, training=None, predictions=None):
        """w x the (entropy-weighted) adversarial loss of the joined batch.

        Args:
            features: `[f]`, the feature layer's output on the joined (source, target) batch.
            num_source: how many of the rows are source examples (the first ones).
            training: the Keras training flag (dropout).
            predictions: the classifier's outputs on the same batch (required).
        """
        if predictions is None:
            raise ValueError(
                "CDAN's domain loss reads the predictions too: pass `predictions=`, the "
                "classifier's outputs on the joined batch."
            )
        predictions = ops.cast(predictions, "float32")
        g = ops.stop_gradient(ops.softmax(predictions) if self.from_logits else predictions)
        mapped = self.multilinear_map([features[0], g])
        reversed_ = self.reversal(mapped, scale=self.scheduled(self.reversal_scale))
        logits = ops.cast(self.discriminator(reversed_, training=training), "float32")
        total = ops.shape(logits)[0]
        domain = domain_labels(num_source, total - num_source)
        losses = keras.losses.binary_crossentropy(domain, logits, from_logits=True)
        if self.entropy_conditioning:
            losses = losses * self.example_weights(g, num_source)
        loss = ops.mean(losses)
        self.domain_loss_tracker.update_state(loss)
        self.domain_accuracy.update_state(domain, logits)
        return self.scheduled(self.domain_loss_weight) * loss

    @staticmethod
    def example_weights(probabilities, num_source):
        """CDAN+E weights: 1 + exp(-H(g)), scaled to average 1 within each domain (constants)."""
        certainty = certainty_weights(probabilities)
        total = ops.shape(certainty)[0]
        source = ops.cast(ops.arange(total) < num_source, "float32")
        target = 1.0 - source
        source_scale = ops.divide_no_nan(ops.sum(source), ops.sum(certainty * source))
        target_scale = ops.divide_no_nan(ops.sum(target), ops.sum(certainty * target))
        return certainty * (source * source_scale + target * target_scale)

    def get_config(self):
        config = super().get_config()
        del config["layer_names"]
        return {
            **config,
            "feature_layer": self.feature_layer,
            "reversal_scale": serialize_weight(self.reversal_scale),
            "entropy_conditioning": self.entropy_conditioning,
            "randomized": self.randomized,
            "randomized_dim": self.randomized_dim,
            "seed": self.seed,
            "discriminator_units": list(self.discriminator_units),
            "discriminator_dropout": self.discriminator_dropout,
            "discriminator_batch_norm": self.discriminator_batch_norm,
        }
