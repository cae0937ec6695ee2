"""Gumbel-softmax with straight-through hard samples: `GumbelSoftmax` and `gumbel_softmax`.

Jang, Gu and Poole (2017), "Categorical Reparameterization with Gumbel-Softmax"; used by Guo et
al. (2019), "SpotTune: Transfer Learning through Adaptive Fine-tuning", to train a discrete
per-input policy.

In training, for logits `a` (last axis: the `k` choices) and Gumbel noise
`g = -log(-log(u))`, `u ~ U(0, 1)`:

    y_soft = softmax((a + g) / tau)
    y = one_hot(argmax(y_soft)) + (y_soft - stop_gradient(y_soft))

so the forward value is a hard one-hot sample and the gradient is that of `y_soft`
(straight-through). At inference `y = one_hot(argmax(a))`: deterministic.

Example:

>>> layer = GumbelSoftmax(temperature=5.0)
>>> layer(keras.ops.convert_to_tensor([[2.0, -1.0]]), training=False).numpy().tolist()
[[1.0, 0.0]]
"""

import math

import keras
from keras import ops

_EPS = 1e-20


def _check_temperature(temperature):
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`temperature` must be a finite number > 0. Received: {temperature!r}")
    return value


def gumbel_softmax(logits, temperature=5.0, hard=True, seed=None):
    """A Gumbel-softmax sample over the last axis of `logits` (straight-through if `hard`).

    Args:
        logits: unnormalised log-probabilities, `(..., k)`.
        temperature: `tau > 0`; the authors of SpotTune use 5.
        hard: return one-hot samples whose gradient is the soft sample's.
        seed: an int or a `keras.random.SeedGenerator`.
    """
    temperature = _check_temperature(temperature)
    logits = ops.convert_to_tensor(logits)
    u = keras.random.uniform(ops.shape(logits), dtype=logits.dtype, seed=seed)
    noise = -ops.log(-ops.log(u + _EPS) + _EPS)
    soft = ops.softmax((logits + noise) / temperature, axis=-1)
    if not hard:
        return soft
    one_hot = ops.one_hot(ops.argmax(soft, axis=-1), ops.shape(logits)[-1], dtype=soft.dtype)
    return one_hot + (soft - ops.stop_gradient(soft))  # exactly one-hot forward


@keras.saving.register_keras_serializable(package="kerastransfer")
class GumbelSoftmax(keras.layers.Layer):
    """Straight-through Gumbel-softmax in training, `one_hot(argmax)` at inference.

    Args:
        temperature: `tau > 0` (default 5, as Guo et al. 2019).
        hard: one-hot samples in training (straight-through); False gives soft samples.
        seed: seed of the noise.
    """

    def __init__(self, temperature=5.0, hard=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.temperature = _check_temperature(temperature)
        self.hard = bool(hard)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def call(self, logits, training=False):
        if training:
            return gumbel_softmax(logits, self.temperature, self.hard, self.seed_generator)
        return ops.one_hot(ops.argmax(logits, axis=-1), ops.shape(logits)[-1], dtype=logits.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "hard": self.hard,
            "seed": self.seed,
        }
