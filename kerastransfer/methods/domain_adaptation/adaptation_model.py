"""`DomainAdaptationModel`: the base of `DANModel`, `DANNModel`, `CDANModel` and `MCCModel`.

Unsupervised domain adaptation trains a classifier on labelled source images and unlabelled
target images together. The model wraps a functional classifier and takes batches
`((x_source, x_target), y_source)` (see `paired_dataset`): both halves run through the
classifier in one forward pass, the compiled loss sees only the source predictions and source
labels, and a subclass adds a domain term computed from the features of named layers through
`add_loss`, so `fit`, callbacks, `tf.distribute` and per-layer optimizer maps work unchanged:

    loss = L_cls(y_source, f(x_source)) + lambda * L_domain(features(x_source), features(x_target))

Any of them can add the Minimum Class Confusion loss of Jin et al. (2020) on the target
predictions (`mcc_weight`, `temperature`; see `kerastransfer.losses.minimum_class_confusion`),
logged as `mcc_loss`:

    loss += mcc_weight * L_MCC(f(x_target) / temperature)

Called on a single image batch (`evaluate`, `predict`, serving) it is the plain classifier.
Target labels have no way in: a batch whose target half carries labels, or labels for both
domains, is refused with an error.
"""

import math

import keras
import tensorflow as tf
from keras import ops

from kerastransfer import input_checks
from kerastransfer._internals import producing_layer
from kerastransfer.losses.class_confusion import check_temperature, minimum_class_confusion

PACKAGE = "kerastransfer"


