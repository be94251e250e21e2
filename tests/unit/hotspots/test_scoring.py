"""The evaluation's scoring rules on small hand-checked cases (hotspots/scoring.py)."""

from __future__ import annotations

import h3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotspots.analysis.passes import PassTable
from hotspots.analysis.settings import AnalysisSettings
from hotspots.scoring import (
    Counts,
    Detection,
    Match,
    TrueSource,
    cell_means,
    distance_m,
    first_detection,
    gi_baseline,
    match,
    match_radius,
    merge,
    threshold_baseline,
)

LAT, LON = 39.893, 116.462
M_PER_DEG_LAT = 111_195.0  # great circle, mean earth radius


def north(metres: float) -> float:
    return LAT + metres / M_PER_DEG_LAT


def source(pollutant: str = "pm25", lat: float = LAT, name: str = "s") -> TrueSource:
    return TrueSource(name, "dust", pollutant, lat, LON, 5.0)


def test_distance_of_a_thousandth_degree_of_latitude() -> None:
    assert distance_m(LAT, LON, LAT + 0.001, LON) == pytest.approx(111.2, abs=0.1)
    assert distance_m(LAT, LON, LAT, LON) == 0.0


def test_slow_channels_get_the_wider_radius() -> None:
    assert match_radius("pm25") == 75.0
    assert match_radius("noise") == 75.0
    assert match_radius("no2") == 100.0
    assert match_radius("co") == 100.0


def test_match_is_one_to_one_nearest_first_and_within_radius() -> None:
    truth = [source(name="a"), source(lat=north(500), name="b")]
    found = [
        Detection("pm25", north(30), LON),  # 30 m from a
        Detection("pm25", north(10), LON),  # 10 m from a: taken first
        Detection("pm25", north(580), LON),  # 80 m from b: outside 75 m
        Detection("no2", LAT, LON),  # another pollutant: never matches a pm25 source
    ]
    m = match(found, truth)
    assert [(i, j) for i, j, _ in m.matched] == [(1, 0)]
    assert m.matched[0][2] == pytest.approx(10.0, abs=0.1)
    assert m.true_positives == 1
    assert m.false_positives == 3
    assert m.false_negatives == 1


def test_no2_matches_at_90_m_pm25_does_not() -> None:
    assert match([Detection("no2", north(90), LON)], [source("no2")]).true_positives == 1
    assert match([Detection("pm25", north(90), LON)], [source("pm25")]).true_positives == 0


def test_merge_keeps_the_strongest_of_one_place_per_pollutant() -> None:
    found = [
        Detection("pm25", LAT, LON, 1.0),
        Detection("pm25", north(40), LON, 3.0),  # same place, stronger: kept
        Detection("pm25", north(200), LON, 2.0),  # another place
        Detection("no2", LAT, LON, 0.5),  # another pollutant at the same place
    ]
    kept = merge(found, 75.0)
    assert [(d.pollutant, d.strength) for d in kept] == [("pm25", 3.0), ("pm25", 2.0), ("no2", 0.5)]


def test_counts_sum_runs_before_dividing() -> None:
    c = Counts()
    c.add(Match(((0, 0, 10.0),), false_positives=0, false_negatives=0))
    c.add(Match(((0, 0, 30.0), (1, 1, 50.0)), false_positives=2, false_negatives=2))
    assert (c.tp, c.fp, c.fn) == (3, 2, 2)
    assert c.precision == pytest.approx(0.6)
    assert c.recall == pytest.approx(0.6)
    assert c.f1 == pytest.approx(0.6)
    assert c.median_error_m == 30.0


def test_counts_without_detections_have_no_precision() -> None:
    c = Counts(tp=0, fp=0, fn=4)
    assert c.precision is None
    assert c.recall == 0.0
    assert c.f1 is None
    assert Counts(tp=0, fp=3, fn=4).f1 == 0.0


