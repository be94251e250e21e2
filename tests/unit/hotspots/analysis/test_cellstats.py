from __future__ import annotations

import math
import statistics
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from hotspots.analysis.cellstats import (
    CellTable,
    bootstrap_median_ci,
    cell_table,
    in_stratum,
    local_clock,
)
from hotspots.analysis.settings import AnalysisSettings, Stratum

# The by-hand figures of the plain method: no register grid, passes counted one for one, no
# cell left without its strongest day.
PLAIN = AnalysisSettings(quantum={}, design_effect=False, few_days=1)


def test_local_clock_in_beijing() -> None:
    t = np.array([datetime(2026, 3, 2, 15, 59, tzinfo=UTC).timestamp(),
                  datetime(2026, 3, 2, 16, 1, tzinfo=UTC).timestamp()])  # fmt: skip
    day, minute = local_clock(t, "Asia/Shanghai")
    assert day[1] == day[0] + 1  # 23:59 and 00:01 local
    assert list(minute) == [23 * 60 + 59, 1]


def test_local_clock_follows_daylight_saving() -> None:
    winter = datetime(2026, 1, 15, 12, 0, tzinfo=UTC).timestamp()
    summer = datetime(2026, 7, 15, 12, 0, tzinfo=UTC).timestamp()
    _, minute = local_clock(np.array([winter, summer]), "Europe/Berlin")
    assert list(minute) == [13 * 60, 14 * 60]


def test_night_wraps_midnight() -> None:
    night = Stratum("night", 22 * 60, 6 * 60)
    minute = np.array([21 * 60 + 59, 22 * 60, 0, 5 * 60 + 59, 6 * 60])
    assert list(in_stratum(minute, night)) == [False, True, True, True, False]


def test_a_stratum_of_two_windows() -> None:
    meals = Stratum("meals", 10 * 60 + 30, 13 * 60 + 30, more=((16 * 60 + 30, 20 * 60),))
    minute = np.array([10 * 60 + 29, 10 * 60 + 30, 13 * 60 + 30, 16 * 60 + 30, 19 * 60 + 59, 1200])
    assert list(in_stratum(minute, meals)) == [False, True, False, True, True, False]


def test_cell_statistics_by_hand() -> None:
    # Cell 7: five passes on three days by two vehicles; cell 9: one pass.
    cell = np.array([7, 7, 7, 7, 7, 9], dtype=np.int64)
    vehicle = np.array([0, 0, 1, 1, 1, 0], dtype=np.int64)
    day = np.array([1, 1, 2, 3, 3, 1], dtype=np.int64)
    start = np.array([100.0, 200, 300, 400, 500, 600])
    end = start + 5
    enhancement = np.array([2.0, 14.0, 40.0, 12.0, 11.0, -3.0])
    value = enhancement + 30
    table = cell_table(
        "pm25", "all_day", cell, vehicle, day, start, end, value, enhancement,
        reference=1.0, energy=False, settings=replace(PLAIN, floors={"pm25": 10.0}, margin_factor=0.25),
    )  # fmt: skip
    assert list(table.cell) == [7, 9]
    assert list(table.passes) == [5, 1]
    assert list(table.days) == [3, 1]
    assert list(table.vehicles) == [2, 1]
    assert table.median_enhancement[0] == 12.0
    assert table.median_excess[0] == 11.0
    assert table.level[0] == 42.0
    # excess 1, 13, 39, 11, 10 against delta 10: three above; 39 > 3 x 10 once.
    assert table.persistence[0] == pytest.approx(0.6)
    assert table.spikes[0] == 1
    assert table.spike_rate == pytest.approx(1 / 6)  # one spike among all six passes
    assert table.p_episodic[0] == pytest.approx(1 - (5 / 6) ** 5)
    assert (table.first[0], table.last[0]) == (100.0, 505.0)
    # median_z: all six excesses 1, 13, 39, 11, 10, -4: median 10.5, absolute deviations
    # 9.5, 2.5, 28.5, 0.5, 0.5, 14.5: MAD 6, sigma 1.4826 x 6; margin 0.25 x 10.
    assert table.margin == 2.5
    assert table.sigma == pytest.approx(1.4826 * 6)
    z = (11 - 2.5) / (math.sqrt(math.pi / 2) * 1.4826 * 6 / math.sqrt(5))
    p_median = 0.5 * math.erfc(z / math.sqrt(2))
    assert table.p_median is not None
    assert table.p_median[0] == pytest.approx(p_median)
    # The mean clipped at 3 sigma around the area's median 10.5: 39 counts as 37.19; against
    # the area's clipped mean + margin, with the area's clipped spread.
    clipped = [1.0, 13.0, 10.5 + 3 * 1.4826 * 6, 11.0, 10.0, -4.0]
    centre, spread = statistics.mean(clipped), statistics.stdev(clipped)
    z_mean = (statistics.mean(clipped[:5]) - centre - 2.5) / (spread / math.sqrt(5))
    p_mean = 0.5 * math.erfc(z_mean / math.sqrt(2))
    assert table.p_mean is not None
    assert table.p_mean[0] == pytest.approx(p_mean)
    assert table.p_magnitude[0] == pytest.approx(min(1.0, 2 * min(p_median, p_mean)))
    median_only = cell_table(
        "pm25", "all_day", cell, vehicle, day, start, end, value, enhancement,
        reference=1.0, energy=False,
        settings=replace(PLAIN, floors={"pm25": 10.0}, margin_factor=0.25, mean_test=False),
    )  # fmt: skip
    assert median_only.p_magnitude[0] == pytest.approx(p_median)
    assert median_only.p_mean is None
    ranked = cell_table(
        "pm25", "all_day", cell, vehicle, day, start, end, value, enhancement,
        reference=1.0, energy=False,
        settings=replace(
            PLAIN, floors={"pm25": 10.0}, margin_factor=0.25, magnitude_test="signed_rank",
            mean_test=False,
        ),
    )  # fmt: skip
    # Against the margin: 1 - 2.5 is the only negative, with the smallest |.|: p = 2 / 32.
    assert ranked.p_magnitude[0] == pytest.approx(2 / 32)
    assert table.level_energy is None


