"""`MultiKernelMMD`: the multi-kernel maximum mean discrepancy between two feature batches.

The maximum mean discrepancy (Gretton, Borgwardt, Rasch, Schoelkopf and Smola 2012, "A Kernel
Two-Sample Test") between distributions P and Q is the distance of their mean embeddings in the
reproducing kernel Hilbert space of a kernel k:

    MMD^2(P, Q) = E[k(s, s')] + E[k(t, t')] - 2 E[k(s, t)],   s, s' ~ P,  t, t' ~ Q.

Deep Adaptation Networks (Long, Cao, Wang and Jordan 2015, "Learning Transferable Features with
Deep Adaptation Networks") use a family of m Gaussian kernels, k = sum_u beta_u k_u, with equal
weights beta_u = 1/m here and bandwidths that are multiples of the batch's pairwise squared
distance:

    k_u(a, b) = exp(-||a - b||^2 / (c_u * h)),

    h = mean (or median) of ||z_i - z_j||^2 over the pairs i != j of the joined batch
            z = [source; target],  c_u = multiplier ** (u - m // 2),  u = 0..m-1.

The base bandwidth h (the gamma of Long et al.) is treated as a constant (no gradient flows
through it), as in DAN; the c_u are the bandwidth multipliers.

Two estimates:

- "quadratic", the unbiased U-statistic (Gretton et al. 2012, Lemma 6), for n_s source and n_t
  target samples (sizes may differ), O((n_s + n_t)^2):

      1/(n_s (n_s - 1)) sum_{i != j} k(s_i, s_j) + 1/(n_t (n_t - 1)) sum_{i != j} k(t_i, t_j)
      - 2/(n_s n_t) sum_{i, j} k(s_i, t_j)

- "linear", O(n): the average of h over the n consecutive pairs (i, i+1 mod n) of n = min(n_s,
  n_t) samples, h(i, j) = k(s_i, s_j) + k(t_i, t_j) - k(s_i, t_j) - k(s_j, t_i). Each term is
  an unbiased estimate of MMD^2 (Gretton et al. 2012, Lemma 14, which uses n/2 disjoint pairs;
  the n consecutive pairs, as in Long et al.'s linear DAN, halve the variance at the same order
  of cost). Here the mean bandwidth is computed exactly in O(n d) from
  sum_{i,j} ||z_i - z_j||^2 = 2 n sum_i ||z_i - mean(z)||^2; the median one is the median of
  the distances the estimate evaluates.

Both estimates are unbiased, so they can be slightly negative when P = Q. Inputs of any rank are
flattened after the batch axis and cast to float32 (mixed precision safe); the computation is
plain TensorFlow ops, so it runs per replica under `tf.distribute`.

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> mmd = MultiKernelMMD()
>>> same = float(mmd(rng.normal(size=(200, 8)), rng.normal(size=(200, 8))))
>>> shifted = float(mmd(rng.normal(size=(200, 8)), rng.normal(1.0, size=(200, 8))))
>>> abs(same) < 0.01, shifted > 0.1
(True, True)
"""

import keras
import tensorflow as tf

ESTIMATES = ("quadratic", "linear")
BANDWIDTHS = ("mean", "median")


