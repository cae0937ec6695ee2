"""`MultilinearMap` and `RandomizedMultilinearMap`: the conditioning of CDAN.

Long, Cao, Wang and Jordan (2018, "Conditional Adversarial Domain Adaptation") condition the
domain discriminator on the classifier's predictions g (C classes) through the multilinear map
of the features f (d_f values) and g, their flattened outer product:

    T(f, g) = f (x) g,      of width d_f x C;  entry c * d_f + k is g_c f_k.

For wide features it is approximated by the randomized multilinear map, with fixed Gaussian
matrices R_f (d_f x d) and R_g (C x d), N(0, 1), drawn once and never trained:

    T(f, g) = (1 / sqrt(d)) (f R_f) * (g R_g),    of width d,  E[<T(f,g), T(f',g')>] = <f,f'><g,g'>.

Features of any rank are flattened after the batch axis. Both layers compute in float32 (mixed
precision safe). The random matrices are non-trainable weights: they are saved with the model
and restored by `.keras` reloads.

Example:

>>> import numpy as np
>>> f, g = np.array([[1.0, 2.0]]), np.array([[0.25, 0.75]])
>>> keras.ops.convert_to_numpy(MultilinearMap()([f, g])).tolist()
[[0.25, 0.5, 0.75, 1.5]]
>>> RandomizedMultilinearMap(16, seed=0)([f, g]).shape
TensorShape([1, 16])
"""

import math

import keras
from keras import ops


def _flat(features):
    features = ops.cast(features, "float32")
    return ops.reshape(features, (ops.shape(features)[0], -1))


def _widths(input_shape):
    feature_shape, prediction_shape = input_shape
    if any(d is None for d in feature_shape[1:]) or prediction_shape[-1] is None:
        raise ValueError(
            "A multilinear map needs features and predictions of known width. Received shapes "
            f"{tuple(feature_shape)} and {tuple(prediction_shape)}."
        )
    return math.prod(feature_shape[1:]), int(prediction_shape[-1])


@keras.saving.register_keras_serializable(package="kerastransfer")
class MultilinearMap(keras.layers.Layer):
    """`[f, g] -> flatten(g (x) f)`, shape (batch, C * d_f): entry c * d_f + k is g_c f_k."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        features, predictions = inputs
        f, g = _flat(features), ops.cast(predictions, "float32")
        outer = g[:, :, None] * f[:, None, :]
        return ops.reshape(outer, (ops.shape(f)[0], -1))

    def compute_output_shape(self, input_shape):
        d_f, c = _widths(input_shape)
        return (input_shape[0][0], d_f * c)


@keras.saving.register_keras_serializable(package="kerastransfer")
class RandomizedMultilinearMap(keras.layers.Layer):
    """`[f, g] -> (f R_f) * (g R_g) / sqrt(d)`, shape (batch, d), with fixed N(0, 1) matrices.

    Args:
        output_dim: d, the width of the map (default 1024, as in CDAN).
        seed: seed of the random matrices (default: drawn from Keras's global seed).
        **kwargs: base `Layer` arguments (name).
    """

    def __init__(self, output_dim=1024, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if isinstance(output_dim, bool) or int(output_dim) != output_dim or output_dim < 1:
            raise ValueError(f"`output_dim` must be a positive integer. Received: {output_dim!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"`seed` must be an integer or None. Received: {seed!r}")
        self.output_dim = int(output_dim)
        self.seed = seed

    def build(self, input_shape):
        d_f, c = _widths(input_shape)
        seeds = (None, None) if self.seed is None else (self.seed, self.seed + 1)
        self.feature_matrix = self.add_weight(
            shape=(d_f, self.output_dim),
            initializer=keras.initializers.RandomNormal(0.0, 1.0, seed=seeds[0]),
            trainable=False,
            name="feature_matrix",
        )
        self.prediction_matrix = self.add_weight(
            shape=(c, self.output_dim),
            initializer=keras.initializers.RandomNormal(0.0, 1.0, seed=seeds[1]),
            trainable=False,
            name="prediction_matrix",
        )

    def call(self, inputs):
        features, predictions = inputs
        f = ops.matmul(_flat(features), self.feature_matrix)
        g = ops.matmul(ops.cast(predictions, "float32"), self.prediction_matrix)
        return f * g / math.sqrt(self.output_dim)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim, "seed": self.seed}
