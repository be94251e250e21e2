"""The Mann-Whitney U test of the before/after comparison against scipy's asymptotic one: the same
U and the same two-sided p-value (tie and continuity corrections) over samples of every shape."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from hotspots.analysis.mannwhitney import mann_whitney

# Values of every magnitude, signed zeros and subnormals included.
ANY = st.floats(allow_nan=False, allow_infinity=False)
# A few values only, so that most samples hold ties, within and across the two.
FEW = st.sampled_from([-3.5, -1.0, 0.0, 0.25, 1.0, 2.0, 1e-300, 1e300])
# Passes' enhancements as the before/after test sees them.
ENHANCEMENT = st.floats(min_value=-500.0, max_value=500.0, allow_nan=False)
SAMPLE = st.one_of(
    st.lists(ANY, min_size=1, max_size=60),
    st.lists(FEW, min_size=1, max_size=60),
    st.lists(ENHANCEMENT, min_size=1, max_size=60),
    st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=60),
)


def _scipy(x: list[float], y: list[float]) -> tuple[float, float]:
    found = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
    return float(found.statistic), float(found.pvalue)


@given(SAMPLE, SAMPLE)
@example([1.0], [2.0])
@example([5.0] * 7, [5.0] * 3)
@example([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
@example([float(v) for v in range(60)], [float(v) for v in range(100, 160)])
@example([1e-308, 5e-324, -5e-324], [1e308, -1e308, 0.0, -0.0])
def test_u_and_p_are_scipy_s(x: list[float], y: list[float]) -> None:
    u, p = _scipy(x, y)
    found = mann_whitney(np.array(x), np.array(y))
    assert found.u == u
    # The normal tail differs from scipy's in the last bits (erfc here, ndtr there).
    assert found.p_value == pytest.approx(p, rel=1e-12, abs=1e-300)
    assert 0.0 <= found.p_value <= 1.0


@given(SAMPLE, SAMPLE)
def test_the_order_of_the_samples_does_not_change_p(x: list[float], y: list[float]) -> None:
    forward = mann_whitney(np.array(x), np.array(y))
    backward = mann_whitney(np.array(y), np.array(x))
    assert forward.p_value == pytest.approx(backward.p_value, rel=1e-12, abs=1e-300)
    assert forward.u + backward.u == len(x) * len(y)


def test_separated_samples_are_significant_and_equal_ones_are_not() -> None:
    low, high = np.arange(20.0), np.arange(100.0, 120.0)
    assert mann_whitney(low, high).p_value < 1e-6
    assert mann_whitney(low, low).p_value == 1.0
    assert mann_whitney(np.full(5, 2.0), np.full(4, 2.0)).p_value == 1.0


def test_empty_or_nan_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        mann_whitney(np.array([]), np.array([1.0]))
    with pytest.raises(ValueError, match="NaN"):
        mann_whitney(np.array([np.nan]), np.array([1.0]))