def check_weight(value, what):
    """A non-negative float, or a `LearningRateSchedule` (evaluated at the optimizer step)."""
    if isinstance(value, dict):
        value = keras.optimizers.schedules.deserialize(value)
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return value
    if callable(value):
        raise TypeError(
            f"`{what}` must be a number or a `keras.optimizers.schedules.LearningRateSchedule` "
            f"(serializable, no lambdas), e.g. `AdaptationRamp(total_steps)`. Received: {value!r}"
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{what}` must be a number or a schedule. Received: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"`{what}` must be a finite number >= 0. Received: {value}")
    return number


def predicts_logits(classifier, what):
    """Whether the classifier outputs logits (a `Dense` without activation) rather than
    probabilities (a softmax `Dense`, `Softmax` or `Activation("softmax")`); any other output
    cannot be read as class scores and is refused."""
    layer = producing_layer(classifier.outputs[0])
    activation = getattr(layer, "activation", None)
    if isinstance(layer, keras.layers.Softmax) or getattr(activation, "__name__", "") == "softmax":
        return False
    if isinstance(layer, keras.layers.Dense) and activation in (None, keras.activations.linear):
        return True
    raise ValueError(
        f"{what} reads the class predictions, so `classifier` must end in a softmax (e.g. "
        "`Dense(num_classes, activation='softmax')`) or output logits from a `Dense` without "
        f"activation. Received: output layer '{layer.name}' ({type(layer).__name__}"
        f"{f', activation={activation.__name__}' if activation is not None else ''})."
    )


def serialize_weight(value):
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return keras.optimizers.schedules.serialize(value)
    return value


class DomainAdaptationModel(keras.Model):
    """A classifier trained on `((x_source, x_target), y_source)` batches plus a domain term.

    Subclasses implement `domain_loss(features, num_source, training)` and return the weighted
    domain term; `features` holds, for each of `layer_names`, the joined (source then target)
    activations of that layer.

    Args:
        classifier: a functional `keras.Model` with one image input and one output.
        layer_names: names of the classifier layers whose outputs the domain term reads.
        domain_loss_weight: lambda >= 0, a number or a `LearningRateSchedule` evaluated at the
            optimizer's step (e.g. `AdaptationRamp`).
        mcc_weight: None (default), or the weight >= 0 (number or schedule) of the Minimum
            Class Confusion loss added on the target predictions, logged as `mcc_loss`.
        temperature: T > 0 of the MCC loss (default 2.5).
        **kwargs: base `keras.Model` arguments (name).
    """

    needs_layers = True  # False for a subclass whose term reads only the predictions (MCC)

    def __init__(
        self,
        classifier,
        layer_names,
        domain_loss_weight=1.0,
        mcc_weight=None,
        temperature=2.5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(classifier, keras.Model) or not hasattr(classifier, "inputs"):
            raise TypeError(
                "`classifier` must be a functional keras.Model (built with keras.Input). "
                f"Received: {type(classifier).__name__}"
            )
        if len(classifier.inputs) != 1 or len(classifier.outputs) != 1:
            raise ValueError(
                "`classifier` must have one image input and one output. Received "
                f"{len(classifier.inputs)} inputs and {len(classifier.outputs)} outputs."
            )
        if isinstance(layer_names, str):
            layer_names = [layer_names]
        layer_names = list(layer_names)
        if not layer_names and self.needs_layers:
            raise ValueError("`layer_names` is empty: name at least one layer of the classifier.")
        known = [layer.name for layer in classifier.layers]
        missing = [n for n in layer_names if n not in known]
        if missing:
            raise ValueError(
                f"`layer_names` {missing} are not layers of classifier '{classifier.name}'. "
                f"Its layers are: {known}."
            )
        self.classifier = classifier
        self.layer_names = layer_names
        self.domain_loss_weight = check_weight(domain_loss_weight, "domain_loss_weight")
        self.temperature = check_temperature(temperature)
        self.mcc_weight = None if mcc_weight is None else check_weight(mcc_weight, "mcc_weight")
        if self.mcc_weight is not None:
            self.mcc_from_logits = predicts_logits(classifier, "The MCC loss (`mcc_weight`)")
            self.mcc_tracker = keras.metrics.Mean(name="mcc_loss")
        self.taps = keras.Model(
            classifier.inputs,
            [classifier.outputs[0]] + [classifier.get_layer(n).output for n in layer_names],
            name=f"{classifier.name}_taps",
        )
        self.built = True  # every variable exists (the classifier's); subclasses build theirs

    def get_build_config(self):
        return {}

    def build_from_config(self, config):
        """Nothing to build: the classifier and the subclass's layers are built in `__init__`."""

    @property
    def serving_model(self):
        """The model to serve (`export_serving`): the classifier, which is what the model
        computes on images of one domain."""
        return self.classifier

    @property
    def feature_shapes(self):
        """Output shapes of the named layers (batch axis included)."""
        return [tuple(t.shape) for t in self.taps.outputs[1:]]

    def scheduled(self, value):
        """A weight now: the number itself, or the schedule at the optimizer's step."""
        if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
            step = self.optimizer.iterations if self.optimizer is not None else 0
            return ops.cast(value(step), "float32")
        return value

    def call(self, inputs, training=None):
        if not isinstance(inputs, (tuple, list)):
            return self.classifier(inputs, training=training)
        x_source, x_target = self._check_pair(inputs)
        num_source = ops.shape(x_source)[0]
        joined = ops.concatenate([x_source, x_target], axis=0)
        outputs = keras.tree.flatten(self.taps(joined, training=training))
        loss = self.adaptation_loss(outputs[0], outputs[1:], num_source, training=training)
        self.add_loss(loss)
        return outputs[0][:num_source]

    def adaptation_loss(self, predictions, features, num_source, training=None):
        """What a paired batch adds to the source loss: `domain_loss` of the named layers'
        features, plus the weighted MCC loss of the target predictions when `mcc_weight` is set.
        `predictions` are the classifier's outputs on the joined (source, target) batch."""
        loss = self.domain_loss(features, num_source, training=training)
        return loss + self.class_confusion_loss(predictions, num_source)

    def class_confusion_loss(self, predictions, num_source):
        """`mcc_weight` x MCC loss of the target half of `predictions` (0 without MCC)."""
        if self.mcc_weight is None:
            return 0.0
        confusion = minimum_class_confusion(
            predictions[num_source:], self.temperature, from_logits=self.mcc_from_logits
        )
        self.mcc_tracker.update_state(confusion)
        return self.scheduled(self.mcc_weight) * confusion

    def domain_loss(self, features, num_source, training=None):
        raise NotImplementedError

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, with the data checked first against the classifier: both halves'
        image shape, the source labels in `0..C-1` (arrays whole, a dataset by its element
        spec); a label out of range in a dataset's batch raises a one-line error."""
        self._check_data(x, y)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) in (2, 3):
            self._check_data(*validation[:2], what="`validation_data`")
        elif validation is not None:
            self._check_data(validation, None, what="`validation_data`")
        with input_checks.readable_step_errors(input_checks.output_classes(self.classifier)):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, with the data checked first, as in `fit`."""
        self._check_data(x, y)
        with input_checks.readable_step_errors(input_checks.output_classes(self.classifier)):
            return super().evaluate(x, y, *args, **kwargs)

    def _check_data(self, x, y, what="`x`"):
        classes = input_checks.output_classes(self.classifier)
        if isinstance(x, tf.data.Dataset):
            x_spec, y_spec = input_checks.split_spec(x, what)
            if isinstance(x_spec, (tuple, list)) and len(x_spec) == 2:  # (source, target)
                for half, spec in zip(("source", "target"), x_spec):
                    if not isinstance(spec, tf.TensorSpec):
                        self._check_pair(x_spec)  # raises: the half is a structure
                    input_checks.check_images(
                        self.classifier, spec.shape, f"The {half} images of {what}"
                    )
            else:
                input_checks.check_dataset(self.classifier, x, what, num_classes=classes)
        elif isinstance(x, (tuple, list)) and len(x) == 2 and all(hasattr(h, "shape") for h in x):
            for half, images in zip(("source", "target"), x):
                input_checks.check_images(
                    self.classifier, images.shape, f"The {half} images of {what}"
                )
                input_checks.check_finite(images, f"The {half} images of {what}")
            if y is not None and hasattr(y, "shape"):
                if len(y) != len(x[0]):
                    raise ValueError(
                        f"The source labels must be as many as the source images of {what}. "
                        f"Received: {len(x[0])} images and {len(y)} labels."
                    )
                input_checks.check_labels(y, classes, "The source labels `y`")
        else:
            input_checks.check_fit_data(self.classifier, x, y, num_classes=classes, what=what)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if isinstance(x, (tuple, list)) and isinstance(y, (tuple, list)):
            raise ValueError(
                "The labels of a domain adaptation batch must be the source labels alone; "
                f"received a structure of {len(y)} label tensors. Target labels must never "
                "reach training: build batches with `paired_dataset` (it drops them)."
            )
        y = input_checks.assert_labels_in_range(y, input_checks.output_classes(self.classifier))
        return super().compute_loss(x, y, y_pred, sample_weight, training=training)

    def _check_pair(self, inputs):
        if len(inputs) != 2:
            raise ValueError(
                "A domain adaptation batch is `(x_source, x_target)`. Received a structure of "
                f"{len(inputs)} tensors."
            )
        x_source, x_target = inputs
        if isinstance(x_target, (tuple, list, dict)) or isinstance(x_source, (tuple, list, dict)):
            raise ValueError(
                "The target half of a batch must be images only, never (images, labels): target "
                "labels are not to be read. Use `paired_dataset(..., drop_target_labels=True)`."
            )
        expected = tuple(self.classifier.inputs[0].shape[1:])
        for what, x in (("source", x_source), ("target", x_target)):
            shape = tuple(x.shape[1:])
            if len(shape) != len(expected) or any(
                a is not None and b is not None and a != b for a, b in zip(shape, expected)
            ):
                raise ValueError(
                    f"The {what} images have shape {shape} but the classifier takes {expected}. "
                    "Convert both domains to the classifier's input (`paired_dataset(..., "
                    "image_shape=...)` or `load_dataset(..., image_shape=...)`)."
                )
        return x_source, x_target

    def get_config(self):
        return {
            "name": self.name,
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "layer_names": list(self.layer_names),
            "domain_loss_weight": serialize_weight(self.domain_loss_weight),
            **self._mcc_config(),
        }

    def _mcc_config(self):
        if self.mcc_weight is None:
            return {}  # the configs of models without MCC are as they were before it
        return {"mcc_weight": serialize_weight(self.mcc_weight), "temperature": self.temperature}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)
