"""The BPA math (Algorithm 1 with the SPEC §4 erratum) and its TensorFlow twin."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kerastransfer.methods.bpa.dempster_shafer import bpa, gamma_costs, normalize_gamma

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def confusions(draw, max_classes=6, batch=False):
    c = draw(st.integers(1, max_classes))
    shape = ((draw(st.integers(1, 4)),) if batch else ()) + (c, c)
    # Many zeros, so empty rows/columns and absent classes are common.
    return draw(hnp.arrays(np.int64, shape, elements=st.sampled_from([0, 0, 0, 1, 2, 7, 30])))


# -- worked examples, computed by hand ----------------------------------------------------------


def test_worked_example_two_classes():
    # n = [[3, 1], [2, 4]]: rows 4, 6 -> r_00 = 3/4, r_11 = 2/3; columns 5, 5 -> s = 3/5, 4/5.
    # R = (3/4, 2/3) / (17/12) = (9/17, 8/17); S = (3/5, 4/5) / (7/5) = (3/7, 4/7).
    # R*S = (27/119, 32/119), sum 59/119 -> M = (27/59, 32/59).
    n = [[3, 1], [2, 4]]
    np.testing.assert_allclose(bpa(n), [27 / 59, 32 / 59], rtol=1e-12)
    np.testing.assert_allclose(gamma_costs(n, "paper"), math.sqrt(27**2 + 32**2) / 59, rtol=1e-12)
    # agreement: (3/4 * 3/5 + 2/3 * 4/5) / 2 = (9/20 + 8/15) / 2 = 59/120.
    np.testing.assert_allclose(gamma_costs(n, "agreement"), 59 / 120, rtol=1e-12)


def test_erratum_paper_denominator_does_not_normalise():
    # The paper's Eq. 3 divides R_i S_i by 1 - sum_j R_j S_j = 60/119: (27/60, 32/60) sums to
    # 59/60, not a BPA. The corrected normaliser sum_j R_j S_j makes it sum to one.
    n = np.array([[3, 1], [2, 4]])
    as_printed = np.array([27 / 119, 32 / 119]) / (1 - 59 / 119)
    assert not math.isclose(as_printed.sum(), 1.0)
    assert math.isclose(bpa(n).sum(), 1.0)
    assert not np.allclose(bpa(n), as_printed)


def test_worked_example_absent_class_and_never_predicted_class():
    # Class 2 has no samples (empty row), classes 1 and 2 are never predicted (empty columns).
    # r = (2/2, 0/1, 0/0 -> 0), s = (2/3, 0/0 -> 0, 0/0 -> 0): R = S = (1, 0, 0), M = (1, 0, 0).
    n = [[2, 0, 0], [1, 0, 0], [0, 0, 0]]
    np.testing.assert_array_equal(bpa(n), [1.0, 0.0, 0.0])
    assert gamma_costs(n, "paper") == 1.0
    np.testing.assert_allclose(gamma_costs(n, "agreement"), (1 * 2 / 3) / 3)


def test_nothing_recognised_gives_all_zeros():
    n = [[0, 4], [3, 0]]
    np.testing.assert_array_equal(bpa(n), [0.0, 0.0])
    assert gamma_costs(n, "paper") == 0.0 and gamma_costs(n, "agreement") == 0.0
    np.testing.assert_array_equal(bpa(np.zeros((3, 3))), np.zeros(3))  # empty set: 0/0 everywhere


def test_batched_leading_axes():
    batch = np.array([[[3, 1], [2, 4]], [[5, 0], [0, 5]], [[0, 1], [1, 0]]])
    theta = bpa(batch)
    assert theta.shape == (3, 2)
    np.testing.assert_allclose(theta[0], [27 / 59, 32 / 59])
    np.testing.assert_allclose(theta[1], [0.5, 0.5])
    np.testing.assert_array_equal(theta[2], [0, 0])
    assert gamma_costs(batch, "agreement").shape == (3,)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="square matrix"):
        bpa([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match="non-negative"):
        bpa([[1, -1], [0, 1]])
    with pytest.raises(ValueError, match="`gamma` must be one of"):
        gamma_costs([[1]], gamma="l2")
    with pytest.raises(ValueError, match="normalization"):
        normalize_gamma([1.0], "sum")


# -- properties ---------------------------------------------------------------------------------


@SETTINGS
@given(confusions(batch=True))
def test_bpa_is_a_probability_or_all_zero(n):
    theta = bpa(n)
    assert theta.shape == n.shape[:-1]
    assert np.all(np.isfinite(theta)) and np.all(theta >= 0)
    sums = theta.sum(axis=-1)
    recognised = np.trace(n, axis1=-2, axis2=-1) > 0
    np.testing.assert_allclose(sums[recognised], 1.0, rtol=1e-12)
    np.testing.assert_array_equal(sums[~recognised], 0.0)
    for functional in ("paper", "agreement"):
        g = gamma_costs(n, functional)
        assert np.all(np.isfinite(g)) and np.all(g >= 0) and np.all(g <= 1 + 1e-12)


@SETTINGS
@given(st.lists(st.integers(1, 50), min_size=1, max_size=8))
def test_perfect_classifier_gives_uniform_theta(counts):
    c = len(counts)
    n = np.diag(counts)  # any class balance: every sample right
    np.testing.assert_allclose(bpa(n), np.full(c, 1 / c))
    np.testing.assert_allclose(gamma_costs(n, "paper"), 1 / math.sqrt(c))
    np.testing.assert_allclose(gamma_costs(n, "agreement"), 1.0)


@SETTINGS
@given(st.lists(st.integers(0, 50), min_size=2, max_size=8), st.data())
def test_constant_classifier_one_hot_theta_and_the_paper_flaw(counts, data):
    c = len(counts)
    j = data.draw(st.integers(0, c - 1))
    counts[j] = max(counts[j], 1)  # the predicted class is present
    n = np.zeros((c, c), np.int64)
    n[:, j] = counts  # everything predicted as class j
    theta = bpa(n)
    np.testing.assert_array_equal(theta, np.eye(c)[j])
    # SPEC §4 known flaw of Eq. 5: ||Theta||_2 is largest (1) for a constant classifier, larger
    # than for a perfect one (1/sqrt(C)). "agreement" ranks them the right way round.
    perfect = np.diag(np.maximum(counts, 1))
    assert gamma_costs(n, "paper") == 1.0
    assert gamma_costs(n, "paper") > gamma_costs(perfect, "paper")
    assert gamma_costs(n, "agreement") < gamma_costs(perfect, "agreement") == 1.0
    other = data.draw(confusions(max_classes=c))
    assert gamma_costs(other, "paper") <= gamma_costs(n, "paper") + 1e-12


@SETTINGS
@given(
    hnp.arrays(
        np.float64, st.integers(1, 12), elements=st.sampled_from([0.0, 0.0, 0.01, 0.3, 1.0, 2.5])
    )
)
def test_normalisation(costs):
    for mode in ("max", "mean", "none"):
        out = normalize_gamma(costs, mode)
        assert np.all(np.isfinite(out)) and np.all(out >= 0)
    if costs.max() > 0:
        assert normalize_gamma(costs, "max").max() == pytest.approx(1.0)
        assert normalize_gamma(costs, "mean").mean() == pytest.approx(1.0)
        # order is kept: the most useful filter keeps the base step
        assert np.argmax(normalize_gamma(costs, "max")) == np.argmax(costs)
    else:  # all zero: no filter is more useful than another
        np.testing.assert_array_equal(normalize_gamma(costs, "max"), np.ones_like(costs))
        np.testing.assert_array_equal(normalize_gamma(costs, "mean"), np.ones_like(costs))
    np.testing.assert_array_equal(normalize_gamma(costs, "none"), costs)
