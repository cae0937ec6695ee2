"""`DANModel`: Deep Adaptation Network training, MK-MMD at named layers (Long et al. 2015).

Long, Cao, Wang and Jordan (2015, "Learning Transferable Features with Deep Adaptation
Networks") fine-tune a classifier on labelled source data while matching, at one or more
task-specific layers l, the distributions of source and target activations by multi-kernel MMD:

    loss = L_cls(y_s, f(x_s)) + lambda * sum_l MK-MMD^2(h_l(x_s), h_l(x_t))

Target labels are never used. lambda is a number or a schedule (`AdaptationRamp`); the MMD term
is logged as `mmd` (its unweighted value, summed over layers).

Example:

>>> import numpy as np
>>> inputs = keras.Input((4,))
>>> hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
>>> outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(hidden)
>>> model = DANModel(keras.Model(inputs, outputs), ["hidden"], domain_loss_weight=0.5)
>>> model.compile("adam", "sparse_categorical_crossentropy")
>>> x_s, x_t, y_s = np.zeros((8, 4)), np.ones((8, 4)), np.zeros(8, "int64")
>>> history = model.fit((x_s, x_t), y_s, batch_size=4, epochs=1, verbose=0)
>>> sorted(history.history)
['loss', 'mmd']
"""

import keras

from kerastransfer.losses.mmd import MultiKernelMMD
from kerastransfer.methods.domain_adaptation.adaptation_model import PACKAGE, DomainAdaptationModel


@keras.saving.register_keras_serializable(package=PACKAGE)
class DANModel(DomainAdaptationModel):
    """A classifier trained with source labels plus lambda x MK-MMD at named layers.

    Args:
        classifier: a functional `keras.Model` (one image input, one output).
        layer_names: a layer name or a list of them; their outputs are adapted.
        domain_loss_weight: lambda >= 0, a number or a `LearningRateSchedule` evaluated at the
            optimizer's step (e.g. `AdaptationRamp(total_steps)`). Default 1.
        mmd: a `MultiKernelMMD` (default: 5 kernels, mean bandwidth, quadratic estimate).
        **kwargs: base `keras.Model` arguments (name).

    Train on batches `((x_source, x_target), y_source)` (`paired_dataset`); evaluate, predict
    and export on plain image batches.
    """

    def __init__(self, classifier, layer_names, domain_loss_weight=1.0, mmd=None, **kwargs):
        super().__init__(classifier, layer_names, domain_loss_weight, **kwargs)
        if isinstance(mmd, dict):
            mmd = keras.saving.deserialize_keras_object(mmd)
        mmd = MultiKernelMMD() if mmd is None else mmd
        if not isinstance(mmd, MultiKernelMMD):
            raise TypeError(f"`mmd` must be a MultiKernelMMD. Received: {mmd!r}")
        self.mmd = mmd
        self.mmd_tracker = keras.metrics.Mean(name="mmd")

    def domain_loss(self, features, num_source, training=None):
        gaps = [self.mmd(f[:num_source], f[num_source:]) for f in features]
        gap = gaps[0] if len(gaps) == 1 else keras.ops.sum(keras.ops.stack(gaps))
        self.mmd_tracker.update_state(gap)
        return self.scheduled(self.domain_loss_weight) * gap

    def get_config(self):
        return {**super().get_config(), "mmd": keras.saving.serialize_keras_object(self.mmd)}
