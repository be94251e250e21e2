from __future__ import annotations

from dataclasses import replace

import numpy as np

from hotspots.analysis.cellstats import CellTable
from hotspots.analysis.detect import detect
from hotspots.analysis.labels import Evidence, Label, Window, eligible, label_masks, reasons
from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.synthetic import SHUANGJING, Source, SyntheticWorld, generate, offset


def _table(**columns: list[float]) -> CellTable:
    n = len(columns["passes"])
    base: dict[str, np.ndarray] = {
        "cell": np.arange(n, dtype=np.int64),
        "passes": np.array(columns["passes"], dtype=np.int64),
        "days": np.array(columns.get("days", [10] * n), dtype=np.int64),
        "vehicles": np.ones(n, dtype=np.int64),
        "median_enhancement": np.array(columns.get("excess", [20.0] * n)) + 5,
        "median_excess": np.array(columns.get("excess", [20.0] * n)),
        "level": np.full(n, 50.0),
        "persistence": np.array(columns["persistence"]),
        "spikes": np.array(columns.get("spikes", [0] * n), dtype=np.int64),
        "first": np.zeros(n),
        "last": np.ones(n),
        "p_magnitude": np.full(n, 0.001),
        "p_episodic": np.full(n, 0.001),
    }
    return CellTable(
        pollutant="pm25", stratum="all_day", level_energy=None, delta=10.0, reference=5.0, margin=2.5, sigma=3.0, spike_rate=0.01,
        **base,  # type: ignore[arg-type]
    )  # fmt: skip


def _tests(n: int, magnitude: list[float], gi: list[float], hl: list[float]) -> Evidence:
    return Evidence(
        magnitude_q=np.array(magnitude),
        gi_z=np.full(n, 3.0),
        gi_q=np.array(gi),
        moran_i=np.full(n, -0.5),
        high_low_q=np.array(hl),
        episodic_q=np.full(n, 0.01),
    )


def test_labels_by_hand() -> None:
    nan = float("nan")
    table = _table(
        passes=[25, 25, 25, 10, 10, 25, 7, 12],
        days=[10, 10, 10, 5, 5, 10, 7, 3],
        persistence=[0.8, 0.8, 0.4, 0.9, 0.1, 0.1, 0.9, 0.9],
        spikes=[0, 0, 0, 0, 4, 2, 0, 0],
    )
    tests = _tests(
        8,
        magnitude=[0.01, 0.01, 0.01, 0.01, 0.5, 0.5, nan, nan],
        gi=[0.01, 0.5, 0.01, nan, nan, nan, nan, nan],
        hl=[0.5, 0.02, 0.5, nan, nan, nan, nan, nan],
    )
    masks = label_masks(table, tests, AnalysisSettings())
    got = [masks.label(i) for i in range(8)]
    assert got == [
        Label.PERSISTENT,  # confirmed, significant, f 0.8, Gi* cluster
        Label.PERSISTENT,  # ... with a high-low outlier instead of a cluster
        Label.CANDIDATE,  # f 0.4 < 0.5
        Label.CANDIDATE,  # 10 passes: not confirmed
        Label.EPISODIC,  # not significant, f 0.1, four spikes
        None,  # only two spikes
        None,  # 7 passes: not eligible
        None,  # 3 days: not eligible
    ]


def test_reasons_name_the_conditions() -> None:
    table = _table(passes=[25], persistence=[0.8])
    tests = _tests(1, magnitude=[0.01], gi=[0.01], hl=[0.5])
    codes = [r.code for r in reasons(table, tests, 0, Label.PERSISTENT, AnalysisSettings())]
    assert codes == ["passes", "magnitude", "persistence", "gi_star"]
    episodic = _table(passes=[25], persistence=[0.1], spikes=[5])
    text = reasons(episodic, tests, 0, Label.EPISODIC, AnalysisSettings())[-1].detail
    assert "5 passes above 3 x delta = 30" in text


def test_episodes_at_the_areas_own_rate_are_no_label() -> None:
    table = _table(passes=[25], persistence=[0.1], spikes=[5])
    tests = _tests(1, magnitude=[0.5], gi=[float("nan")], hl=[float("nan")])
    assert label_masks(table, tests, AnalysisSettings()).label(0) is Label.EPISODIC
    ordinary = replace(tests, episodic_q=np.array([0.3]))
    assert label_masks(table, ordinary, AnalysisSettings()).label(0) is None


def test_a_time_stratum_takes_cells_from_fewer_passes() -> None:
    table = _table(passes=[6, 5, 8], days=[4, 4, 4], persistence=[0.9, 0.9, 0.9])
    settings = AnalysisSettings()
    assert eligible(table, settings).tolist() == [False, False, True]  # all day: 8 passes
    meals = replace(table, stratum="meals")
    assert eligible(meals, settings).tolist() == [True, False, True]  # a time stratum: 6


def test_the_share_test_alone_makes_a_candidate() -> None:
    table = replace(
        _table(passes=[25, 25], persistence=[0.4, 0.4]),
        p_share=np.array([0.001, 0.3]),
        share_threshold=12.0,
    )
    tests = replace(
        _tests(2, magnitude=[0.5, 0.5], gi=[0.5, 0.5], hl=[0.5, 0.5]),
        share_q=np.array([0.01, 0.5]),
    )
    masks = label_masks(table, tests, AnalysisSettings())
    assert masks.candidate.tolist() == [True, False]
    codes = [r.code for r in reasons(table, tests, 0, Label.CANDIDATE, AnalysisSettings())]
    assert codes == ["passes", "share"]


