"""Generated worlds: every family gives a complete Scenario within the stated bounds, the same
seed gives the same world, and over many seeds the worlds vary the way the evaluation needs
(shapes, fleets, schedules, strengths, pairs 150-400 m apart, sources beside the routes, 2-4
passes a day)."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.profile import builtin_profiles
from edge.units import CHANNELS
from firmware_sim.field import MEAL_TIMES, NOISE_SIGMA, Source
from firmware_sim.gps_model import GpsSpec
from firmware_sim.motion import PatrolDrive
from firmware_sim.networks import (
    SHAPES,
    Point,
    StreetNetwork,
    nearest_street_point,
    segment_distance_m,
    street_distance_m,
    to_local,
)
from firmware_sim.route import BUILTIN_ROUTES, Route
from firmware_sim.scenario import Scenario
from firmware_sim.sensor import DEFAULT_SENSORS
from firmware_sim.worlds import (
    DEFAULT_START,
    FAMILIES,
    KINDS,
    PASS_RADIUS_M,
    POLLUTANTS,
    PROFILES,
    WARMUP_S,
    World,
    WorldError,
    build_world,
    expected_passes_per_day,
    generate_world,
)
from hotspots.floors import HOTSPOT_FLOORS

GENERATED = [f for f in FAMILIES if f != "builtin-loop"]


def routes_of(scenario: Scenario) -> dict[str, Route]:
    out = {}
    for name, spec in scenario.routes.items():
        if spec.builtin is not None:
            out[name] = BUILTIN_ROUTES[spec.builtin]
        else:
            out[name] = Route(name, list(spec.points or ()), closed=spec.closed)
    return out


def local(net: StreetNetwork, lat: float, lon: float) -> Point:
    return to_local(net.origin, lat, lon)


def sigmas(source: Source) -> dict[str, float]:
    return {ch: amp / NOISE_SIGMA[ch] for ch, amp in source.amplitude.items()}


def route_distance_m(scenario: Scenario, net: StreetNetwork, point: Point) -> float:
    """Distance from a local point to the nearest route of the scenario."""
    best = math.inf
    for spec in scenario.routes.values():
        pts = [local(net, *p) for p in spec.points or ()]
        for a, b in zip(pts, pts[1:] + pts[:1], strict=True):
            best = min(best, segment_distance_m(point, a, b))
    return best


@pytest.fixture(scope="module")
def mixed() -> list[World]:
    return [build_world("mixed", seed) for seed in range(50)]


def test_the_analysis_channels_are_the_pollutants_and_every_one_has_a_kind() -> None:
    assert set(POLLUTANTS) == set(HOTSPOT_FLOORS)
    assert set(POLLUTANTS) <= set(CHANNELS)
    assert {ch for k in KINDS for ch in k.channels} == set(POLLUTANTS)
    assert set(PROFILES) <= set(builtin_profiles())
    assert {"grid", "radial", "irregular", "spurs", "mixed", "builtin-loop"} <= set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_gives_a_complete_scenario_within_bounds(family: str) -> None:
    for seed in range(8):
        s = generate_world(family, seed)
        assert s.name == f"{family}-{seed}"
        assert s.start == DEFAULT_START
        assert s.duration_h == 21 * 24
        assert s.sensors == DEFAULT_SENSORS
        assert s.gps == GpsSpec()
        assert 1 <= len(s.vehicles) <= 5
        assert 3 <= len(s.sources) <= 8
        assert len({src.name for src in s.sources}) == len(s.sources)
        routes = routes_of(s)
        for r in routes.values():
            assert 3000 <= r.length_m <= 12000
        for v in s.vehicles:
            assert v.profile in PROFILES
            assert v.route in s.routes
            assert 1 <= len(v.shifts) <= 3
            for shift in v.shifts:
                assert set(shift.routes) <= set(s.routes)
                assert 0 < shift.share <= 1
                assert shift.length <= timedelta(hours=6, minutes=5)
            assert s.windows(v)  # it patrols
        for src in s.sources:
            assert set(src.amplitude) <= set(POLLUTANTS)
            for k in sigmas(src).values():
                assert 2.99 <= k <= 30.01
            assert 20 <= src.decay_m <= 80
            assert 0.3 <= src.schedule.days <= 1.0


def test_shifts_of_a_day_do_not_overlap() -> None:
    for family in GENERATED:
        for seed in range(15):
            s = generate_world(family, seed)
            for v in s.vehicles:
                by_days: dict[object, list[tuple[int, int, float]]] = {}
                for shift in v.shifts:
                    start = shift.start.hour * 60 + shift.start.minute
                    end = start + shift.length.total_seconds() / 60
                    assert end <= 23 * 60 + 5
                    by_days.setdefault(shift.weekdays, []).append(
                        (start, int(end), shift.jitter_min)
                    )
                for shifts in by_days.values():
                    shifts.sort()
                    for (_, end, j1), (start, _, j2) in itertools.pairwise(shifts):
                        assert start - end > j1 + j2


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(GENERATED), st.integers(0, 2**31))
def test_any_seed_gives_a_world_of_sources_beside_its_routes(family: str, seed: int) -> None:
    world = build_world(family, seed)
    s, net = world.scenario, world.network
    assert net is not None
    assert world == build_world(family, seed)
    assert 3 <= len(s.sources) <= 8
    assert 1 <= len(s.vehicles) <= 5
    for src in s.sources:
        point = local(net, src.lat, src.lon)
        assert route_distance_m(s, net, point) <= src.radius_m + 40.5
    for a, b in world.pairs:
        assert a != b


@pytest.mark.parametrize("family", FAMILIES)
def test_the_same_seed_gives_the_same_world(family: str) -> None:
    assert generate_world(family, 11) == generate_world(family, 11)
    assert generate_world(family, 11, null=True) == generate_world(family, 11, null=True)
    assert generate_world(family, 11) != generate_world(family, 12)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_null_world_is_the_same_fleet_without_sources(family: str) -> None:
    full, null = generate_world(family, 5), generate_world(family, 5, null=True)
    assert null.sources == ()
    assert null.vehicles == full.vehicles
    assert null.routes == full.routes
    assert null.name == f"{full.name}-null"
    assert build_world(family, 5, null=True).passes_per_day == {}


def test_start_and_days_are_kept() -> None:
    start = datetime(2026, 6, 1, 6, 30, tzinfo=timezone(timedelta(hours=8)))
    s = generate_world("grid", 3, days=7, start=start)
    assert s.start == start
    assert s.start.tzinfo == UTC
    assert s.duration_h == 7 * 24
    assert s.vehicles == generate_world("grid", 3).vehicles  # the same world, another period


@pytest.mark.parametrize(
    ("family", "days", "start", "subject"),
    [
        ("hexagons", 21, None, "family"),
        ("grid", 0, None, "days"),
        ("grid", True, None, "days"),
        ("grid", 21, datetime(2026, 3, 2), "start"),
    ],
)
def test_bad_arguments_are_refused(
    family: str, days: int, start: datetime | None, subject: str
) -> None:
    with pytest.raises(WorldError) as caught:
        build_world(family, 1, days=days, start=start)
    assert caught.value.subject == subject


def test_the_builtin_loop_is_the_old_regression_setting() -> None:
    loop = BUILTIN_ROUTES["shuangjing-loop"]
    for seed in range(20):
        world = build_world("builtin-loop", seed)
        s = world.scenario
        assert [spec.builtin for spec in s.routes.values()] == ["shuangjing-loop"]
        (vehicle,) = s.vehicles
        assert vehicle.profile == "default-multi"
        assert sorted(src.kind for src in s.sources) == ["cooking", "dust", "traffic"]
        along = sorted(_along(loop, src) for src in s.sources)
        gaps = [b - a for a, b in itertools.pairwise(along)]
        gaps.append(loop.length_m - along[-1] + along[0])
        assert min(gaps) >= 600 - 2
        for src in s.sources:
            k = sigmas(src).values()
            assert max(k) / min(k) < 1.002  # one strength over its channels
            assert 2.99 <= min(k) <= max(k) <= 30.01
            assert world.passes_per_day[src.name] == pytest.approx(2.0, abs=0.15)


def _along(route: Route, source: Source) -> float:
    """Distance along the route of the point nearest to the source."""
    best = (math.inf, 0.0)
    for d in range(0, int(route.length_m), 2):
        p = route.at(d)
        best = min(best, (math.hypot(p.lat - source.lat, p.lon - source.lon), float(d)))
    return best[1]


def test_fifty_worlds_vary_as_the_evaluation_needs(mixed: Sequence[World]) -> None:
    shapes = Counter(w.network.shape for w in mixed if w.network is not None)
    assert set(shapes) == set(SHAPES)
    fleets = Counter(len(w.scenario.vehicles) for w in mixed)
    assert len(fleets) >= 4
    multi = [w for w in mixed if len(w.scenario.vehicles) > 1]
    mixed_boxes = [w for w in multi if len({v.profile for v in w.scenario.vehicles}) > 1]
    assert len(mixed_boxes) >= 0.3 * len(multi)
    sources = [src for w in mixed for src in w.scenario.sources]
    assert {ch for src in sources for ch in src.amplitude} == set(POLLUTANTS)
    assert Counter(len(w.scenario.sources) for w in mixed).keys() == set(range(3, 9))
    schedules = Counter(_schedule_kind(src) for src in sources)
    assert set(schedules) == {"always", "meals", "hours", "share"}
    assert 0.15 <= sum(src.schedule.days < 1 for src in sources) / len(sources) <= 0.6
    main = [next(iter(sigmas(src).values())) for src in sources]
    assert sum(k < 5 for k in main) >= 0.1 * len(main)  # weak sources
    assert sum(k > 15 for k in main) >= 0.1 * len(main)  # strong ones
    geometries = Counter(
        "line" if src.end is not None else "area" if src.radius_m else "point" for src in sources
    )
    assert set(geometries) == {"point", "line", "area"}


def _schedule_kind(source: Source) -> str:
    s = source.schedule
    if s.kind == "meals":
        meal_like = all(
            abs(a - ma) <= 0.5 and abs(b - mb) <= 0.5
            for (a, b), (ma, mb) in zip(s.windows, MEAL_TIMES, strict=False)
        )
        return "meals" if len(s.windows) == len(MEAL_TIMES) and meal_like else "hours"
    return s.kind


def test_sources_stand_on_or_beside_the_driven_streets(mixed: Sequence[World]) -> None:
    offs = []
    for w in mixed:
        net = w.network
        assert net is not None
        for src in w.scenario.sources:
            ends = [(src.lat, src.lon)] if src.end is None else [(src.lat, src.lon), src.end]
            for lat, lon in ends:
                point = local(net, lat, lon)
                _, to_street = nearest_street_point(net, point)
                off = max(0.0, to_street - src.radius_m)
                assert off < 0.5 or 9.5 <= off <= 40.5, (w.seed, src.name, off)
                assert route_distance_m(w.scenario, net, point) <= to_street + 0.5
            offs.append(off)
    off_street = sum(o >= 9.5 for o in offs) / len(offs)
    assert 0.2 <= off_street <= 0.8


def test_pairs_share_a_pollutant_150_to_400_m_apart_along_the_streets(
    mixed: Sequence[World],
) -> None:
    with_pairs = [w for w in mixed if w.pairs]
    assert len(with_pairs) >= 0.4 * len(mixed)
    for w in with_pairs:
        net = w.network
        assert net is not None
        by_name = {src.name: src for src in w.scenario.sources}
        for a, b in w.pairs:
            sa, sb = by_name[a], by_name[b]
            assert set(sa.amplitude) & set(sb.amplitude)
            pa, _ = nearest_street_point(net, local(net, sa.lat, sa.lon))
            pb, _ = nearest_street_point(net, local(net, sb.lat, sb.lon))
            assert 149.5 <= street_distance_m(net, pa, pb) <= 400.5


def test_sources_sharing_a_pollutant_stay_apart_unless_paired(mixed: Sequence[World]) -> None:
    for w in mixed:
        net = w.network
        assert net is not None
        paired = {frozenset(p) for p in w.pairs}
        for sa in w.scenario.sources:
            for sb in w.scenario.sources:
                if sa.name >= sb.name or not set(sa.amplitude) & set(sb.amplitude):
                    continue
                # `at` lies on each geometry, so its distance bounds the geometries' gap
                gap = math.dist(local(net, sa.lat, sa.lon), local(net, sb.lat, sb.lon))
                need = 100.0 if frozenset((sa.name, sb.name)) in paired else 150.0
                assert gap >= need + sa.radius_m + sb.radius_m - 0.5


def test_the_median_source_is_passed_two_to_four_times_a_day(mixed: Sequence[World]) -> None:
    medians = [statistics.median(w.passes_per_day.values()) for w in mixed]
    assert 2.0 <= statistics.median(medians) <= 4.0
    assert all(1.5 <= m <= 5.0 for m in medians)


def test_every_world_has_overlapping_routes_driven_both_ways(mixed: Sequence[World]) -> None:
    for w in mixed:
        vehicles = w.scenario.vehicles
        streets = [
            {
                a // 2
                for r in (v.route, *(r for s in v.shifts for r in s.routes))
                for a in w.walks[r].arcs
            }
            for v in vehicles
        ]
        if len(vehicles) > 1:
            for i, mine in enumerate(streets):
                assert any(mine & other for j, other in enumerate(streets) if j != i)
        driven = {a for walk in w.walks.values() for a in walk.arcs}
        assert any(a % 2 == 0 and a + 1 in driven for a in driven)


@pytest.mark.parametrize(("family", "seed"), [("grid", 2), ("spurs", 3), ("builtin-loop", 1)])
def test_expected_passes_agree_with_driving_the_shifts(family: str, seed: int) -> None:
    """A week of the world's shift windows driven by the simulator's own speed profile: the
    sources' passes, counted where the vehicle comes within the pass radius, are what the
    generator planned with."""
    world = build_world(family, seed)
    s = world.scenario
    routes = routes_of(s)
    days = 7
    counted = dict.fromkeys(world.passes_per_day, 0)
    for i, v in enumerate(s.vehicles):
        for window in s.windows(v):
            if window.on >= s.start + timedelta(days=days):
                break
            horizon = (window.off - window.on).total_seconds()
            drive = PatrolDrive(
                routes[window.route],
                window.on,
                v.speed,
                offset_m=v.offset_m,
                seed=i,
                horizon_s=horizon,
            )
            near = dict.fromkeys(counted, False)
            for step in range(int(WARMUP_S), int(horizon), 3):
                state = drive.state(window.on + timedelta(seconds=step))
                for src in s.sources:
                    inside = src.distance_m(state.lat, state.lon) <= PASS_RADIUS_M
                    counted[src.name] += inside and not near[src.name]
                    near[src.name] = inside
    driven = statistics.median(c / days for c in counted.values())
    planned = statistics.median(world.passes_per_day.values())
    assert 0.7 <= driven / planned <= 1.5
    assert expected_passes_per_day(s) == world.passes_per_day
