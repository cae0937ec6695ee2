"""MultiKernelMMD: values, estimates, bandwidths, dtypes, distribution and bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.losses import MultiKernelMMD


def _pair(rng, n, shift=0.0, dim=8, m=None):
    return rng.normal(size=(n, dim)), rng.normal(shift, size=(m or n, dim))


def _reference_quadratic(s, t, multipliers):
    """Plain NumPy double loop of the unbiased estimate, mean bandwidth."""
    z = np.concatenate([s, t])
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    n = len(z)
    gamma = d.sum() / (n * (n - 1))
    k = np.mean([np.exp(-d / (c * gamma)) for c in multipliers], axis=0)
    ns, nt = len(s), len(t)
    kss = (k[:ns, :ns].sum() - np.trace(k[:ns, :ns])) / (ns * (ns - 1))
    ktt = (k[ns:, ns:].sum() - np.trace(k[ns:, ns:])) / (nt * (nt - 1))
    return kss + ktt - 2 * k[:ns, ns:].mean()


def test_quadratic_matches_numpy_reference_with_unequal_sizes():
    rng = np.random.default_rng(0)
    s, t = _pair(rng, 40, 0.7, m=25)
    mmd = MultiKernelMMD()
    expected = _reference_quadratic(s, t, mmd.bandwidth_multipliers)
    assert float(mmd(s, t)) == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_default_kernels_are_five_bandwidths_around_the_mean():
    assert MultiKernelMMD().bandwidth_multipliers == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert MultiKernelMMD(num_kernels=3, multiplier=3).bandwidth_multipliers == [1 / 3, 1.0, 3.0]


@pytest.mark.parametrize("estimate", ["quadratic", "linear"])
@pytest.mark.parametrize("bandwidth", ["mean", "median"])
def test_same_distribution_near_zero_and_monotone_in_mean_shift(estimate, bandwidth):
    rng = np.random.default_rng(1)
    mmd = MultiKernelMMD(estimate=estimate, bandwidth=bandwidth)
    shifts = [0.0, 0.25, 0.5, 1.0, 2.0]
    # Average over draws so the linear estimate's noise does not decide the order.
    values = [np.mean([float(mmd(*_pair(rng, 256, d))) for _ in range(8)]) for d in shifts]
    assert abs(values[0]) < 0.01, values
    assert all(a < b for a, b in zip(values, values[1:])), values
    assert values[-1] > 0.3


def test_linear_and_quadratic_agree_in_expectation():
    rng = np.random.default_rng(2)
    quadratic, linear = MultiKernelMMD(), MultiKernelMMD(estimate="linear")
    for shift in (0.0, 0.3):
        q = [float(quadratic(*_pair(rng, 256, shift))) for _ in range(40)]
        lin = [float(linear(*_pair(rng, 256, shift))) for _ in range(40)]
        # Both unbiased: means agree within the linear estimate's standard error (x3).
        stderr = np.std(lin) / np.sqrt(len(lin))
        assert abs(np.mean(q) - np.mean(lin)) < 3 * stderr + 1e-3, (shift, np.mean(q), np.mean(lin))
    assert np.std(lin) > np.std(q)  # the price of O(n)


def test_feature_maps_are_flattened_and_gradient_flows():
    rng = np.random.default_rng(3)
    s = tf.constant(rng.normal(size=(16, 4, 4, 2)), tf.float32)
    t = tf.Variable(rng.normal(0.5, size=(16, 4, 4, 2)), dtype=tf.float32)
    mmd = MultiKernelMMD()
    with tf.GradientTape() as tape:
        value = mmd(s, t)
    grad = tape.gradient(value, t)
    flat = float(mmd(tf.reshape(s, (16, -1)), tf.reshape(t, (16, -1))))
    assert float(value) == pytest.approx(flat)
    assert np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).sum() > 0


@pytest.mark.parametrize("estimate", ["quadratic", "linear"])
def test_float16_inputs_give_float32_close_to_float32_inputs(estimate):
    rng = np.random.default_rng(4)
    s, t = _pair(rng, 64, 0.5)
    mmd = MultiKernelMMD(estimate=estimate)
    half = mmd(tf.constant(s, tf.float16), tf.constant(t, tf.float16))
    assert half.dtype == tf.float32
    assert float(half) == pytest.approx(float(mmd(s, t)), abs=2e-3)


def test_runs_per_replica_under_mirrored_strategy(mirrored):
    rng = np.random.default_rng(5)
    s, t = _pair(rng, 32, 1.0)
    mmd = MultiKernelMMD()
    data = tf.data.Dataset.from_tensors((s.astype("float32"), t.astype("float32")))
    dist = mirrored.experimental_distribute_dataset(data)

    @tf.function
    def step(batch):
        return mirrored.run(lambda a, b: mmd(a, b), args=batch)

    per_replica = mirrored.experimental_local_results(step(next(iter(dist))))
    assert len(per_replica) == 2
    # Each replica sees its half of both batches: the estimate of its own half.
    for value, half in zip(per_replica, (slice(0, 16), slice(16, 32))):
        assert float(value) == pytest.approx(float(mmd(s[half], t[half])), rel=1e-4)
        assert float(value) > 0.1


def test_config_round_trip_and_keras_serialization():
    mmd = MultiKernelMMD(bandwidth_multipliers=[0.5, 1.0], bandwidth="median", estimate="linear")
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(mmd))
    assert isinstance(again, MultiKernelMMD)
    assert again.get_config() == mmd.get_config()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"estimate": "cubic"}, "estimate"),
        ({"bandwidth": "max"}, "bandwidth"),
        ({"num_kernels": 0}, "num_kernels"),
        ({"bandwidth_multipliers": [1.0, -2.0]}, "bandwidth_multipliers"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiKernelMMD(**kwargs)


def test_bad_inputs_are_clear_errors():
    mmd = MultiKernelMMD()
    with pytest.raises(ValueError, match="same size"):
        mmd(np.zeros((4, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="at least 2"):
        mmd(np.zeros((1, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="batch of features"):
        mmd(np.zeros(3), np.zeros(3))
