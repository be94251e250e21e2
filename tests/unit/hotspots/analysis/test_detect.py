"""The whole pipeline on synthetic passes with known sources (hotspots.analysis.synthetic)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import h3
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hotspots.analysis.detect import Hotspot, detect, pass_enhancements
from hotspots.analysis.labels import Label
from hotspots.analysis.passes import AnalysisPass, PassStats, PassTable
from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.standards import IaqiBand, NoiseBand
from hotspots.analysis.synthetic import (
    SHUANGJING,
    OnDays,
    Source,
    SyntheticWorld,
    generate,
    match,
    offset,
)
from hotspots.floors import HOTSPOT_FLOORS

SETTINGS = AnalysisSettings()


def _sources(
    amplitude: float = 15.0, schedule: str | float | OnDays = "always"
) -> tuple[Source, ...]:
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


# Worlds drawn by hypothesis, of kinds the method was not tuned on: other fleets, registers,
# schedules and day errors. Derandomised: the worlds are the same on every run.
WORLDS = settings(max_examples=5, derandomize=True, deadline=None)
# (pass noise, register step) on which each channel is reported: SO2 in whole ppb is coarser
# than its noise; PM2.5 and CO are fine-grained.
GRIDS = {"so2": (0.6, 64.07 / 24.465), "pm25": (3.0, 1.0), "co": (0.01, 0.0114)}


def _fleet(seed: int, vehicles: int, days: int, **more: Any) -> SyntheticWorld:
    return replace(
        SyntheticWorld(vehicles=vehicles, days=days, trips_per_day=3, trip_every_h=2.5, seed=seed),
        **more,
    )


def _near(found: list[Hotspot], source: Source) -> list[Hotspot]:
    return [h for h in found if match([(h.lat, h.lon)], (source,)).true_positives]


@WORLDS
@given(
    st.integers(0, 10_000), st.sampled_from(sorted(GRIDS)), st.integers(1, 3), st.integers(2, 10)
)
def test_null_worlds_on_a_register_grid_stay_quiet(
    seed: int, pollutant: str, vehicles: int, days: int
) -> None:
    noise, step = GRIDS[pollutant]
    noisy = []
    for k in range(3):
        world = _fleet(
            seed + k, vehicles, days, pollutants=(pollutant,), pass_noise={pollutant: noise},
            base_level={pollutant: 200 * step}, drift={pollutant: 3 * noise},
            quantum={pollutant: step},
        )  # fmt: skip
        noisy.append(bool(detect(generate(world), SETTINGS)))
    assert sum(noisy) <= 1  # any hotspot is a false one: at most one world in three at q = 0.05


def test_the_register_grid_is_what_keeps_a_coarse_channel_quiet() -> None:
    noise, step = GRIDS["so2"]
    world = _fleet(
        0, 2, 10, pollutants=("so2",), pass_noise={"so2": noise}, base_level={"so2": 10.0},
        drift={"so2": 2.0}, quantum={"so2": step},
    )  # fmt: skip
    table = generate(world)
    # A quiet module (0.3 ug/m3): its noise alone would not hold the spread up.
    quiet = replace(SETTINGS, sensor_noise={**SETTINGS.sensor_noise, "so2": 0.3})
    assert detect(table, quiet) == []
    # Blind to the grid, ties collapse the spread and one-step medians become hotspots.
    assert len(detect(table, replace(quiet, quantum={}))) >= 3


@WORLDS
@given(st.integers(0, 10_000), st.floats(0.0, 4.0))
def test_two_days_with_a_shared_error_per_place_and_day_stay_quiet(
    seed: int, shared: float
) -> None:
    noisy = [
        bool(detect(generate(_fleet(seed + k, 3, 2, cell_day_noise={"pm25": shared})), SETTINGS))
        for k in range(3)
    ]
    assert sum(noisy) <= 1


@WORLDS
@given(st.integers(0, 10_000), st.floats(12.0, 30.0))
def test_a_strong_source_seen_on_two_days_by_three_vehicles_is_found(
    seed: int, amplitude: float
) -> None:
    sources = _sources(amplitude)
    found = detect(generate(_fleet(seed, 3, 2, sources=sources)), SETTINGS)
    result = match([(h.lat, h.lon) for h in found], sources)
    assert result.true_positives == 2
    assert all(h.label is Label.CANDIDATE for h in found)  # 2 days: not yet persistent


@WORLDS
@given(st.integers(0, 10_000), st.floats(0.5, 0.8), st.floats(15.0, 30.0), st.integers(8, 12))
def test_a_source_on_half_the_days_or_more_is_episodic(
    seed: int, share: float, amplitude: float, days: int
) -> None:
    sources = _sources(amplitude, OnDays(share))
    world = _fleet(seed, 3, days, sources=sources)
    # The days the world has it on (drawn as generate draws them).
    on = [int((np.random.default_rng((seed, k)).uniform(size=days) < share).sum()) for k in (0, 1)]
    # On half the days or more, as the name says: drawn at a share of 0.5, a source can end up
    # on 3 days of 8, too few for the day test at this size (also before the window scan).
    assume(all(days / 2 <= n < days for n in on))
    found = detect(generate(world), SETTINGS)
    for source, days_on in zip(sources, on, strict=True):
        (spot,) = _near(found, source)  # one place, listed once
        assert spot.label is Label.EPISODIC
        assert spot.episode_days is not None
        assert spot.episode_days[1] == days
        assert abs(spot.episode_days[0] - days_on) <= 1  # a weak on day may not count
        assert "episode_days" in [r.code for r in spot.reasons]


@WORLDS
@given(st.integers(0, 10_000), st.sampled_from(["lunch", "meals"]), st.floats(15.0, 30.0))
def test_a_meal_time_source_is_episodic_in_its_window(
    seed: int, schedule: str, amplitude: float
) -> None:
    sources = _sources(amplitude, schedule)
    found = detect(generate(_fleet(seed, 3, 6, trips_per_day=4, sources=sources)), SETTINGS)
    windows = {"lunch": {"lunch", "meals"}, "meals": {"meals"}}[schedule]
    for source in sources:
        spots = _near(found, source)
        assert spots
        for spot in spots:
            assert spot.label is Label.EPISODIC
            assert spot.episode_stratum in windows
            assert "episode_window" in [r.code for r in spot.reasons]


@WORLDS
@given(st.integers(0, 10_000), st.floats(8.0, 30.0), st.integers(1, 3), st.integers(4, 10))
def test_an_always_on_source_is_never_episodic(
    seed: int, amplitude: float, vehicles: int, days: int
) -> None:
    found = detect(generate(_fleet(seed, vehicles, days, sources=_sources(amplitude))), SETTINGS)
    assert found
    assert all(h.label in (Label.PERSISTENT, Label.CANDIDATE) for h in found)
    assert all(h.episode_stratum is None and h.episode_days is None for h in found)
