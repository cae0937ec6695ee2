"""`DANNModel`: domain-adversarial training through gradient reversal (Ganin and Lempitsky 2015).

Ganin and Lempitsky (2015, "Unsupervised Domain Adaptation by Backpropagation") put a domain
classifier d on a feature layer h of the label classifier, behind a gradient reversal layer R:
d learns to tell source (label 1) from target (label 0) features, while the reversed gradient
drives h towards features d cannot separate:

    loss = L_cls(y_s, f(x_s)) + w * L_bce(domain, d(R_lambda(h(x))))

R is the identity forward and multiplies the gradient by -lambda backward, so the domain
classifier learns at full rate and the features below h see -lambda times its gradient. lambda
(`reversal_scale`) is a number or a schedule (`AdaptationRamp`, the paper's 2/(1+exp(-10p))-1);
w is `domain_loss_weight`. Logged: `domain_loss` and `domain_accuracy` (0.5 when the domains
are indistinguishable).

Example:

>>> import numpy as np
>>> inputs = keras.Input((4,))
>>> hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
>>> outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(hidden)
>>> model = DANNModel(keras.Model(inputs, outputs), "hidden", discriminator_units=(16,))
>>> model.compile("adam", "sparse_categorical_crossentropy")
>>> x_s, x_t, y_s = np.zeros((8, 4)), np.ones((8, 4)), np.zeros(8, "int64")
>>> history = model.fit((x_s, x_t), y_s, batch_size=4, epochs=1, verbose=0)
>>> sorted(history.history)
['domain_accuracy', 'domain_loss', 'loss']
"""

import keras
from keras import ops

from kerastransfer.layers.gradient_reversal import GradientReversal
from kerastransfer.methods.domain_adaptation.adaptation_model import (
    PACKAGE,
    DomainAdaptationModel,
    check_weight,
    serialize_weight,
)
from kerastransfer.methods.domain_adaptation.discriminator import (
    check_discriminator,
    domain_discriminator,
    domain_labels,
)


@keras.saving.register_keras_serializable(package=PACKAGE)
class DANNModel(DomainAdaptationModel):
    """A classifier trained with source labels and an adversarial domain classifier.

    Args:
        classifier: a functional `keras.Model` (one image input, one output).
        feature_layer: name of the classifier layer the domain classifier reads.
        reversal_scale: lambda >= 0 of the gradient reversal, a number or a
            `LearningRateSchedule` evaluated at the optimizer's step (e.g.
            `AdaptationRamp(total_steps)`). Default 1.
        domain_loss_weight: w >= 0, the weight of the domain loss (default 1).
        discriminator_units: hidden ReLU layer widths of the default domain classifier
            (default (500, 500)); it ends in one logit.
        discriminator_dropout: dropout after each hidden layer (default 0.5).
        **kwargs: base `keras.Model` arguments (name).

    The domain classifier's layers are named `domain_*`: a per-layer optimizer map can give
    them their own rate (`layer_pattern(["domain_hidden0", ...])`).
    """

    def __init__(
        self,
        classifier,
        feature_layer,
        reversal_scale=1.0,
        domain_loss_weight=1.0,
        discriminator_units=(500, 500),
        discriminator_dropout=0.5,
        discriminator_batch_norm=False,
        **kwargs,
    ):
        if not isinstance(feature_layer, str):
            raise TypeError(f"`feature_layer` must be one layer name. Received: {feature_layer!r}")
        super().__init__(classifier, [feature_layer], domain_loss_weight, **kwargs)
        self.feature_layer = feature_layer
        self.reversal_scale = check_weight(reversal_scale, "reversal_scale")
        self.discriminator_units, self.discriminator_dropout = check_discriminator(
            discriminator_units, discriminator_dropout
        )
        self.discriminator_batch_norm = bool(discriminator_batch_norm)
        self.reversal = GradientReversal(name="gradient_reversal")
        self.discriminator = domain_discriminator(
            self.feature_shapes[0],
            self.discriminator_units,
            self.discriminator_dropout,
            batch_norm=self.discriminator_batch_norm,
        )
        self.domain_loss_tracker = keras.metrics.Mean(name="domain_loss")
        self.domain_accuracy = keras.metrics.BinaryAccuracy(name="domain_accuracy", threshold=0.0)

    def domain_loss(self, features, num_source, training=None):
        features = features[0]
        reversed_ = self.reversal(features, scale=self.scheduled(self.reversal_scale))
        logits = ops.cast(self.discriminator(reversed_, training=training), "float32")
        domain = domain_labels(num_source, ops.shape(features)[0] - num_source)
        loss = ops.mean(keras.losses.binary_crossentropy(domain, logits, from_logits=True))
        self.domain_loss_tracker.update_state(loss)
        self.domain_accuracy.update_state(domain, logits)
        return self.scheduled(self.domain_loss_weight) * loss

    def get_config(self):
        config = super().get_config()
        del config["layer_names"]
        return {
            **config,
            "feature_layer": self.feature_layer,
            "reversal_scale": serialize_weight(self.reversal_scale),
            "discriminator_units": list(self.discriminator_units),
            "discriminator_dropout": self.discriminator_dropout,
            "discriminator_batch_norm": self.discriminator_batch_norm,
        }
