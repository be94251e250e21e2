from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import false_discovery_control, wilcoxon

from hotspots.analysis.significance import (
    benjamini_hochberg,
    binomial_greater,
    median_z_greater,
    rejected,
    robust_sigma,
    signed_rank_greater,
)


def _one_group(values: list[float]) -> tuple[float, float, int]:
    x = np.array(values)
    w, p, n = signed_rank_greater(np.zeros(len(x), dtype=np.int64), x, 1)
    return float(w[0]), float(p[0]), int(n[0])


def test_exact_signed_rank_by_hand() -> None:
    # Ranks of |x|: 1, 2, 3, 4; positives hold 2 + 3 + 4 = 9. Of the 16 sign patterns,
    # those with W+ >= 9 are {2,3,4}, {1,2,3,4}: p = 2 / 16.
    w, p, n = _one_group([-1.0, 2.0, 3.0, 4.0])
    assert (w, n) == (9.0, 4)
    assert p == pytest.approx(2 / 16)


def test_zeros_are_dropped() -> None:
    assert _one_group([0.0, 0.0, 1.0])[2] == 1


@pytest.mark.parametrize("n", [5, 9, 17, 25])
def test_exact_matches_scipy(n: int) -> None:
    x = np.random.default_rng(n).normal(0.4, 1.0, n)
    _, p, _ = _one_group(list(x))
    assert p == pytest.approx(wilcoxon(x, alternative="greater", method="exact").pvalue)


@pytest.mark.parametrize("values", [[1, 1, 2, -2, 3, 3, 3, 4, -1], list(range(-5, 40))])
def test_approximation_with_ties_matches_scipy(values: list[float]) -> None:
    x = np.array(values, dtype=float)
    _, p, _ = _one_group(list(x))
    expected = wilcoxon(x, alternative="greater", method="approx", correction=True).pvalue
    assert p == pytest.approx(expected)


def test_groups_are_independent() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1], dtype=np.int64)
    values = np.array([-1.0, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8])
    _, p, n = signed_rank_greater(labels, values, 3)
    assert p[0] == pytest.approx(2 / 16)
    assert p[1] == pytest.approx(1 / 256)
    assert np.isnan(p[2])
    assert list(n) == [4, 8, 0]


def test_benjamini_hochberg_by_hand() -> None:
    # m = 4: p * m / rank = 0.04, 0.04, 0.04, 0.8; running minimum from the top.
    p = np.array([0.01, 0.02, 0.03, 0.8])
    np.testing.assert_allclose(benjamini_hochberg(p), [0.04, 0.04, 0.04, 0.8])
    assert list(rejected(p, 0.05)) == [True, True, True, False]
    assert list(rejected(p, 0.03)) == [False, False, False, False]


def test_nan_is_not_a_test() -> None:
    p = np.array([np.nan, 0.01, 0.04])
    out = benjamini_hochberg(p)
    assert np.isnan(out[0])
    np.testing.assert_allclose(out[1:], [0.02, 0.04])


p_values = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=50)


@given(p_values)
def test_bh_matches_scipy(values: list[float]) -> None:
    p = np.array(values)
    np.testing.assert_allclose(benjamini_hochberg(p), false_discovery_control(p), atol=1e-12)


@given(p_values, st.floats(0.001, 0.5))
def test_bh_is_monotone(values: list[float], q: float) -> None:
    p = np.array(values)
    adjusted = benjamini_hochberg(p)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= -1e-15)  # adjusted values keep the p order
    assert np.all(adjusted >= p - 1e-15)
    rejections = rejected(p, q)
    if rejections.any():  # every p at or below the largest rejected p is rejected
        assert np.all(rejections[p <= p[rejections].max()])
    assert rejected(p, q).sum() <= rejected(p, min(0.99, q * 2)).sum()


def test_robust_sigma_ignores_a_plume() -> None:
    assert robust_sigma(np.array([1.0, 2.0, 3.0, 4.0, 1000.0, np.nan])) == pytest.approx(1.4826)
    assert robust_sigma(np.array([np.nan])) == 0.0


def test_median_z_by_hand() -> None:
    z, p = median_z_greater(np.array([2.0, 0.0, -1.0]), np.array([16, 4, 0]), 4.0)
    # se = 1.2533 x 4 / 4 = 1.2533
    assert z[0] == pytest.approx(2.0 / np.sqrt(np.pi / 2))
    assert p[1] == 0.5
    assert np.isnan(p[2])
    _, certain = median_z_greater(np.array([0.1, -0.1]), np.array([3, 3]), 0.0)
    assert list(certain) == [0.0, 1.0]


def test_binomial_episodes_by_hand() -> None:
    k = np.array([0, 1, 3], dtype=np.int64)
    n = np.array([10, 2, 3], dtype=np.int64)
    p = binomial_greater(k, n, 0.5)
    assert p[0] == 1.0
    assert p[1] == pytest.approx(0.75)  # 1 - P(no success in 2)
    assert p[2] == pytest.approx(0.125)
    assert list(binomial_greater(k, n, 0.0)) == [1.0, 0.0, 0.0]
