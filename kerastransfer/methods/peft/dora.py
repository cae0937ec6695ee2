"""DoRA on a Keras model: `apply_dora`, the `apply_lora` of a weight-decomposed update.

Liu et al. (2024), "DoRA: Weight-Decomposed Low-Rank Adaptation". The kernel is split into a
magnitude and a direction per output unit; the direction is tuned by LoRA and the magnitude
directly:

    W' = m * (W + (alpha / r) A B) / ||W + (alpha / r) A B||_c

with ||.||_c the norm of each output unit's weights over all input axes (for a depthwise
kernel, of each (channel, multiplier) filter), treated as a constant in the backward pass as
the paper recommends, and m a trainable vector initialised to ||W||_c, so that the adapted model
computes what the base did. DoRA adds one scalar per output unit to LoRA's parameters.

Example:

>>> inputs = keras.Input((8,))
>>> model = keras.Model(inputs, keras.layers.Dense(4, name="dense")(inputs))
>>> adapted = apply_dora(model, rank=2)
>>> trainable_parameter_count(adapted)  # A (8x2) + B (2x4) + m (4)
(28, 64)
>>> x = np.ones((1, 8), "float32")
>>> bool(np.allclose(adapted(x), model(x), atol=1e-6))
True
"""

import keras  # noqa: F401  (used in the docstring example)
import numpy as np  # noqa: F401  (used in the docstring example)

from kerastransfer.methods.peft.lora import adapt_model, trainable_parameter_count  # noqa: F401


def apply_dora(model, targets=None, rank=8, alpha=None, dropout=0.0, seed=None, train=()):
    """A new model in which the `targets` of `model` carry DoRA adapters.

    The arguments, the freezing and the errors are those of `apply_lora`; each targeted layer
    also gets a trainable magnitude vector (one scalar per output unit).
    """
    return adapt_model(model, "dora", targets, rank, alpha, dropout, seed, train)
