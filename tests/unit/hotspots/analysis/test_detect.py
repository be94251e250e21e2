"""The whole pipeline on synthetic passes with known sources (hotspots.analysis.synthetic)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import h3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotspots.analysis.detect import Hotspot, detect, pass_enhancements
from hotspots.analysis.labels import Label
from hotspots.analysis.passes import AnalysisPass, PassStats, PassTable
from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.standards import IaqiBand, NoiseBand
from hotspots.analysis.synthetic import SHUANGJING, Source, SyntheticWorld, generate, match, offset
from hotspots.floors import HOTSPOT_FLOORS

SETTINGS = AnalysisSettings()


def _sources(amplitude: float = 15.0, schedule: str | float = "always") -> tuple[Source, ...]:
    # On streets of the default 4 x 4 grid (streets at -375, -125, 125, 375 m).
    return (
        Source(*offset(SHUANGJING, -375.0, 100.0), "pm25", amplitude, 40.0, schedule),
        Source(*offset(SHUANGJING, 40.0, -125.0), "pm25", amplitude, 40.0, schedule),
    )


def _all_day(found: list[Hotspot]) -> list[Hotspot]:
    return [h for h in found if h.stratum == "all_day"]


def test_injected_sources_are_found_where_they_are() -> None:
    sources = _sources()
    found = detect(
        generate(SyntheticWorld(days=10, trips_per_day=2, sources=sources, seed=3)), SETTINGS
    )
    spots = _all_day(found)
    result = match([(h.lat, h.lon) for h in spots], sources)
    assert (result.true_positives, result.false_positives) == (2, 0)
    assert max(result.errors_m) < 50.0
    for spot in spots:
        assert spot.label in (Label.PERSISTENT, Label.CANDIDATE)
        assert spot.enhancement_interval[0] <= spot.enhancement <= spot.enhancement_interval[1]
        assert spot.passes >= 20
        assert spot.peak_cell in spot.cells
        assert spot.geometry["type"] in ("Polygon", "MultiPolygon")
        assert isinstance(spot.indicative, IaqiBand)
        assert spot.indicative.indicative
        assert [r.code for r in spot.reasons][:2] == ["passes", "magnitude"]
        assert spot.first_seen < spot.last_seen
        assert list(spot.profile) == ["all_day", "meals", "lunch", "dinner", "night"]
        assert spot.profile["all_day"] == spot.enhancement
        assert spot.profile["night"] is None  # no trips at night in this scenario
        # Two vehicles, ten days: every vehicle-day drove through every street.
        assert len(spot.drives) == 20
        assert {d.vehicle for d in spot.drives} == {"car-00", "car-01"}
        assert min(d.day for d in spot.drives).isoformat() == "2026-03-02"


@pytest.mark.parametrize("seed", range(4))
def test_null_fields_stay_quiet(seed: int) -> None:
    world = SyntheticWorld(days=10, trips_per_day=2, seed=seed, pollutants=("pm25", "no2", "noise"))
    assert detect(generate(world), SETTINGS) == []


@pytest.mark.parametrize("seed", range(2))
def test_random_plumes_everywhere_are_no_hotspot(seed: int) -> None:
    # A tenth of all passes catch a passing plume (exponential, mean 25 ug/m3), anywhere.
    table = generate(SyntheticWorld(days=10, trips_per_day=2, seed=seed))
    rng = np.random.default_rng(seed)
    plumes = (rng.uniform(size=len(table)) < 0.1) * rng.exponential(25.0, len(table))
    assert detect(replace(table, values={"pm25": table.values["pm25"] + plumes}), SETTINGS) == []


def test_a_meal_time_source_shows_in_the_meal_strata() -> None:
    world = SyntheticWorld(
        days=10, trips_per_day=4, trip_every_h=2.5, sources=_sources(20.0, "meals"), seed=5
    )
    found = detect(generate(world), SETTINGS)
    result = match([(h.lat, h.lon) for h in found], _sources())
    assert (result.true_positives, result.false_positives) == (2, 0)
    # Each place is listed once (the first stratum that finds it); its profile shows the meals.
    for spot in found:
        for meal in ("meals", "lunch", "dinner"):
            assert spot.profile[meal] is not None
            assert spot.profile[meal] > spot.profile["all_day"]  # type: ignore[operator]


def test_a_source_on_now_and_then_is_episodic() -> None:
    world = SyntheticWorld(
        days=10, trips_per_day=4, trip_every_h=2.5, sources=_sources(80.0, 0.15)[:1], seed=5
    )
    # The synthetic passes carry 3 ug/m3 of noise each, more than the default sensor noise
    # (2 ug/m3 per reading) implies for a pass: judged with the store's floor of 10 ug/m3.
    found = _all_day(detect(generate(world), replace(SETTINGS, floors=HOTSPOT_FLOORS)))
    assert [h.label for h in found] == [Label.EPISODIC]
    assert found[0].reasons[-1].code == "episodes"


def test_noise_gets_a_noise_class_band() -> None:
    source = Source(*offset(SHUANGJING, -375.0, 100.0), "noise", 6.0, 40.0)
    world = SyntheticWorld(
        days=10, trips_per_day=2, sources=(source,), pollutants=("noise",), seed=2
    )
    found = _all_day(detect(generate(world), SETTINGS))
    assert len(found) == 1
    assert isinstance(found[0].indicative, NoiseBand)
    assert found[0].indicative.limit == 60.0  # class 2, day


def test_pass_records_and_columns_give_the_same_hotspots() -> None:
    table = generate(
        SyntheticWorld(days=10, trips_per_day=2, sources=_sources(), seed=3, vehicles=1)
    )
    records = [
        AnalysisPass(
            vehicle=table.vehicles[int(table.vehicle[i])],
            cell=h3.int_to_str(int(table.cell[i])),
            start=datetime.fromtimestamp(float(table.start[i]), UTC),
            end=datetime.fromtimestamp(float(table.end[i]), UTC),
            stats={"pm25": PassStats(float(table.values["pm25"][i]), 0.0, 1)},
        )
        for i in range(len(table))
    ]
    a = detect(table, SETTINGS)
    b = detect(records, SETTINGS)
    assert [(h.label, h.cells, h.stratum) for h in a] == [(h.label, h.cells, h.stratum) for h in b]
    assert [h.excess for h in a] == pytest.approx([h.excess for h in b])


def test_no_passes_no_hotspots() -> None:
    assert detect([], SETTINGS) == []


def _summary(found: list[Hotspot]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return sorted((h.pollutant, h.stratum, h.label.value, h.cells) for h in found)


def _shifted(table: PassTable, shift: float) -> PassTable:
    return replace(table, values={p: v + shift for p, v in table.values.items()})


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000))
def test_a_uniform_field_has_no_persistent_hotspot(seed: int) -> None:
    world = SyntheticWorld(days=12, trips_per_day=2, seed=seed, pollutants=("pm25", "noise"))
    found = detect(generate(world), SETTINGS)
    assert not [h for h in found if h.label is Label.PERSISTENT]


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000), st.floats(-30.0, 300.0))
def test_shifting_all_values_does_not_change_the_labels(seed: int, shift: float) -> None:
    table = generate(SyntheticWorld(days=10, trips_per_day=2, sources=_sources(12.0), seed=seed))
    assert _summary(detect(_shifted(table, shift), SETTINGS)) == _summary(detect(table, SETTINGS))


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000))
def test_the_order_of_passes_does_not_matter(seed: int) -> None:
    table = generate(SyntheticWorld(days=10, trips_per_day=2, sources=_sources(12.0), seed=seed))
    order = np.random.default_rng(seed).permutation(len(table))
    a = detect(table, SETTINGS)
    b = detect(table.subset(order), SETTINGS)
    assert _summary(a) == _summary(b)
    assert [h.excess for h in a] == [h.excess for h in b]


def test_pass_enhancements_are_value_minus_trip_background() -> None:
    table = generate(SyntheticWorld(days=2, trips_per_day=2, seed=4))
    bg, e = pass_enhancements(table, "pm25", SETTINGS)
    np.testing.assert_allclose(e, table.values["pm25"] - bg)
    assert np.isfinite(bg).all()
    # A 10th percentile background: most passes lie above it.
    assert 0.8 < float((e > 0).mean()) < 0.95


def test_a_place_is_listed_once_whatever_strata_find_it() -> None:
    # Always on, driven at meal times too: the meal strata find the sources as well, but each
    # place is listed once, from the all-day stratum, with the meals in its profile.
    world = SyntheticWorld(days=10, trips_per_day=4, trip_every_h=2.5, sources=_sources(), seed=5)
    found = detect(generate(world), SETTINGS)
    assert sorted(h.stratum for h in found) == ["all_day", "all_day"]
    assert all(h.profile["meals"] is not None for h in found)


def test_pooled_families_find_the_sources_and_nothing_the_per_stratum_correction_misses() -> None:
    # Families of cells (all day; the time strata together; magnitude and share tests together)
    # are corrected more strictly than one stratum and one test at a time.
    world = SyntheticWorld(
        days=10, trips_per_day=4, trip_every_h=2.5, sources=_sources(6.0), seed=9
    )
    table = generate(world)
    pooled = detect(table, SETTINGS)
    apart = detect(table, replace(SETTINGS, fdr_across_strata=False))
    assert {(h.pollutant, h.peak_cell) for h in pooled} <= {
        (h.pollutant, h.peak_cell) for h in apart
    }
    assert pooled  # the sources are strong enough either way