def test_noise_cells_get_an_energy_mean() -> None:
    cell = np.array([1, 1], dtype=np.int64)
    value = np.array([60.0, 70.0])
    table = cell_table(
        "noise", "all_day", cell, np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64),
        np.zeros(2), np.zeros(2), value, value - 55, reference=0.0, energy=True,
        settings=AnalysisSettings(),
    )  # fmt: skip
    assert table.level_energy is not None
    assert table.level_energy[0] == pytest.approx(67.403626894942)


def test_bootstrap_interval_is_reproducible_and_covers_the_median() -> None:
    values = np.random.default_rng(5).normal(10, 2, 30)
    a = bootstrap_median_ci(values, 500, 0.95, np.random.default_rng(1))
    b = bootstrap_median_ci(values, 500, 0.95, np.random.default_rng(1))
    assert a == b
    assert a[0] < np.median(values) < a[1]
    assert bootstrap_median_ci(np.full(5, 3.0), 100, 0.9, np.random.default_rng(0)) == (3.0, 3.0)


def test_a_shared_index_leaves_out_cells_without_passes() -> None:
    cells = np.array([3, 5, 8], dtype=np.int64)
    label = np.array([0, 0, 2], dtype=np.int64)  # no pass in cell 5
    table = cell_table(
        "noise", "night", cells[label], np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64),
        np.zeros(3), np.zeros(3), np.array([50.0, 52, 60]), np.array([1.0, 3, 9]),
        reference=0.0, energy=True, settings=AnalysisSettings(), index=(cells, label),
    )  # fmt: skip
    assert list(table.cell) == [3, 8]
    assert list(table.passes) == [2, 1]
    assert table.level_energy is not None
    assert len(table.level_energy) == 2
    assert table.median_enhancement[0] == 2.0


