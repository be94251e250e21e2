from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binom, false_discovery_control, wilcoxon

from hotspots.analysis.significance import (
    benjamini_hochberg,
    binomial_greater,
    design_effect,
    median_lattice_greater,
    median_z_greater,
    rejected,
    robust_sigma,
    signed_rank_greater,
    within_day_correlation,
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


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=20),
       st.floats(0.001, 0.999))  # fmt: skip
def test_binomial_tail_equals_scipy_on_whole_counts(
    pairs: list[tuple[int, int]], rate: float
) -> None:
    n = np.array([max(a, b) for a, b in pairs], dtype=np.int64)
    k = np.array([min(a, b) for a, b in pairs], dtype=np.int64)
    np.testing.assert_allclose(binomial_greater(k, n, rate), binom.sf(k - 1, n, rate), atol=1e-12)


@given(st.floats(1.0, 50.0), st.floats(0.0, 1.0), st.floats(0.01, 0.99), st.floats(1.0, 3.0))
def test_effective_counts_carry_less_evidence(
    n: float, share: float, rate: float, deff: float
) -> None:
    # The same share of successes among fewer effective passes is never stronger evidence.
    k = np.array([share * n])
    full = binomial_greater(k, np.array([n]), rate)[0]
    fewer = binomial_greater(k / deff, np.array([n / deff]), rate)[0]
    if share > rate:
        assert fewer >= full - 1e-12
    assert 0.0 <= fewer <= 1.0


def test_the_median_against_a_tied_grid_by_hand() -> None:
    # The area: 70 % at 0, 20 % at one step (2.6), 10 % at two steps.
    area = np.sort(np.array([0.0] * 7 + [2.6] * 2 + [5.2]))
    p = median_lattice_greater(np.array([0.0, 2.6, 5.2, 7.8]), np.array([8.0, 8.0, 8.0, 8.0]), area)
    # Median of 8 at >= 2.6 needs 4 of 8 at or above it: P(Binomial(8, 0.3) >= 4).
    assert p[0] == 1.0
    assert p[1] == pytest.approx(binom.sf(3, 8, 0.3))
    assert p[2] == pytest.approx(binom.sf(3, 8, 0.1))
    assert p[3] == 0.0  # beyond anything the area holds
    # Whereas the normal approximation on the collapsed MAD calls one step a certainty.
    assert robust_sigma(area) == 0.0
    assert median_z_greater(np.array([2.6]), np.array([8]), 0.0)[1][0] == 0.0


@given(st.integers(0, 10_000))
def test_the_lattice_median_test_holds_its_level(seed: int) -> None:
    # Cells drawn from the area itself: at most a share alpha of them at p <= alpha.
    rng = np.random.default_rng(seed)
    area = np.sort(np.round(rng.normal(0.0, 0.6, 4000) / 2.6) * 2.6)
    cells = rng.choice(area, size=(400, 8))
    p = median_lattice_greater(np.median(cells, axis=1), np.full(400, 8.0), area)
    assert float(np.mean(p <= 0.05)) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 400)


def _day_groups(effect: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cell = np.repeat(np.arange(150), 12)
    day = np.tile(np.repeat(np.arange(3), 4), 150)
    group = cell * 3 + day
    values = rng.normal(0.0, 1.0, len(cell)) + rng.normal(0.0, effect, 450)[group]
    return cell, group, values


def test_the_within_day_correlation_is_estimated_from_the_data() -> None:
    # Day effect of variance 1 on passes of variance 1: rho = 0.5 (winsorising takes a little).
    cell, group, values = _day_groups(1.0, 3)
    assert within_day_correlation(cell, group, values, 150, 450) == pytest.approx(0.5, abs=0.1)
    cell, group, values = _day_groups(0.0, 3)
    assert within_day_correlation(cell, group, values, 150, 450) < 0.05
    assert within_day_correlation(cell[:2], group[:2], values[:2], 150, 450) == 0.0


@given(st.integers(0, 10_000), st.floats(0.0, 2.0))
def test_the_correlation_is_a_share(seed: int, effect: float) -> None:
    cell, group, values = _day_groups(effect, seed)
    assert 0.0 <= within_day_correlation(cell, group, values + 50.0, 150, 450) <= 1.0


def test_design_effect_by_hand() -> None:
    # Cell 0: 4 passes on one day and 2 on another: m = (16 + 4) / 6; cell 1: one pass a day.
    cell = np.array([0, 0, 0, 0, 0, 0, 1, 1], dtype=np.int64)
    group = np.array([0, 0, 0, 0, 1, 1, 2, 3], dtype=np.int64)
    deff = design_effect(cell, group, 0.3, 2, 4)
    assert deff[0] == pytest.approx(1 + (20 / 6 - 1) * 0.3)
    assert deff[1] == 1.0
    assert design_effect(cell, group, 0.0, 2, 4).tolist() == [1.0, 1.0]
