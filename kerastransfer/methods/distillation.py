"""Knowledge distillation on top of `keras.distillation`.

After Hinton, Vinyals and Dean, "Distilling the knowledge in a neural network" (2015).

A small *student* learns from the class probabilities of a large *teacher* ("soft targets"),
softened at a temperature T, together with the ordinary hard-label loss:

    soft targets        y'_i = y_i^(1/T) / sum_j y_j^(1/T) = softmax(z / T)_i   (z: the logits)
    distillation loss   T^2 * KL(teacher' || student')        (both softened at T)
    total loss          a * CE(labels, student) + (1 - a) * distillation loss

`a` is `student_loss_weight`. K. McGuinness's "Transfer learning" lecture (UPC Barcelona deep
learning winter school, 2018) writes the soft loss as the cross-entropy H(y', y^'); the KL
divergence used here differs from it by the teacher's entropy, a constant for the student, so
the gradients are the same. (The lecture prints the loss as `-H(...)`: the sign is a typo, the
loss to minimise is `+H`.) The T^2 factor keeps the soft gradients' scale independent of T
(Hinton et al.).

**Logits from probability models.** `keras.distillation.LogitsDistillation` divides *logits* by T,
but the toolkit's models end in a `Dense(..., activation="softmax")` layer called "classifier" and
output probabilities (so they serve as they are). `logits_model(model)` returns a logits view of
such a model: the same layers, the last `Dense` wrapped by `DenseLogits`, which computes
`x @ kernel + bias` with the wrapped layer's own variables. Nothing is copied: training the view
trains the probability model, which is what you evaluate and export afterwards. A model ending in
a `Softmax` layer (or `Activation("softmax")`) is viewed at that layer's input. Both are plain,
registered Keras objects: the view and the `Distiller` save to `.keras` and load back without
`safe_mode=False`.

Example:

>>> import numpy as np
>>> from kerastransfer.models import small_cnn
>>> teacher = small_cnn((28, 28, 1), 10, name="teacher")
>>> student = small_cnn((28, 28, 1), 10, filters=(4, 8), dense=32, name="student")
>>> distiller = build_distiller(teacher, student, temperature=4.0, student_loss_weight=0.1)
>>> x = np.random.uniform(0, 255, (8, 28, 28, 1)).astype("float32")
>>> y = np.arange(8) % 10
>>> history = distiller.fit(x, y, epochs=1, verbose=0)
>>> sorted(k for k in history.history if k.endswith("loss"))
['distillation_loss', 'loss', 'student_loss', 'total_loss']
>>> student.output_shape  # the probability model was trained through its logits view
(None, 10)
"""

import numbers

import keras
from keras import ops

from kerastransfer import input_checks
from kerastransfer._internals import producing_layer

__all__ = ["CheckedDistiller", "DenseLogits", "logits_model", "soft_targets", "build_distiller"]


@keras.saving.register_keras_serializable(package="kerastransfer")
class CheckedDistiller(keras.distillation.Distiller):
    """`keras.distillation.Distiller` whose `fit` and `evaluate` check the data first against
    the student (input shape, labels in `0..C-1`: arrays whole, a dataset by its element spec);
    a label out of range in a dataset's batch raises a one-line error (on a CPU; a GPU's sparse
    cross-entropy gives NaN instead)."""

    def fit(self, x=None, y=None, *args, **kwargs):
        classes = input_checks.output_classes(self.student)
        input_checks.check_fit_data(
            self.student, x, y, num_classes=classes, validation_data=kwargs.get("validation_data")
        )
        with input_checks.readable_step_errors(classes):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        classes = input_checks.output_classes(self.student)
        input_checks.check_fit_data(self.student, x, y, num_classes=classes)
        with input_checks.readable_step_errors(classes):
            return super().evaluate(x, y, *args, **kwargs)