def test_share_test_by_hand() -> None:
    # Eight passes with excess 0..7 (reference 0): the area's 75th percentile is 5.25, the
    # margin 0.25 x delta = 0.25 x (2 x 2) = 1, so a pass counts above 6.25: only the 7.
    cell = np.array([1, 1, 1, 1, 1, 2, 2, 2], dtype=np.int64)
    enhancement = np.arange(8, dtype=np.float64)
    zeros = np.zeros(8, dtype=np.int64)
    settings = replace(PLAIN, floors={"pm25": 0.0}, sensor_noise={"pm25": 2.0}, margin_factor=0.25)
    table = cell_table(
        "pm25", "all_day", cell, zeros, zeros, enhancement, enhancement, enhancement + 30,
        enhancement, reference=0.0, energy=False, settings=settings,
    )  # fmt: skip
    assert table.share_threshold == pytest.approx(6.25)
    assert table.p_share is not None
    # Cell 1: none of 5 above: p = 1; cell 2: 1 of 3, P(Binomial(3, 0.25) >= 1) = 1 - 0.75^3.
    assert table.p_share.tolist() == pytest.approx([1.0, 1 - 0.75**3])


def _one_cell(days: list[int], enhancement: list[float], settings: AnalysisSettings) -> CellTable:
    """Cell 1 with the given passes, beside 60 ordinary passes in cell 2 on ten days."""
    ordinary = np.tile([-1.0, 0.0, 1.0], 20)
    e = np.concatenate((np.array(enhancement), ordinary))
    cell = np.concatenate((np.ones(len(enhancement)), np.full(60, 2))).astype(np.int64)
    day = np.concatenate((np.array(days), np.arange(60) % 10)).astype(np.int64)
    zeros = np.zeros(len(e), dtype=np.int64)
    return cell_table(
        "pm25", "all_day", cell, zeros, day, np.zeros(len(e)), np.zeros(len(e)), e + 30, e,
        reference=0.0, energy=False, settings=settings,
    )  # fmt: skip


def test_days_on_and_off_by_hand() -> None:
    settings = replace(PLAIN, sensor_noise={"pm25": 2.0}, floors={"pm25": 0.0})  # delta 4
    # Day 0: median 10 (on); day 1: median 0 (off, below 2); day 2: median 3 (neither).
    table = _one_cell([0, 0, 0, 1, 1, 1, 2, 2], [9, 10, 11, -1, 0, 1, 3, 3], settings)
    assert table.days_on is not None
    assert table.days_off is not None
    assert table.off_excess is not None
    assert table.p_days is not None
    assert (table.days_on[0], table.days_off[0], int(table.days[0])) == (1, 1, 3)
    assert table.off_excess[0] == 0.0
    # The ordinary cell's ten days are all off: one on group of 13 in the stratum.
    assert table.day_rate == pytest.approx(1 / 13)
    assert table.p_days[0] == pytest.approx(1 - (12 / 13) ** 3)


def test_passes_of_one_day_count_less_when_days_are_alike() -> None:
    rng = np.random.default_rng(4)
    n_cells, per_day, days = 80, 6, 3
    cell = np.repeat(np.arange(n_cells), per_day * days).astype(np.int64)
    day = np.tile(np.repeat(np.arange(days), per_day), n_cells).astype(np.int64)
    shared = rng.normal(0.0, 2.0, n_cells * days)[cell * days + day]
    e = rng.normal(0.0, 2.0, len(cell)) + shared
    zeros = np.zeros(len(e), dtype=np.int64)

    def table(settings: AnalysisSettings) -> CellTable:
        return cell_table(
            "pm25", "all_day", cell, zeros, day, np.zeros(len(e)), np.zeros(len(e)), e + 30,
            e, reference=0.0, energy=False, settings=settings,
        )  # fmt: skip

    counted = table(replace(PLAIN, design_effect=True))
    plain = table(PLAIN)
    assert counted.rho == pytest.approx(0.5, abs=0.15)
    assert counted.deff is not None
    assert counted.deff == pytest.approx(1 + 5 * counted.rho)  # six passes a day, same days
    # Fewer effective passes: weaker evidence wherever the median is above the margin.
    above = plain.median_excess > plain.margin
    assert np.all(counted.p_magnitude[above] >= plain.p_magnitude[above])
    assert float(np.mean(counted.p_magnitude <= 0.01)) < float(np.mean(plain.p_magnitude <= 0.01))


