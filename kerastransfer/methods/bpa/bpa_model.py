"""`BPAModel`: distributed backpropagation by basic probability assignment (Shahriari 2017, Eq. 9).

Wraps any functional model, nested ones included (a `keras.applications` backbone: name its
layers by path, `"mobilenetv2_1.00_96/Conv1"`). Its `train_step` (TensorFlow backend) multiplies
the gradients of the parameters of filter k of each split layer by Gamma_k before the optimizer
applies them: the split kernel[..., k] and bias[k], and every per-channel slice that reads channel
k while it is still a channel (BatchNormalization wherever it sits, depthwise kernels, the input
slice of the next regular, pointwise or grouped convolution, the Dense rows fed by channel k after
Flatten or global pooling, both sides of residual Adds; see `channel_slices`). Where the channel is
mixed with no per-filter slice (a reshape, a softmax over channels), the model warns once and
lists the variables left unscaled in `unscaled_variables`. Every other gradient reaches the
optimizer (which may be a per-layer optimizer map) unchanged. A NaN or infinite loss raises
before any weight moves.

Gamma is model state: one non-trainable variable per split layer, saved and restored with the
model (`.keras` files, `BackupAndRestore`). Each affected variable also has a precomputed
broadcastable multiplier (a non-trainable variable updated whenever Gamma changes; see
`gradient_scales.py`), so the hot path costs one multiply per affected gradient.

Example:

>>> import keras, numpy as np
>>> from kerastransfer.models import small_cnn
>>> net = small_cnn(filters=(4, 6), dense=16, num_classes=3)
>>> model = BPAModel(net, split_layers=["conv1"], gamma="agreement")
>>> model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
>>> x, y = np.random.rand(12, 28, 28, 1) * 255, np.arange(12) % 3
>>> model.compute_gamma((x, y))["conv1"].shape
(4,)
>>> history = model.fit(x, y, epochs=1, verbose=0)
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from kerastransfer import input_checks
from kerastransfer._internals import loss_tracker
from kerastransfer.methods.bpa import dempster_shafer, filter_costs
from kerastransfer.methods.bpa import split_layers as splits
from kerastransfer.methods.bpa.base_probe import assert_finite_inputs
from kerastransfer.methods.bpa.gradient_scales import GradientScales
from kerastransfer.methods.bpa.probing import filter_probe

NONFINITE_LOSS = (
    "BPAModel: the images or the training loss is NaN or infinite (NaN/inf images, labels out "
    "of range, or a diverged model); no weight was updated by this step."
)


@keras.saving.register_keras_serializable(package="kerastransfer")
class BPAModel(keras.Model):
    """A model trained by distributed backpropagation: per-filter gradient costs Gamma.

    Args:
        model: a functional `keras.Model` with one class-score output (softmax probabilities or
            logits). Its layers are shared, not copied.
        split_layers: Conv2D layer names of `model` whose filters get costs, layers of nested
            models named by path (`"backbone/conv"`) (default: the first Conv2D, nested models
            included). Gamma is keyed by these names.
        gamma: cost functional, `"paper"` (Eq. 5, ||Theta||_2: faithful, but largest for filters
            whose single-filter network predicts one class for everything) or `"agreement"`
            ((1/C) sum_i r_ii s_ii). See `kerastransfer.methods.bpa.dempster_shafer`.
        normalization: across the d filters: `"max"` (default), `"mean"` or `"none"`.
        masks_per_pass: filters per batched pass when computing Gamma (default: all).

    Gamma starts at ones (plain backpropagation) until `compute_gamma` or `set_gamma` is called;
    the `kerastransfer.methods.bpa.GammaRefresh` callback does it during `fit`.
    """

    def __init__(
        self,
        model,
        *,
        split_layers=None,
        gamma="paper",
        normalization="max",
        masks_per_pass=None,
        name=None,
        **kwargs,
    ):
        if not isinstance(model, keras.Model):
            raise ValueError(
                f"`model` must be a functional keras.Model. Received: {type(model).__name__}"
            )
        dempster_shafer.check_gamma(gamma)
        dempster_shafer.check_normalization(normalization)
        super().__init__(name=name or f"bpa_{model.name}", **kwargs)
        self.network = model
        named = splits.resolve_split_layer_paths(model, split_layers)
        self.split_layers = [name for name, _ in named]
        self.gamma_method = gamma
        self.normalization = normalization
        self.masks_per_pass = masks_per_pass
        self._gamma_vars = [
            self.add_weight(
                shape=(layer.filters,),
                initializer="ones",
                trainable=False,
                name=f"gamma_{name.replace('/', '__')}",
            )
            for name, layer in named
        ]
        self._refresh_count = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="gamma_refreshes", dtype="int64"
        )
        # Not tracked: the scaled variables belong to `model` (saved there), the multipliers to
        # `self` (created on it).
        scales = GradientScales(self, model, [layer for _, layer in named])
        object.__setattr__(self, "_scales", scales)
        object.__setattr__(self, "_split_objects", [layer for _, layer in named])
        object.__setattr__(self, "_probes", None)
        if scales.unscaled:
            warnings.warn(
                f"BPAModel '{self.name}': channels of split layers {self.split_layers} are mixed "
                "with no per-filter slice (a reshape, a softmax over channels, a layer the "
                "per-filter walk does not know) before these variables read them, so their "
                f"gradients are not scaled by Gamma: {scales.unscaled}. "
                "See `BPAModel.unscaled_variables`.",
                stacklevel=2,
            )
        self.built = True

    def call(self, inputs, training=None):
        return self.network(inputs, training=training)

    @property
    def serving_model(self):
        """The model to serve (`export_serving`): the wrapped network, whose weights training
        updates; BPA changes how it is trained, not what it computes."""
        return self.network

    # -- Gamma state ---------------------------------------------------------------------------

    @property
    def gamma(self):
        """Current Gamma: dict split-layer name -> NumPy array (d,)."""
        return {
            name: np.asarray(keras.ops.convert_to_numpy(v))
            for name, v in zip(self.split_layers, self._gamma_vars)
        }

    @property
    def gamma_refreshes(self):
        """How many times Gamma was computed (0: still the initial ones)."""
        return int(keras.ops.convert_to_numpy(self._refresh_count))

    @property
    def unscaled_variables(self):
        """Paths of variables that read a split channel only after it was mixed with no
        per-filter slice (their gradients are not scaled; the model warned once about them)."""
        return list(self._scales.unscaled)

    @property
    def gamma_scales(self):
        """dict variable path -> the multiplier applied to its gradient."""
        return self._scales.values()

    def set_gamma(self, values):
        """Sets Gamma (dict layer name -> array (d,)) and refreshes the gradient multipliers."""
        unknown = set(values) - set(self.split_layers)
        if unknown:
            raise ValueError(
                f"Unknown split layers {sorted(unknown)}. This model splits {self.split_layers}."
            )
        current = self.gamma
        for i, name in enumerate(self.split_layers):
            if name in values:
                current[name] = dempster_shafer.as_gamma(values[name], len(current[name]), name)
                self._gamma_vars[i].assign(current[name])
        self._scales.update([current[name] for name in self.split_layers])

    def compute_gamma(self, data, *, subset="train", strategy=None):
        """Computes Gamma from the d masked passes per split layer on `data` and sets it.

        Args:
            data: the labelled set: batched `tf.data.Dataset` of `(x, y)` or `(x, y)` arrays.
                Under a `tf.distribute` strategy (the model's by default) the batches are split
                across replicas and the confusion matrices summed before Gamma is formed.
                A `kerastransfer.data.TransferData` works too: `subset` then picks
                `"train"` (default), `"validation"` or `"train+validation"`.

        Returns:
            dict layer name -> Gamma (NumPy array (d,)).
        """
        if self._probes is None:
            probes = [
                filter_probe(self.network, layer, self.masks_per_pass)
                for layer in self._split_objects
            ]
            object.__setattr__(self, "_probes", probes)
        strategy = strategy or self.distribute_strategy
        data = filter_costs.labelled_set(data, subset)
        confusions = filter_costs.filter_confusions(self._probes, data, strategy=strategy)
        values = {
            name: dempster_shafer.normalized_costs(c, self.gamma_method, self.normalization)
            for name, c in zip(self.split_layers, confusions)
        }
        self.set_gamma(values)
        self._refresh_count.assign(self._refresh_count + 1)
        object.__setattr__(self, "last_confusions", dict(zip(self.split_layers, confusions)))
        return values

    # -- training ------------------------------------------------------------------------------

    def scale_gradients(self, gradients, variables):
        """Multiplies each filter's gradients by its Gamma; others pass unchanged."""
        return self._scales(gradients, variables)

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, with the data checked first against the wrapped model (arrays
        whole: shape, finite, labels in `0..C-1`; a dataset by its element spec). A label out of
        range in a dataset's batch, or a NaN/inf loss, raises a one-line `ValueError` instead
        of TensorFlow's graph error."""
        classes = input_checks.output_classes(self.network)
        input_checks.check_fit_data(
            self.network, x, y, num_classes=classes, validation_data=kwargs.get("validation_data")
        )
        with input_checks.readable_step_errors(classes, NONFINITE_LOSS):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, with the data checked first, as in `fit`."""
        classes = input_checks.output_classes(self.network)
        input_checks.check_fit_data(self.network, x, y, num_classes=classes)
        with input_checks.readable_step_errors(classes):
            return super().evaluate(x, y, *args, **kwargs)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x = assert_finite_inputs(x, NONFINITE_LOSS)
        y = input_checks.assert_labels_in_range(y, input_checks.output_classes(self.network))
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            # compute_loss divides by the number of replicas; track the per-batch mean loss, as
            # Keras's own train_step does (its helper for this has no public name).
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            loss_tracker(self).update_state(
                loss * tf.cast(replicas, loss.dtype),
                sample_weight=tf.shape(tf.nest.flatten(x)[0])[0],
            )
            # Nothing silent: a NaN/inf loss (NaN images, a diverged model) stops training
            # before any weight moves.
            loss = tf.debugging.assert_all_finite(loss, NONFINITE_LOSS)
            if self.optimizer is not None:
                loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_weights
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(self.scale_gradients(gradients, variables), variables))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    # -- saving --------------------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": keras.saving.serialize_keras_object(self.network),
            "split_layers": list(self.split_layers),
            "gamma": self.gamma_method,
            "normalization": self.normalization,
            "masks_per_pass": self.masks_per_pass,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)