@keras.saving.register_keras_serializable(package="kerastransfer")
class DenseLogits(keras.layers.Wrapper):
    """The pre-activation output of a wrapped `Dense` layer: `inputs @ kernel + bias`.

    It reads the wrapped layer's variables, so a model built with it shares (and trains) the
    weights of the model the `Dense` layer comes from. Used by `logits_model` to see a softmax
    classifier as a logits model.

    Example:

    >>> dense = keras.layers.Dense(3, activation="softmax")
    >>> x = keras.ops.ones((2, 4))
    >>> probabilities = dense(x)
    >>> logits = DenseLogits(dense)(x)
    >>> bool(keras.ops.all(keras.ops.isclose(keras.ops.softmax(logits), probabilities)))
    True
    """

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, keras.layers.Dense):
            raise ValueError(
                f"DenseLogits wraps a keras.layers.Dense layer. Received: {type(layer).__name__} "
                f"'{getattr(layer, 'name', layer)}'."
            )
        kwargs.setdefault("dtype", layer.dtype_policy)
        super().__init__(layer, **kwargs)

    def call(self, inputs):
        x = ops.matmul(inputs, self.layer.kernel)
        if self.layer.bias is not None:
            x = ops.add(x, self.layer.bias)
        return x

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


def _is_softmax(activation):
    name = getattr(activation, "__name__", "")
    return activation is keras.activations.softmax or name == "softmax"


