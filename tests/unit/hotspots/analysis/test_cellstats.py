from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from hotspots.analysis.cellstats import bootstrap_median_ci, cell_table, in_stratum, local_clock
from hotspots.analysis.settings import AnalysisSettings, Stratum


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
        reference=1.0, energy=False, settings=AnalysisSettings(floors={"pm25": 10.0}, margin_factor=0.25),
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
    assert table.p_magnitude[0] == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)))
    ranked = cell_table(
        "pm25", "all_day", cell, vehicle, day, start, end, value, enhancement,
        reference=1.0, energy=False,
        settings=AnalysisSettings(floors={"pm25": 10.0}, margin_factor=0.25, magnitude_test="signed_rank"),
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
    settings = AnalysisSettings(
        floors={"pm25": 0.0}, sensor_noise={"pm25": 2.0}, margin_factor=0.25
    )
    table = cell_table(
        "pm25", "all_day", cell, zeros, zeros, enhancement, enhancement, enhancement + 30,
        enhancement, reference=0.0, energy=False, settings=settings,
    )  # fmt: skip
    assert table.share_threshold == pytest.approx(6.25)
    assert table.p_share is not None
    # Cell 1: none of 5 above: p = 1; cell 2: 1 of 3, P(Binomial(3, 0.25) >= 1) = 1 - 0.75^3.
    assert table.p_share.tolist() == pytest.approx([1.0, 1 - 0.75**3])
