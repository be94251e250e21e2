from __future__ import annotations

import numpy as np
import pytest

from api.analysis.beforeafter import BeforeAfterError, before_after
from api.analysis.settings import AnalysisSettings


def test_a_treatment_that_worked() -> None:
    rng = np.random.default_rng(4)
    times = np.arange(0.0, 40 * 86400.0, 86400.0)
    e = np.where(times < 20 * 86400, 25.0, 5.0) + rng.normal(0, 3, 40)
    result = before_after(times, e, 20 * 86400.0, AnalysisSettings())
    assert (result.passes_before, result.passes_after) == (20, 20)
    assert result.effect == pytest.approx(result.median_after - result.median_before)
    assert result.interval[0] < -20.0 < result.interval[1]
    assert result.interval[0] <= result.effect <= result.interval[1]
    assert result.p_value < 1e-6


def test_no_change_is_not_significant() -> None:
    rng = np.random.default_rng(7)
    times = np.arange(0.0, 30 * 3600.0, 3600.0)
    result = before_after(times, rng.normal(10, 2, 30), 15 * 3600.0, AnalysisSettings())
    assert result.p_value > 0.05
    assert result.interval[0] < 0 < result.interval[1]


def test_identical_passes_give_p_one() -> None:
    times = np.arange(12.0)
    assert before_after(times, np.ones(12), 6.0, AnalysisSettings()).p_value == 1.0


def test_too_few_passes_on_a_side() -> None:
    times = np.arange(10.0)
    with pytest.raises(BeforeAfterError) as caught:
        before_after(times, np.ones(10), 3.0, AnalysisSettings())
    assert (caught.value.before, caught.value.after, caught.value.needed) == (3, 7, 5)