def _days(table: CellTable, on: list[int], off: list[int], off_excess: list[float]) -> CellTable:
    return replace(
        table,
        days_on=np.array(on, dtype=np.int64),
        days_off=np.array(off, dtype=np.int64),
        off_excess=np.array(off_excess),
        on_excess=np.full(len(on), 20.0),
        q_off=np.full(len(on), 0.001),
        p_days=np.full(len(on), 0.001),
        day_rate=0.05,
    )


def test_a_place_on_some_days_is_episodic_however_strong() -> None:
    # Confirmed, significant, f 0.6, Gi* cluster: persistent, were it not off on some days.
    table = _days(
        _table(passes=[25, 25, 25, 25], persistence=[0.6, 0.6, 0.6, 0.6]),
        on=[6, 6, 1, 6],
        off=[4, 0, 9, 4],
        off_excess=[0.5, float("nan"), 0.5, 12.0],
    )
    tests = replace(
        _tests(4, magnitude=[0.01] * 4, gi=[0.01] * 4, hl=[0.5] * 4),
        days_q=np.array([0.01, 0.01, 0.01, 0.01]),
    )
    masks = label_masks(table, tests, AnalysisSettings())
    assert [masks.label(i) for i in range(4)] == [
        Label.EPISODIC,  # on 6 days, off 4 with their passes ordinary
        Label.PERSISTENT,  # never off
        Label.PERSISTENT,  # on only one day
        Label.PERSISTENT,  # its 'off' days are only 8 below its on days: a steady source
    ]
    assert masks.intermittent is not None
    assert masks.intermittent.tolist() == [True, False, False, False]
    detail = {
        r.code: r.detail for r in reasons(table, tests, 0, Label.EPISODIC, AnalysisSettings())
    }
    assert "episode_days" in detail
    assert detail["episode_days"].startswith("on 6 of 10 days")
    assert "episodes" not in detail  # no spikes behind this one


def _window(stratum: list[int]) -> Window:
    n = len(stratum)
    return Window(
        stratum=np.array(stratum, dtype=np.int64),
        inside=np.full(n, 12.0),
        outside=np.full(n, 0.3),
        passes_inside=np.full(n, 9, dtype=np.int64),
        passes_outside=np.full(n, 30, dtype=np.int64),
        p=np.full(n, 1e-5),
    )


def test_a_place_on_at_lunch_only_is_episodic_with_its_window() -> None:
    table = _table(passes=[25, 25, 25], persistence=[0.3, 0.3, 0.3])
    tests = replace(
        _tests(3, magnitude=[0.01, 0.01, 0.5], gi=[0.5] * 3, hl=[0.5] * 3),
        window=_window([2, -1, 2]),  # settings.strata[2] is lunch
    )
    masks = label_masks(table, tests, AnalysisSettings())
    # Row 2 has the window but nothing significant in this stratum: no label from it here.
    assert [masks.label(i) for i in range(3)] == [Label.EPISODIC, Label.CANDIDATE, None]
    codes = [r.code for r in reasons(table, tests, 0, Label.EPISODIC, AnalysisSettings())]
    assert codes == ["passes", "episode_window"]
    text = reasons(table, tests, 0, Label.EPISODIC, AnalysisSettings())[-1].detail
    assert "lunch window (10:30-13:30 local)" in text


def test_persistent_needs_passes_on_several_days() -> None:
    table = _table(passes=[25, 25], days=[3, 4], persistence=[0.8, 0.8])
    tests = _tests(2, magnitude=[0.01, 0.01], gi=[0.01, 0.01], hl=[0.5, 0.5])
    masks = label_masks(table, tests, AnalysisSettings())
    assert [masks.label(i) for i in range(2)] == [Label.CANDIDATE, Label.PERSISTENT]


def test_a_window_found_from_the_data_is_a_reason_with_its_hours() -> None:
    table = _table(passes=[25, 25, 25], persistence=[0.3, 0.3, 0.3])
    window = replace(
        _window([-1, -1, -1]),
        start=np.array([13 * 60, -1, 13 * 60], dtype=np.int64),
        end=np.array([17 * 60, -1, 17 * 60], dtype=np.int64),
    )
    tests = replace(
        _tests(3, magnitude=[0.01, 0.01, 0.5], gi=[0.5] * 3, hl=[0.5] * 3), window=window
    )
    masks = label_masks(table, tests, AnalysisSettings())
    assert [masks.label(i) for i in range(3)] == [Label.EPISODIC, Label.CANDIDATE, None]
    found = reasons(table, tests, 0, Label.EPISODIC, AnalysisSettings())
    assert [r.code for r in found] == ["passes", "episode_window"]
    assert "scanned window (13:00-17:00 local)" in found[-1].detail
    assert "Bonferroni over the windows tried" in found[-1].detail


def test_every_reason_says_itself_in_chinese_and_english() -> None:
    lat, lon = offset(SHUANGJING, -125.0, 125.0)
    table = generate(
        SyntheticWorld(
            resolution=10,
            vehicles=2,
            days=8,
            trips_per_day=2,
            pollutants=("pm25",),
            sources=(Source(lat, lon, "pm25", 40.0, 40.0),),
            seed=4,
        )
    )
    found = detect(table, AnalysisSettings(pass_lag=False))
    assert found
    for spot in found:
        for reason in spot.reasons:
            assert set(reason.summary) == {"zh", "en"}, reason.code
            assert all(text.strip() for text in reason.summary.values())
