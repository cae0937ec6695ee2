"""`GradientReversal`: identity forward, gradient multiplied by `-scale` backward.

The gradient reversal layer of domain-adversarial training (Ganin and Lempitsky 2015,
"Unsupervised Domain Adaptation by Backpropagation"): placed between a feature extractor and a
domain classifier, it lets the classifier learn to tell the domains apart while the features
below it receive the *reversed* gradient and learn to make the domains indistinguishable:

    forward:  R(x) = x
    backward: dR/dx = -lambda * I

It is written as `stop_gradient(x) + (u - stop_gradient(u))` with `u = -lambda * x`: the
forward value is exactly `x` (the bracket is exactly zero) and the gradient is exactly
`-lambda` times the incoming gradient. `lambda` (here `scale`) is a constant of the layer, or a
value passed at call time (`layer(x, scale=...)`) when it follows a schedule.

Example:

>>> import tensorflow as tf
>>> x = tf.constant([[1.0, -2.0]])
>>> with tf.GradientTape() as tape:
...     tape.watch(x)
...     y = GradientReversal(scale=0.5)(x)
...     loss = tf.reduce_sum(3.0 * y)
>>> y.numpy().tolist(), tape.gradient(loss, x).numpy().tolist()
([[1.0, -2.0]], [[-1.5, -1.5]])
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerastransfer")
class GradientReversal(keras.layers.Layer):
    """Identity in the forward pass; multiplies the gradient by `-scale` in the backward pass.

    Args:
        scale: lambda >= 0, the factor of the reversed gradient (default 1).
        **kwargs: base `Layer` arguments (name, dtype).

    Call arguments:
        inputs: any tensor.
        scale: optional value overriding the layer's `scale` for this call (a float or a scalar
            tensor, e.g. a ramp evaluated at the training step).
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        scale = float(scale)
        if scale < 0:
            raise ValueError(f"`scale` must be >= 0. Received: {scale}")
        self.scale = scale
        self.supports_masking = True

    def call(self, inputs, scale=None):
        scale = self.scale if scale is None else ops.stop_gradient(scale)
        scale = ops.cast(scale, inputs.dtype)
        reversed_ = -scale * inputs
        return ops.stop_gradient(inputs) + (reversed_ - ops.stop_gradient(reversed_))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
