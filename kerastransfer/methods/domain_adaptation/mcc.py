"""`MCCModel`: Minimum Class Confusion on the target predictions (Jin, Wang, Long and Wang 2020).

Jin, Wang, Long and Wang (2020, "Minimum Class Confusion for Versatile Domain Adaptation")
adapt a classifier without any domain discriminator or feature distance: on each batch they add
to the source loss the class confusion of its predictions on the unlabelled target half,

    loss = L_cls(y_s, f(x_s)) + mu * L_MCC(z_t),

    Y = softmax(z_t / T),  W_ii = B (1 + exp(-H(Y_i))) / sum_j (1 + exp(-H(Y_j))),
    C = Y^T W Y,  C~_jj' = C_jj' / sum_i C_ij',  L_MCC = (sum_jj' C~_jj' - sum_j C~_jj) / C,

with z_t the target logits (of B examples, C classes), T the temperature (default 2.5) and mu
`mcc_weight` (default 1, a number or a schedule). The loss is
`kerastransfer.losses.minimum_class_confusion`; the same term can be added to DAN, DANN or CDAN
with their `mcc_weight` argument (e.g. `CDANModel(..., mcc_weight=1.0)`). Target labels are
never read. The classifier must end in a softmax (its probabilities are turned back into logits
as log p) or output logits. Logged: `mcc_loss`, before mu.

Example:

>>> import numpy as np
>>> inputs = keras.Input((4,))
>>> hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
>>> outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(hidden)
>>> model = MCCModel(keras.Model(inputs, outputs), temperature=2.5)
>>> model.compile("adam", "sparse_categorical_crossentropy")
>>> x_s, x_t, y_s = np.zeros((8, 4)), np.ones((8, 4)), np.zeros(8, "int64")
>>> history = model.fit((x_s, x_t), y_s, batch_size=4, epochs=1, verbose=0)
>>> sorted(history.history)
['loss', 'mcc_loss']
"""

import keras

from kerastransfer.methods.domain_adaptation.adaptation_model import PACKAGE, DomainAdaptationModel


@keras.saving.register_keras_serializable(package=PACKAGE)
class MCCModel(DomainAdaptationModel):
    """A classifier trained with source labels plus mu x the MCC loss of its target predictions.

    Args:
        classifier: a functional `keras.Model` (one image input, one softmax or logits output).
        mcc_weight: mu >= 0, a number or a `LearningRateSchedule` evaluated at the optimizer's
            step (e.g. `AdaptationRamp(total_steps)`). Default 1.
        temperature: T > 0 of the rescaled softmax (default 2.5).
        **kwargs: base `keras.Model` arguments (name).

    Train on batches `((x_source, x_target), y_source)` (`paired_dataset`); evaluate, predict
    and export on plain image batches.
    """

    needs_layers = False  # the loss reads only the predictions

    def __init__(self, classifier, mcc_weight=1.0, temperature=2.5, **kwargs):
        if mcc_weight is None:
            raise TypeError("`mcc_weight` must be a number >= 0 or a schedule. Received: None")
        super().__init__(
            classifier, [], 0.0, mcc_weight=mcc_weight, temperature=temperature, **kwargs
        )

    def domain_loss(self, features, num_source, training=None):
        return 0.0  # the whole adaptation term is the MCC loss (`class_confusion_loss`)

    def get_config(self):
        config = super().get_config()
        del config["layer_names"], config["domain_loss_weight"]
        return config