def test_one_strong_day_does_not_make_a_place_seen_on_few_days() -> None:
    settings = replace(PLAIN, sensor_noise={"pm25": 2.0}, floors={"pm25": 0.0})
    # Six passes far above on day 0, two ordinary ones on day 1.
    passes = ([0] * 6 + [1] * 2, [20.0] * 6 + [0.0, 0.5])
    guarded = _one_cell(*passes, replace(settings, few_days=4))
    unguarded = _one_cell(*passes, settings)
    assert unguarded.p_magnitude[0] < 1e-6
    assert guarded.p_magnitude[0] > 0.1  # day 1 alone is ordinary
    assert guarded.p_share is not None
    assert guarded.p_share[0] > 0.1
    # Seen high on both days, the place stands without either.
    steady = _one_cell([0] * 4 + [1] * 4, [20.0] * 8, replace(settings, few_days=4))
    assert steady.p_magnitude[0] < 1e-3


def test_a_median_one_register_step_up_is_no_finding() -> None:
    # SO2 on whole ppb (2.62 ug/m3): the area ties at 0 and one step; the MAD is 0.
    step = 64.07 / 24.465
    settings = replace(PLAIN, quantum={"so2": step})
    rng = np.random.default_rng(2)
    n_cells = 300
    cell = np.repeat(np.arange(n_cells), 9).astype(np.int64)
    e = np.round(rng.normal(0.0, 1.6, len(cell)) / step) * step
    zeros = np.zeros(len(e), dtype=np.int64)
    day = np.tile(np.arange(9), n_cells).astype(np.int64)
    args = (cell, zeros, day, np.zeros(len(e)), np.zeros(len(e)), e + 10, e)
    on_grid = cell_table("so2", "all_day", *args, reference=0.0, energy=False, settings=settings)
    blind = cell_table(
        "so2", "all_day", *args, reference=0.0, energy=False, settings=replace(PLAIN, quantum={})
    )
    one_step = np.isclose(on_grid.median_excess, step)
    assert one_step.any()
    assert on_grid.delta == pytest.approx(step)
    assert np.all(on_grid.p_magnitude[one_step] > 0.001)
    assert np.all(blind.p_magnitude[one_step] < 1e-4)


def _on_off(spread: float, seed: int) -> CellTable:
    """Cell 1: a source of 10 (delta 4) with passes that spread by `spread` around it, on six
    days of two passes and off on two days of two passes each; beside ordinary cells."""
    rng = np.random.default_rng(seed)
    source = 10.0 + spread * np.tile([-1.0, 1.0], 6)  # each day's median is 10: on
    off = np.array([-0.5, 0.5, -0.5, 0.5])
    ordinary = rng.normal(0.0, 2.0, 400)
    e = np.concatenate((source, off, ordinary))
    cell = np.concatenate((np.ones(16), np.arange(400) % 40 + 2)).astype(np.int64)
    day = np.concatenate((np.repeat(np.arange(6), 2), [6, 6, 7, 7], np.arange(400) % 8))
    zeros = np.zeros(len(e), dtype=np.int64)
    settings = replace(PLAIN, sensor_noise={"pm25": 2.0}, floors={"pm25": 0.0})
    return cell_table(
        "pm25", "all_day", cell, zeros, day.astype(np.int64), np.zeros(len(e)),
        np.zeros(len(e)), e + 30, e, reference=0.0, energy=False, settings=settings,
    )  # fmt: skip


def test_two_sparse_off_days_make_a_pattern_beyond_the_cells_own_spread() -> None:
    # Two off days of two passes each: fewer passes than a time stratum needs, but two days.
    tight = _on_off(2.0, 1)
    assert tight.q_off is not None
    assert tight.q_off[0] <= 0.05
    # The same lull at a cell whose on-day passes spread as widely as the dip: no pattern.
    wide = _on_off(8.0, 1)
    assert wide.q_off is not None
    assert not wide.q_off[0] <= 0.05