def test_first_detection_is_the_smallest_pass_count_that_matched() -> None:
    assert first_detection([(20, True), (8, False), (12, True), (30, True)]) == 12
    assert first_detection([(2, False), (30, False)]) is None


def _table(cells: list[int], values: list[float]) -> PassTable:
    n = len(cells)
    return PassTable(
        vehicles=("car",),
        vehicle=np.zeros(n, dtype=np.int64),
        cell=np.array(cells, dtype=np.int64),
        start=np.arange(n, dtype=np.float64) * 60.0,
        end=np.arange(n, dtype=np.float64) * 60.0 + 10.0,
        values={"pm25": np.array(values, dtype=np.float64)},
        counts={"pm25": np.ones(n, dtype=np.int64)},
    )


def _cell(metres_north: float, resolution: int = 11) -> int:
    return int(h3.str_to_int(h3.latlng_to_cell(north(metres_north), LON, resolution)))


def test_cell_means_are_plain_means_of_pass_values() -> None:
    a, b = _cell(0), _cell(500)
    means = cell_means(_table([a, a, b, a], [10.0, 20.0, 5.0, float("nan")]), "pm25")
    by_cell = dict(zip(means.cell.tolist(), means.mean.tolist(), strict=True))
    assert by_cell == {a: 15.0, b: 5.0}
    assert dict(zip(means.cell.tolist(), means.passes.tolist(), strict=True)) == {a: 2, b: 1}


def test_threshold_baseline_merges_adjacent_cells_at_the_hottest() -> None:
    a = _cell(0)
    a_next = int(h3.str_to_int(sorted(h3.grid_ring(h3.int_to_str(a), 1))[0]))
    far = _cell(800)
    table = _table([a, a_next, far, _cell(400)], [60.0, 55.0, 70.0, 20.0])
    found = threshold_baseline(table, "pm25", threshold=50.0)
    assert len(found) == 2
    hottest_lat = {round(d.lat, 6): d.strength for d in found}
    assert sorted(hottest_lat.values()) == [60.0, 70.0]
    near = next(d for d in found if d.strength == 60.0)
    assert (near.lat, near.lon) == pytest.approx(h3.cell_to_latlng(h3.int_to_str(a)))
    assert threshold_baseline(table, "pm25", threshold=50.0, min_passes=2) == []


def test_gi_baseline_is_quiet_on_a_uniform_field() -> None:
    cells = [_cell(30.0 * i) for i in range(20)]
    table = _table(cells, [40.0] * len(cells))
    assert gi_baseline(table, "pm25", AnalysisSettings()) == []


def test_gi_baseline_finds_a_hot_stretch_of_street() -> None:
    rng = np.random.default_rng(3)
    metres = [25.0 * i for i in range(60)]
    cells = [_cell(m) for m in metres]
    values = [40.0 + rng.normal(0, 1) + (30.0 if 700 <= m <= 800 else 0.0) for m in metres]
    found = gi_baseline(_table(cells, values), "pm25", AnalysisSettings())
    truth = [source(lat=north(750))]
    assert match(found, truth).true_positives == 1


points = st.tuples(
    st.floats(min_value=-500, max_value=500), st.sampled_from(["pm25", "no2", "noise"])
)


@settings(max_examples=60, deadline=None)
@given(st.lists(points, max_size=8), st.lists(points, max_size=8))
def test_match_counts_add_up(found: list[tuple[float, str]], real: list[tuple[float, str]]) -> None:
    detections = [Detection(p, north(m), LON) for m, p in found]
    sources = [source(p, north(m), f"s{i}") for i, (m, p) in enumerate(real)]
    m = match(detections, sources)
    assert m.true_positives + m.false_positives == len(detections)
    assert m.true_positives + m.false_negatives == len(sources)
    assert len({i for i, _, _ in m.matched}) == m.true_positives
    assert len({j for _, j, _ in m.matched}) == m.true_positives
    for i, j, d in m.matched:
        assert detections[i].pollutant == sources[j].pollutant
        assert d <= match_radius(sources[j].pollutant)
