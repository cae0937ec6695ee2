"""`minimum_class_confusion`: the MCC loss of Jin, Wang, Long and Wang (2020).

Jin, Wang, Long and Wang (2020, "Minimum Class Confusion for Versatile Domain Adaptation")
adapt a classifier by making its predictions on a batch of *unlabelled target* examples confuse
few pairs of classes. For B examples, C classes, logits z and a temperature T (default 2.5):

    Y   = softmax(z / T)                                    (B x C, temperature rescaling)
    H_i = -sum_j Y_ij log Y_ij                              (the uncertainty of example i)
    W   = diag(B (1 + exp(-H_i)) / sum_k (1 + exp(-H_k)))   (certain examples count more)
    C   = Y^T W Y                                           (C x C class correlation)
    C~_jj' = C_jj' / sum_i C_ij'                            (category normalisation)
    L_MCC  = (sum_j sum_j' C~_jj' - sum_j C~_jj) / C        (the between-class confusion)

The example weights are constants (no gradient flows through H), as in the authors' code. Each
column of C~ sums to 1, so L_MCC = 1 - mean_j C~_jj, in [0, 1): near 0 when each class's
probability mass sits on examples no other class claims. It needs no labels, no discriminator
and no source batch. `certainty_weights` (1 + exp(-H)) is shared with the
entropy conditioning of CDAN (`CDANModel`).

Probabilities instead of logits (`from_logits=False`, for classifiers that end in a softmax) are
turned back into logits as log(p): softmax(log(p) / T) = softmax(z / T) exactly, up to a floor
of 1e-30 on p.

Example:

>>> import numpy as np
>>> confident = np.array([[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 9.0]])
>>> confused = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
>>> [round(float(minimum_class_confusion(z)), 3) for z in (confident, confused)]
[0.1, 0.656]
>>> round(float(minimum_class_confusion(confident, temperature=1.0)), 4)
0.0005
"""

import math
import numbers

import keras
from keras import ops

PROBABILITY_FLOOR = 1e-30  # log(p) of a softmax output; float32 holds it (and 1/p) exactly


def check_temperature(temperature, what="temperature"):
    """A finite float > 0, or a clear error."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"`{what}` must be a number > 0 (e.g. 2.5). Received: {temperature!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"`{what}` must be a finite number > 0: it divides the logits (T = 1 is the plain "
            f"softmax, MCC uses 2.5). Received: {temperature}"
        )
    return float(temperature)


def logits_of(y_pred, from_logits=True):
    """`y_pred` as float32 logits: itself, or log(p) for probabilities."""
    y_pred = ops.cast(y_pred, "float32")
    if from_logits:
        return y_pred
    return ops.log(ops.maximum(y_pred, PROBABILITY_FLOOR))


def entropy(probabilities):
    """H_i = -sum_j p_ij log p_ij of each row (float32)."""
    p = ops.cast(probabilities, "float32")
    return -ops.sum(p * ops.log(ops.maximum(p, keras.config.epsilon())), axis=-1)


def certainty_weights(probabilities):
    """1 + exp(-H_i) per example, a constant (no gradient): in [1 + 1/C, 2], larger for
    confident predictions. Used by MCC and by CDAN's entropy conditioning."""
    return ops.stop_gradient(1.0 + ops.exp(-entropy(probabilities)))


def minimum_class_confusion(y_pred, temperature=2.5, from_logits=True):
    """The MCC loss of a batch of (target) predictions; see the module docstring.

    Args:
        y_pred: logits (or probabilities with `from_logits=False`), shape (batch, classes).
        temperature: T > 0 of the rescaled softmax (default 2.5, the paper's).
        from_logits: whether `y_pred` are logits (default) or softmax probabilities.

    Returns:
        A float32 scalar in [0, 1): the class confusion, averaged over the classes.
    """
    temperature = check_temperature(temperature)
    y = ops.softmax(logits_of(y_pred, from_logits) / temperature, axis=-1)
    batch = ops.cast(ops.shape(y)[0], "float32")
    weights = certainty_weights(y)
    weights = batch * weights / ops.sum(weights)
    correlation = ops.matmul(ops.transpose(y * weights[:, None]), y)
    normalised = ops.divide_no_nan(correlation, ops.sum(correlation, axis=0, keepdims=True))
    num_classes = ops.cast(ops.shape(y)[-1], "float32")
    return (ops.sum(normalised) - ops.trace(normalised)) / num_classes
