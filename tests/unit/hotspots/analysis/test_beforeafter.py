from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import h3
import numpy as np
import pytest

from hotspots.analysis.beforeafter import BeforeAfterError, before_after, before_after_cells
from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.synthetic import SyntheticWorld, generate


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


def test_a_cleaned_up_cell_in_a_drifting_area() -> None:
    # A null area; one cell carries +20 ug/m3 until the treatment on day 6, nothing after.
    table = generate(SyntheticWorld(days=12, trips_per_day=2, seed=9))
    cell = int(np.bincount(np.unique(table.cell, return_inverse=True)[1]).argmax())
    target = int(np.unique(table.cell)[cell])
    treatment = datetime(2026, 3, 8, tzinfo=UTC)
    before = (table.cell == target) & (table.start < treatment.timestamp())
    values = table.values["pm25"] + np.where(before, 20.0, 0.0)
    treated = replace(table, values={"pm25": values})
    result = before_after_cells(
        treated, "pm25", [h3.int_to_str(target)], treatment, AnalysisSettings()
    )
    assert result.passes_before > 5
    assert result.passes_after > 5
    assert abs(result.effect + 20.0) < 5.0
    assert result.interval[1] < 0
    assert result.p_value < 0.001
    with pytest.raises(BeforeAfterError):
        before_after_cells(treated, "no2", [h3.int_to_str(target)], treatment, AnalysisSettings())