def logits_model(model, name=None):
    """A view of a probability model that outputs its logits, sharing all its weights.

    Args:
        model: a Functional or Sequential `keras.Model` with one output, produced by a
            `Dense(..., activation="softmax")` layer, a `Softmax` layer or an
            `Activation("softmax")` layer. A model whose last layer is a `Dense` without
            activation already outputs logits and is returned unchanged.
        name: name of the view; default `"{model.name}_logits"`.

    Returns:
        A `keras.Model` on the same inputs whose output is the pre-softmax scores.
        `softmax(view(x)) == model(x)`; training the view trains `model`.

    Example:

    >>> from kerastransfer.models import small_cnn
    >>> model = small_cnn((28, 28, 1), 10)
    >>> view = logits_model(model)
    >>> [layer.name for layer in view.layers][-1], view.count_params() == model.count_params()
    ('classifier_logits', True)
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: {type(model).__name__}")
    if not getattr(model, "inputs", None) or not getattr(model, "outputs", None):
        raise ValueError(
            f"logits_model needs a Functional or Sequential model (with symbolic inputs and "
            f"outputs); '{model.name}' is subclassed or not built. Build it on a keras.Input, or "
            "give it a Dense(num_classes) output without activation and pass it as it is."
        )
    if len(model.outputs) != 1:
        raise ValueError(
            f"logits_model needs a model with one output; '{model.name}' has {len(model.outputs)}."
        )
    layer = producing_layer(model.outputs[0])
    name = name or f"{model.name}_logits"
    if isinstance(layer, keras.layers.Dense):
        if _is_softmax(layer.activation):
            logits = DenseLogits(layer, name=f"{layer.name}_logits")(layer.input)
            return keras.Model(model.inputs, logits, name=name)
        if layer.activation in (None, keras.activations.linear):
            return model  # already logits
    if isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation) and _is_softmax(layer.activation)
    ):
        return keras.Model(model.inputs, layer.input, name=name)
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    raise ValueError(
        f"The output layer '{layer.name}' of '{model.name}' ({type(layer).__name__}"
        f"{f', activation={activation}' if activation else ''}) is not a softmax, so its logits "
        "cannot be recovered. End the model with Dense(num_classes, activation='softmax'), or "
        "with Dense(num_classes) followed by a Softmax layer."
    )


def soft_targets(probabilities, temperature):
    """Softened targets (Hinton et al. 2015): `p_i^(1/T) / sum_j p_j^(1/T)`, i.e.
    `softmax(log(p) / T)`.

    Equal to `softmax(logits / T)` for probabilities `softmax(logits)`; T > 1 raises the weight of
    the small, non-target probabilities (the "dark knowledge").

    Example:

    >>> import numpy as np
    >>> p = np.array([[0.09, 0.05, 0.85, 0.01]])
    >>> np.round(keras.ops.convert_to_numpy(soft_targets(p, 2.0)), 3)
    array([[0.194, 0.145, 0.597, 0.065]], dtype=float32)
    """
    _check_temperature(temperature)
    p = ops.convert_to_tensor(probabilities, "float32")
    return ops.softmax(ops.log(ops.maximum(p, keras.config.epsilon())) / temperature, axis=-1)


def _check_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise ValueError(
            f"`temperature` must be a positive number (e.g. 4.0). Received: {temperature!r}"
        )
    if not temperature > 0:
        raise ValueError(
            f"`temperature` must be > 0: it divides the logits (T = 1 is the plain softmax, "
            f"T > 1 softens it; typical values 2-10). Received: {temperature}"
        )


def build_distiller(
    teacher,
    student,
    *,
    temperature=4.0,
    student_loss_weight=0.1,
    optimizer="adam",
    metrics=("accuracy",),
):
    """A compiled `keras.distillation.Distiller` for probability (softmax) teacher and student
    (a `CheckedDistiller`: its `fit` checks the data first).

    Both models are seen through `logits_model`; the distillation term is
    `keras.distillation.LogitsDistillation(temperature, keras.losses.KLDivergence())` (softened
    at T, T^2-scaled; pass the loss instance, not the string "kl_divergence", which Keras 3.15
    applies to raw logits) and the
    hard-label term a sparse cross-entropy on the student's logits, combined as
    `student_loss_weight * hard + (1 - student_loss_weight) * soft`. The teacher is frozen.
    `distiller.fit(x, labels)` trains `student` itself (the view shares its weights); evaluate
    and export `student` afterwards. The Distiller's history reports `student_loss`,
    `distillation_loss` and `total_loss`.

    Args:
        teacher: trained classifier (probabilities or logits), e.g. a `small_cnn`.
        student: classifier to train, with the same input shape and number of classes.
        temperature: softmax temperature T > 0 of the soft targets.
        student_loss_weight: weight `a` in [0, 1] of the hard-label loss (Hinton et al. found a
            small weight on the hard targets best; the Keras example uses 0.1).
        optimizer: optimizer for the student.
        metrics: metrics on the student's outputs (`"accuracy"` works on logits).

    Returns:
        The compiled `keras.distillation.Distiller`.
    """
    _check_temperature(temperature)
    if (
        isinstance(student_loss_weight, bool)
        or not isinstance(student_loss_weight, numbers.Real)
        or not 0 <= student_loss_weight <= 1
    ):
        raise ValueError(
            "`student_loss_weight` is the weight of the hard-label loss and must be in [0, 1] "
            f"(0: soft targets only, 1: labels only). Received: {student_loss_weight!r}"
        )
    for role, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, keras.Model):
            raise ValueError(f"`{role}` must be a keras.Model. Received: {type(model).__name__}")
    t_classes, s_classes = teacher.output_shape[-1], student.output_shape[-1]
    if t_classes != s_classes:
        raise ValueError(
            f"The teacher predicts {t_classes} classes but the student {s_classes}: distillation "
            f"matches them class by class. Build the student with num_classes={t_classes}."
        )
    t_input, s_input = tuple(teacher.input_shape[1:]), tuple(student.input_shape[1:])
    if t_input != s_input:
        raise ValueError(
            f"The teacher takes inputs of shape {t_input} but the student {s_input}; both see the "
            f"same batches. Build the student with input_shape={t_input} (or load the data "
            "at that shape and give both models that input)."
        )
    distiller = CheckedDistiller(
        teacher=logits_model(teacher),
        student=logits_model(student),
        # A KLDivergence *instance*, not the string: Keras 3.15's LogitsDistillation softmaxes the
        # scaled logits and applies T^2 only for `isinstance(loss, KLDivergence)`, while the
        # default "kl_divergence" resolves to a plain function, which it then applies to raw
        # logits (the loss goes negative and the student learns nothing useful).
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=float(temperature), loss=keras.losses.KLDivergence()
        ),
        student_loss_weight=float(student_loss_weight),
        name=f"distill_{student.name}",
    )
    distiller.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=list(metrics) if metrics else None,
    )
    return distiller
