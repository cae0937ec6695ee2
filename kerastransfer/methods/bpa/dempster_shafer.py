"""Basic probability assignment (BPA) of a classifier's confusion matrix, and the costs Gamma.

The math of A. Shahriari, "Distributed Deep Transfer Learning by Basic Probability Assignment"
(2017), with one correction to its Dempster normaliser.

Algorithm 1 of the paper, for one classifier with confusion matrix n (C x C, rows = true class,
columns = predicted class):

1. recall ratios r_ij = n_ij / sum_j' n_ij' and precision ratios s_ij = n_ij / sum_i' n_i'j
   (0/0 is 0);
2. recall and precision assignments R_i = r_ii / sum_j r_jj and S_i = s_ii / sum_j s_jj (all zeros
   when the sum is 0);
3. Dempster's rule on singletons, **with a correction**: M_i = R_i S_i / sum_j R_j S_j
   (the paper prints 1 - sum R_i S_i as the denominator, which does not sum to one; Dempster's
   normaliser is 1 - K with conflict K = 1 - sum_j R_j S_j); all zeros when
   sum_j R_j S_j = 0;
4. Theta = (M_1, ..., M_C).

Costs Gamma of a classifier (`gamma_costs`; its `gamma` argument picks the functional):

- `"paper"` (Eq. 5): ||Theta||_2. Known flaw: Theta sums to one, so this norm is smallest
  (1/sqrt(C)) for a classifier equally good on every class -- a perfect one included -- and
  largest (1) for a classifier that predicts one class for everything.
- `"agreement"`: (1/C) sum_i r_ii s_ii: 1 for a perfect classifier, about 1/C^2 at chance and for a
  constant classifier.

Costs are then normalised across the d filters of a split layer (`normalize_gamma`).

Every function takes a batch of matrices: any leading axes (typically one per filter) are kept.
"""

import numpy as np

GAMMA_FUNCTIONALS = ("agreement", "paper")
NORMALIZATIONS = ("max", "mean", "none")


def _check_confusion(confusion):
    shape = np.shape(confusion)
    if len(shape) < 2 or shape[-1] != shape[-2] or shape[-1] < 1:
        raise ValueError(
            "`confusion` must be a square matrix (or a batch of them) of shape (..., C, C). "
            f"Received shape: {tuple(shape)}"
        )


def check_gamma(gamma):
    if gamma not in GAMMA_FUNCTIONALS:
        raise ValueError(f"`gamma` must be one of {GAMMA_FUNCTIONALS}. Received: gamma={gamma!r}")


def check_normalization(normalization):
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"`normalization` must be one of {NORMALIZATIONS}. "
            f"Received: normalization={normalization!r}"
        )


def _safe_div(a, b):
    b = np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def _ratio_diagonals(confusion):
    """(r_ii, s_ii) of a batch of confusion matrices, as float64 arrays of shape (..., C)."""
    n = np.asarray(confusion, dtype=np.float64)
    _check_confusion(n)
    if np.any(n < 0) or not np.all(np.isfinite(n)):
        raise ValueError("`confusion` must hold finite, non-negative counts.")
    diag = np.diagonal(n, axis1=-2, axis2=-1)
    recall = _safe_div(diag, n.sum(axis=-1))  # r_ii: true-class rows
    precision = _safe_div(diag, n.sum(axis=-2))  # s_ii: predicted-class columns
    return recall, precision


def bpa(confusion):
    """The basic probability assignment Theta of a confusion matrix (Algorithm 1, erratum applied).

    Args:
        confusion: array of shape (..., C, C) with non-negative counts; `confusion[..., i, j]`
            counts samples of true class i predicted as class j.

    Returns:
        float64 array of shape (..., C): non-negative and summing to one, or all zeros when no
        class is ever correctly recognised.

    Example:

    >>> bpa([[5, 0], [0, 5]]).tolist()  # perfect classifier: uniform
    [0.5, 0.5]
    >>> bpa([[5, 0], [5, 0]]).tolist()  # predicts class 0 for everything: one-hot
    [1.0, 0.0]
    """
    r, s = _ratio_diagonals(confusion)
    big_r = _safe_div(r, r.sum(axis=-1, keepdims=True))
    big_s = _safe_div(s, s.sum(axis=-1, keepdims=True))
    joint = big_r * big_s
    return _safe_div(joint, joint.sum(axis=-1, keepdims=True))


def gamma_costs(confusion, gamma="paper"):
    """The cost Gamma of a classifier from its confusion matrix.

    Args:
        confusion: array of shape (..., C, C).
        gamma: the cost functional, `"paper"` (Eq. 5, the L2 norm of `bpa(confusion)`; largest
            for a constant classifier, see the module docstring) or `"agreement"` ((1/C) sum_i
            r_ii s_ii; 1 for a perfect classifier).

    Returns:
        float64 array of shape (...,).

    Example:

    >>> round(float(gamma_costs([[5, 0], [0, 5]], "paper")), 4)  # 1/sqrt(2)
    0.7071
    >>> float(gamma_costs([[5, 0], [0, 5]], "agreement"))
    1.0
    """
    check_gamma(gamma)
    if gamma == "paper":
        return np.linalg.norm(bpa(confusion), axis=-1)
    r, s = _ratio_diagonals(confusion)
    return np.mean(r * s, axis=-1)


def normalize_gamma(costs, normalization="max"):
    """Normalises costs across the filters of a split layer (the last axis).

    Args:
        costs: array of shape (..., d), non-negative.
        normalization: `"max"` (divide by the largest: the most useful filter keeps the base
            step), `"mean"` (mean 1) or `"none"`.

    Returns:
        float64 array of the same shape. When every cost is 0 no filter is more useful than
        another, and `"max"`/`"mean"` give all ones (every filter keeps the base step).

    Example:

    >>> normalize_gamma([0.5, 0.25, 0.0]).tolist()
    [1.0, 0.5, 0.0]
    >>> normalize_gamma([0.0, 0.0], "mean").tolist()
    [1.0, 1.0]
    """
    check_normalization(normalization)
    costs = np.asarray(costs, dtype=np.float64)
    if normalization == "none":
        return costs
    scale = (
        costs.max(axis=-1, keepdims=True)
        if normalization == "max"
        else costs.mean(axis=-1, keepdims=True)
    )
    return np.where(scale > 0, _safe_div(costs, scale), 1.0)


def normalized_costs(confusion, gamma="paper", normalization="max"):
    """Gamma of the d filters of a split layer: `normalize_gamma(gamma_costs(confusion, gamma),
    normalization)` for their confusion matrices of shape (d, C, C)."""
    return normalize_gamma(gamma_costs(confusion, gamma), normalization)


def as_gamma(values, num_filters, name):
    """`values` as the float32 Gamma of split layer `name`, which has `num_filters` filters.

    Raises:
        ValueError: unless `values` holds `num_filters` finite, non-negative numbers.
    """
    values = np.asarray(values, dtype="float32")
    if values.shape != (num_filters,) or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(
            f"Gamma for '{name}' must be {num_filters} finite non-negative values. Received "
            f"shape {values.shape}, min {values.min() if values.size else None}"
        )
    return values
