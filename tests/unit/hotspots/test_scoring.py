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
    days_band,
    distance_m,
    first_day_reaching,
    first_detection,
    found_in_time,
    gap_m,
    gi_baseline,
    match,
    match_places,
    match_radius,
    merge,
    nearest_same_pollutant,
    offstreet_band,
    pair_band,
    schedule_strata,
    segment_distance_m,
    signal_band,
    strength_band,
    threshold_baseline,
    threshold_level,
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


# ---------------------------------------------------------------- shapes, classes and cuts

M_PER_DEG_LON = M_PER_DEG_LAT * float(np.cos(np.radians(LAT)))


def east(metres: float) -> float:
    return LON + metres / M_PER_DEG_LON


def line_source(
    pollutant: str = "pm25", length_m: float = 300.0, radius_m: float = 0.0, name: str = "street"
) -> TrueSource:
    return TrueSource(
        name, "cooking", pollutant, LAT, LON, 5.0, end=(LAT, east(length_m)), radius_m=radius_m
    )


def test_a_line_source_is_as_far_as_its_nearest_point() -> None:
    street = line_source()
    assert street.distance_m(north(20), east(150)) == pytest.approx(20.0, abs=0.2)
    assert street.distance_m(LAT, east(340)) == pytest.approx(40.0, abs=0.2)
    assert street.distance_m(LAT, east(100)) == pytest.approx(0.0, abs=1e-6)


def test_an_area_source_is_at_distance_zero_inside_its_radius() -> None:
    yard = TrueSource("yard", "dust", "pm10", LAT, LON, 8.0, radius_m=50.0)
    assert yard.distance_m(north(30), LON) == 0.0
    assert yard.distance_m(north(80), LON) == pytest.approx(30.0, abs=0.1)


def test_a_detection_along_a_line_source_matches_it() -> None:
    street = line_source()
    m = match([Detection("pm25", north(30), east(200))], [street])
    assert m.true_positives == 1
    assert m.matched[0][2] == pytest.approx(30.0, abs=0.2)


def test_match_places_tells_a_second_find_of_a_source_from_a_false_one() -> None:
    street = line_source(length_m=400.0)
    found = [
        Detection("pm25", LAT, east(20)),  # the street, west end
        Detection("pm25", LAT, east(380)),  # the street again, east end: a duplicate
        Detection("pm25", north(300), LON),  # nothing there
        Detection("no2", LAT, east(380)),  # another pollutant: false
    ]
    m = match_places(found, [street])
    assert (m.true_positives, m.duplicates, m.false_positives, m.false_negatives) == (1, 1, 2, 0)
    c = Counts()
    c.add(m)
    assert (c.tp, c.fp, c.duplicates) == (1, 2, 1)
    assert c.precision == pytest.approx(1 / 3)


@settings(max_examples=60, deadline=None)
@given(st.lists(points, max_size=8), st.lists(points, max_size=6))
def test_match_places_counts_add_up(
    found: list[tuple[float, str]], real: list[tuple[float, str]]
) -> None:
    detections = [Detection(p, north(m), LON) for m, p in found]
    sources = [source(p, north(m), f"s{i}") for i, (m, p) in enumerate(real)]
    plain, places = match(detections, sources), match_places(detections, sources)
    assert places.matched == plain.matched
    assert places.duplicates + places.false_positives == plain.false_positives
    assert places.true_positives + places.false_positives + places.duplicates == len(detections)
    assert places.duplicates >= 0


offsets = st.floats(min_value=-400, max_value=400)


@settings(max_examples=80, deadline=None)
@given(offsets, offsets, offsets, offsets, offsets, offsets)
def test_segment_distance_is_at_most_the_nearer_end_and_zero_on_it(
    ax: float, ay: float, bx: float, by: float, px: float, py: float
) -> None:
    a, b, p = (north(ay), east(ax)), (north(by), east(bx)), (north(py), east(px))
    d = segment_distance_m(a, b, p)
    assert d >= 0.0
    assert d <= min(distance_m(*a, *p), distance_m(*b, *p)) + 0.5
    assert segment_distance_m(a, b, a) == pytest.approx(0.0, abs=1e-6)
    assert segment_distance_m(a, a, p) == pytest.approx(distance_m(*a, *p), rel=1e-3, abs=0.05)
    middle = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    assert segment_distance_m(a, b, middle) == pytest.approx(0.0, abs=0.05)


@settings(max_examples=60, deadline=None)
@given(offsets, offsets, offsets, st.floats(min_value=0, max_value=300))
def test_gap_between_shapes_is_symmetric_and_at_most_the_centres_distance(
    ax: float, bx: float, by: float, length: float
) -> None:
    a = TrueSource("a", "dust", "pm25", LAT, east(ax), 5.0)
    b = TrueSource(
        "b", "cooking", "pm25", north(by), east(bx), 5.0, end=(north(by), east(bx + length))
    )
    assert gap_m(a, b) == pytest.approx(gap_m(b, a), abs=5.0)
    # the segment is measured on a tangent plane: as the sphere within a thousandth
    assert 0.0 <= gap_m(a, b) <= distance_m(a.lat, a.lon, b.lat, b.lon) * 1.001 + 1e-6