@hypothesis_settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([8, 20, 50]), st.floats(3.0, 6.0))
def test_a_steady_cell_with_many_passes_a_day_has_no_off_days(
    seed: int, per_day: int, level: float
) -> None:
    # A source at about delta on every day: its day medians fall on either side of the on/off
    # thresholds by chance. Picked by their own medians, on and off days always differ; only
    # day medians that vary beyond their noise make a pattern.
    rng = np.random.default_rng(seed)
    days = 12
    source = level + rng.normal(0.0, 2.0, days * per_day)
    ordinary = rng.normal(0.0, 2.0, 600)
    e = np.concatenate((source, ordinary))
    cell = np.concatenate((np.ones(len(source)), np.arange(600) % 60 + 2)).astype(np.int64)
    day = np.concatenate((np.repeat(np.arange(days), per_day), np.arange(600) % days))
    zeros = np.zeros(len(e), dtype=np.int64)
    plain = replace(PLAIN, sensor_noise={"pm25": 2.0}, floors={"pm25": 0.0})  # delta 4
    table = cell_table(
        "pm25", "all_day", cell, zeros, day.astype(np.int64), np.zeros(len(e)),
        np.zeros(len(e)), e + 30, e, reference=0.0, energy=False, settings=plain,
    )  # fmt: skip
    assert table.q_off is not None
    assert not table.q_off[0] <= 0.01


def test_days_that_alternate_on_and_off_are_a_pattern() -> None:
    rng = np.random.default_rng(3)
    days, per_day = 12, 20
    on = np.repeat(np.arange(days) % 2 == 0, per_day)
    source = np.where(on, 12.0, 0.0) + rng.normal(0.0, 2.0, days * per_day)
    ordinary = rng.normal(0.0, 2.0, 600)
    e = np.concatenate((source, ordinary))
    cell = np.concatenate((np.ones(len(source)), np.arange(600) % 60 + 2)).astype(np.int64)
    day = np.concatenate((np.repeat(np.arange(days), per_day), np.arange(600) % days))
    zeros = np.zeros(len(e), dtype=np.int64)
    plain = replace(PLAIN, sensor_noise={"pm25": 2.0}, floors={"pm25": 0.0})
    table = cell_table(
        "pm25", "all_day", cell, zeros, day.astype(np.int64), np.zeros(len(e)),
        np.zeros(len(e)), e + 30, e, reference=0.0, energy=False, settings=plain,
    )  # fmt: skip
    assert table.q_off is not None
    assert table.q_off[0] <= 0.001


def _mean_p_table(excess: np.ndarray, settings: AnalysisSettings) -> np.ndarray:
    """p_mean of cell 1 (the first 10 passes) beside 60 ordinary passes in cell 2."""
    n = len(excess)
    cell = np.array([1] * 10 + [2] * (n - 10), dtype=np.int64)
    day = np.arange(n, dtype=np.int64) % 10
    start = np.arange(n, dtype=np.float64) * 60
    table = cell_table(
        "pm25", "all_day", cell, np.zeros(n, dtype=np.int64), day, start, start + 5,
        excess + 30, excess, reference=0.0, energy=False, settings=settings,
    )  # fmt: skip
    assert table.p_mean is not None
    return table.p_mean


excesses = st.lists(st.floats(-20.0, 20.0), min_size=70, max_size=70).map(np.array)


@given(excesses, st.floats(-50.0, 50.0))
def test_the_clipped_mean_test_is_a_probability_and_ignores_a_common_shift(
    excess: np.ndarray, shift: float
) -> None:
    settings = replace(PLAIN, floors={"pm25": 1.0}, margin_factor=0.0)
    p = _mean_p_table(excess, settings)
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(_mean_p_table(excess + shift, settings), p, atol=1e-9, rtol=1e-6)


@given(st.integers(0, 2**31 - 1), st.floats(1e3, 1e9))
def test_one_plume_of_any_height_counts_as_the_clip(seed: int, height: float) -> None:
    # One pass of the cell far above everything: beyond the clip its height does not matter,
    # so no single plume makes a cell.
    rng = np.random.default_rng(seed)
    excess = rng.normal(0.0, 5.0, 70)
    settings = replace(PLAIN, floors={"pm25": 1.0}, margin_factor=0.0)
    low = excess.copy()
    low[0] = 1e3
    high = excess.copy()
    high[0] = height
    np.testing.assert_allclose(_mean_p_table(low, settings), _mean_p_table(high, settings))


@given(st.integers(0, 2**31 - 1))
def test_a_cell_raised_by_four_sigma_is_found_by_the_clipped_mean(seed: int) -> None:
    rng = np.random.default_rng(seed)
    excess = rng.normal(0.0, 5.0, 70)
    excess[:10] += 20.0
    settings = replace(PLAIN, floors={"pm25": 1.0}, margin_factor=0.0)
    assert _mean_p_table(excess, settings)[0] < 1e-3