@keras.saving.register_keras_serializable(package="kerastransfer")
class MultiKernelMMD:
    """Multi-kernel MMD^2 between a source and a target feature batch (a scalar, float32).

    Args:
        num_kernels: number of Gaussian kernels m (default 5, as in DAN).
        multiplier: ratio between consecutive bandwidths (default 2): bandwidth multiples
            `multiplier ** (u - num_kernels // 2)`, i.e. 1/4, 1/2, 1, 2, 4 by default.
        bandwidth_multipliers: explicit multiples c_u of the base bandwidth h; overrides the
            two above.
        bandwidth: the base bandwidth h, the "mean" (default) or "median" pairwise squared
            distance.
        estimate: "quadratic" (unbiased, O(n^2), default) or "linear" (O(n)).

    Call: `mmd(source, target)` with two batches of features of the same shape after the batch
    axis; returns MMD^2 as a float32 scalar.
    """

    def __init__(
        self,
        num_kernels=5,
        multiplier=2.0,
        bandwidth_multipliers=None,
        bandwidth="mean",
        estimate="quadratic",
    ):
        if bandwidth_multipliers is None:
            if int(num_kernels) != num_kernels or num_kernels < 1:
                raise ValueError(
                    f"`num_kernels` must be a positive integer. Received: {num_kernels}"
                )
            if multiplier <= 0:
                raise ValueError(f"`multiplier` must be > 0. Received: {multiplier}")
            num_kernels = int(num_kernels)
            bandwidth_multipliers = [
                float(multiplier) ** (u - num_kernels // 2) for u in range(num_kernels)
            ]
        bandwidth_multipliers = [float(c) for c in bandwidth_multipliers]
        if not bandwidth_multipliers or min(bandwidth_multipliers) <= 0:
            raise ValueError(
                "`bandwidth_multipliers` must be a non-empty list of positive numbers. "
                f"Received: {bandwidth_multipliers}"
            )
        if bandwidth not in BANDWIDTHS:
            raise ValueError(f"`bandwidth` must be one of {BANDWIDTHS}. Received: {bandwidth!r}")
        if estimate not in ESTIMATES:
            raise ValueError(f"`estimate` must be one of {ESTIMATES}. Received: {estimate!r}")
        self.bandwidth_multipliers = bandwidth_multipliers
        self.bandwidth = bandwidth
        self.estimate = estimate

    def __call__(self, source, target):
        source, target = _flat_float32(source, "source"), _flat_float32(target, "target")
        if source.shape[-1] is not None and target.shape[-1] is not None:
            if source.shape[-1] != target.shape[-1]:
                raise ValueError(
                    "`source` and `target` features must have the same size after the batch "
                    f"axis. Received {source.shape[-1]} and {target.shape[-1]}."
                )
        if self.estimate == "linear":
            return self._linear(source, target)
        return self._quadratic(source, target)

    def _kernel(self, squared_distances, base_bandwidth):
        """Equal-weight mean of the Gaussian kernels at the given squared distances."""
        h = tf.maximum(tf.stop_gradient(base_bandwidth), 1e-12)
        multipliers = sorted(self.bandwidth_multipliers, reverse=True)
        if all(abs(a / b - 2.0) < 1e-9 for a, b in zip(multipliers, multipliers[1:])):
            # Bandwidths halving from the widest: exp(-d / (c/2)) = exp(-d / c)^2, so one exp
            # and cheap squarings give the whole family.
            value = tf.exp(-squared_distances / (multipliers[0] * h))
            total = value
            for _ in multipliers[1:]:
                value = tf.square(value)
                total = total + value
        else:
            total = tf.add_n([tf.exp(-squared_distances / (c * h)) for c in multipliers])
        return total / float(len(multipliers))

    def _quadratic(self, source, target):
        _check_batch(source, "source")
        _check_batch(target, "target")
        n_s, n_t = tf.shape(source)[0], tf.shape(target)[0]
        joined = tf.concat([source, target], axis=0)
        # Distances do not change under a shift; centring keeps the expansion below accurate.
        joined = joined - tf.reduce_mean(joined, axis=0, keepdims=True)
        norms = tf.reduce_sum(tf.square(joined), axis=1)
        distances = (
            norms[:, None] + norms[None, :] - 2.0 * tf.matmul(joined, joined, transpose_b=True)
        )
        n = n_s + n_t
        off_diagonal = 1.0 - tf.eye(n)
        distances = tf.maximum(distances, 0.0) * off_diagonal
        if self.bandwidth == "mean":
            pairs = tf.cast(n * (n - 1), tf.float32)
            base_bandwidth = tf.reduce_sum(distances) / pairs
        else:
            upper = tf.boolean_mask(
                distances, tf.linalg.band_part(tf.ones((n, n)), 0, -1) > tf.eye(n)
            )
            base_bandwidth = _median(upper)
        kernel = self._kernel(distances, base_bandwidth) * off_diagonal
        fs, ft = tf.cast(n_s, tf.float32), tf.cast(n_t, tf.float32)
        k_ss = tf.reduce_sum(kernel[:n_s, :n_s]) / (fs * (fs - 1.0))
        k_tt = tf.reduce_sum(kernel[n_s:, n_s:]) / (ft * (ft - 1.0))
        k_st = tf.reduce_sum(kernel[:n_s, n_s:]) / (fs * ft)
        return k_ss + k_tt - 2.0 * k_st

    def _linear(self, source, target):
        _check_batch(source, "source")
        _check_batch(target, "target")
        n = tf.minimum(tf.shape(source)[0], tf.shape(target)[0])
        s, t = source[:n], target[:n]
        s_next, t_next = tf.roll(s, -1, axis=0), tf.roll(t, -1, axis=0)
        # Rows: (s_i, s_i+1), (t_i, t_i+1), (s_i, t_i+1), (s_i+1, t_i): one op for all four.
        pairs = tf.stack([s, t, s, s_next]) - tf.stack([s_next, t_next, t_next, t])
        distances = tf.reduce_sum(tf.square(pairs), axis=-1)
        if self.bandwidth == "mean":
            # sum_{i != j} ||z_i - z_j||^2 = 2 m sum_i ||z_i - mean||^2, exactly, in O(m d).
            joined = tf.concat([s, t], axis=0)
            centred = joined - tf.reduce_mean(joined, axis=0, keepdims=True)
            m = tf.cast(2 * n, tf.float32)
            base_bandwidth = 2.0 * tf.reduce_sum(tf.square(centred)) / (m - 1.0)
        else:
            base_bandwidth = _median(tf.reshape(distances, [-1]))
        kernel = self._kernel(distances, base_bandwidth)
        h = kernel[0] + kernel[1] - kernel[2] - kernel[3]
        return tf.reduce_mean(h)

    def get_config(self):
        return {
            "bandwidth_multipliers": list(self.bandwidth_multipliers),
            "bandwidth": self.bandwidth,
            "estimate": self.estimate,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return (
            f"MultiKernelMMD(bandwidth_multipliers={self.bandwidth_multipliers}, "
            f"bandwidth={self.bandwidth!r}, estimate={self.estimate!r})"
        )


def _flat_float32(x, what):
    x = tf.convert_to_tensor(x)
    x = tf.cast(x, tf.float32)
    if x.shape.rank is not None and x.shape.rank < 2:
        raise ValueError(
            f"`{what}` must be a batch of features, shape (batch, ...). Received shape {x.shape}."
        )
    if x.shape.rank != 2:
        inner = x.shape[1:].num_elements()
        x = tf.reshape(x, (-1, inner) if inner is not None else (tf.shape(x)[0], -1))
    return x


def _check_batch(x, what):
    """Both estimates need two samples per domain; say so rather than return NaN."""
    if x.shape[0] is not None and x.shape[0] < 2:
        raise ValueError(
            f"MultiKernelMMD needs at least 2 `{what}` samples per batch. Received shape {x.shape}."
        )


def _median(values):
    """Median of a 1-D tensor (lower middle value for even sizes), without gradient."""
    values = tf.sort(tf.stop_gradient(values))
    return values[(tf.shape(values)[0] - 1) // 2]