def test_nearest_same_pollutant_ignores_other_pollutants() -> None:
    sources = [
        source("pm25", LAT, "a"),
        source("pm25", north(300), "b"),
        source("no2", north(100), "c"),
    ]
    gaps = nearest_same_pollutant(sources)
    assert gaps[0] == pytest.approx(300.0, abs=0.5)
    assert gaps[1] == pytest.approx(300.0, abs=0.5)
    assert gaps[2] is None


@settings(max_examples=80, deadline=None)
@given(
    st.floats(min_value=0, max_value=100, allow_nan=False), st.floats(min_value=0, max_value=100)
)
def test_bands_are_ordered(a: float, b: float) -> None:
    order = ["<3", "3-5", "5-10", "10-30", ">=30"]
    low, high = sorted((a, b))
    assert order.index(strength_band(low)) <= order.index(strength_band(high))
    assert strength_band(4.99) == "3-5"
    assert strength_band(5.0) == "5-10"
    assert [days_band(x) for x in (0.3, 0.5, 0.99, 1.0)] == ["<50 %", "50-99 %", "50-99 %", "100 %"]
    assert [offstreet_band(x) for x in (0.0, 10.0, 39.9, 40.0)] == [
        "<10 m",
        "10-40 m",
        "10-40 m",
        ">=40 m",
    ]
    assert [pair_band(x) for x in (100.0, 250.0, 399.0, 400.0, None)] == [
        "<250 m",
        "250-400 m",
        "250-400 m",
        "none",
        "none",
    ]


def test_first_day_reaching_takes_the_median_source() -> None:
    daily = [[2, 2, 2, 2], [0, 1, 0, 1], [4, 4, 4, 4]]  # cumulative medians 2, 4, 6, 8
    assert first_day_reaching(daily, 4) == 1
    assert first_day_reaching(daily, 5) == 2
    assert first_day_reaching(daily, 9) is None
    assert first_day_reaching([], 1) is None


@settings(max_examples=80, deadline=None)
@given(
    st.integers(min_value=1, max_value=5).flatmap(
        lambda days: st.lists(
            st.lists(st.integers(min_value=0, max_value=6), min_size=days, max_size=days),
            min_size=1,
            max_size=5,
        )
    ),
    st.integers(min_value=0, max_value=30),
)
def test_first_day_reaching_is_the_first_day_with_the_median_at_n(
    daily: list[list[int]], n: int
) -> None:
    day = first_day_reaching(daily, n)

    def median_by(d: int) -> float:
        totals = sorted(sum(row[: d + 1]) for row in daily)
        k = len(totals)
        return (totals[(k - 1) // 2] + totals[k // 2]) / 2

    if day is None:
        assert median_by(len(daily[0]) - 1) < n
    else:
        assert median_by(day) >= n
        assert day == 0 or median_by(day - 1) < n
        assert first_day_reaching(daily, max(0, n - 1)) <= day  # type: ignore[operator]


def test_meal_schedules_are_found_in_the_meal_strata() -> None:
    strata = AnalysisSettings().strata
    meals = schedule_strata(((10.5, 13.5), (16.5, 20.0)), strata)
    assert meals == {"meals", "lunch", "dinner"}
    assert schedule_strata(((23.0, 24.0),), strata) == {"night"}
    assert schedule_strata(((0.0, 24.0),), strata) == {"meals", "lunch", "dinner", "night"}
    assert schedule_strata((), strata) == frozenset()


def test_found_in_time_needs_the_label_or_the_stratum_near_the_source() -> None:
    s = source("odor")
    strata = frozenset({"meals", "lunch"})
    assert found_in_time([Detection("odor", north(20), LON, stratum="lunch")], s, strata)
    assert found_in_time([Detection("odor", north(20), LON, label="episodic")], s, strata)
    assert not found_in_time([Detection("odor", north(20), LON, stratum="all_day")], s, strata)
    assert not found_in_time([Detection("odor", north(200), LON, stratum="lunch")], s, strata)
    assert not found_in_time([Detection("pm25", LAT, LON, stratum="lunch")], s, strata)


def test_threshold_level_is_background_plus_the_larger_of_noise_and_floor() -> None:
    s = AnalysisSettings()
    assert threshold_level("pm25", 38.0, s) == pytest.approx(48.0)  # floor 10 > 2 x 2
    assert threshold_level("odor", 1.5, s) == pytest.approx(3.5)  # floor 2 > 2 x 0.2
    assert threshold_level("unknown", 1.0, s) == pytest.approx(1.0)


def test_signal_bands_cover_every_value() -> None:
    assert signal_band(None) == "no readings"
    assert signal_band(0.2) == "<0.5"
    assert signal_band(0.5) == "0.5-1"
    assert signal_band(1.5) == "1-2"
    assert signal_band(4.99) == "2-5"
    assert signal_band(50.0) == ">=5"
