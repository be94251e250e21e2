"""Seeded families of simulated worlds: street network, fleet, shifts and sources, as a Scenario.

`generate_world(family, seed)` draws a whole patrol world nobody tuned the analysis for:

- a street network of the family's shape (`firmware_sim.networks`; "mixed" draws any shape)
  around a place in Beijing, and 1-5 vehicles with the shipped box profiles, each driving one or
  two closed patrol routes through it (one a day), which overlap between vehicles and drive some
  two-way street both ways;
- shift patterns over `days` days: every day, weekdays and weekends apart, or two or three
  shifts a day, each worked on a seeded share of its days, starting with a seeded jitter; shift
  lengths are set so that the median source is passed about 2-4 times a day by the whole fleet;
- 3-8 sources of realistic kinds (dust, traffic, cooking, solvent, waste, industrial, heating,
  welding, vegetation: between them every pollutant channel), as points, lines or areas, on the
  street or 10-40 m off it, always on, at meal times, in working hours, in a share of
  15-60 minute windows, and on a share of days; each channel's amplitude is k x its sensor noise
  (`firmware_sim.field.NOISE_SIGMA`), k from 3 (weak) to 30, log-uniform; in most worlds one or
  two pairs of sources share a pollutant 150-400 m apart along the streets.

"builtin-loop" is the earlier regression setting: one vehicle on the built-in Shuangjing loop,
two laps a day at a random daytime hour, a dust, a traffic and a cooking source at least 600 m
apart along the loop. A null world (`null=True`) is the same fleet on the same routes, with no
source at all.

A source carries what a scorer needs (kind, geometry, schedule, amplitudes); its strength in
sigma, its distance from the streets and from other sources follow from the Scenario and its
routes. `build_world` returns the network, the walks and the expected passes beside the Scenario.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta, timezone

from edge.errors import EnvpatrolError
from edge.units import CHANNELS
from firmware_sim.faults import FaultSpec
from firmware_sim.field import MEAL_TIMES, NOISE_SIGMA, Schedule, Source
from firmware_sim.gps_model import GpsSpec
from firmware_sim.motion import SpeedProfile
from firmware_sim.networks import (
    SHAPES,
    PatrolRoute,
    Point,
    StreetDistances,
    StreetNetwork,
    StreetPoint,
    build_network,
    fleet_routes,
    nearest_street_point,
    route_points,
    segment_distance_m,
    to_local,
    visits,
)
from firmware_sim.route import BUILTIN_ROUTES, Route
from firmware_sim.scenario import (
    BackgroundSpec,
    RouteSpec,
    Scenario,
    ShiftSpec,
    VehicleSpec,
)
from firmware_sim.sensor import DEFAULT_SENSORS

__all__ = [
    "DEFAULT_START",
    "FAMILIES",
    "KINDS",
    "POLLUTANTS",
    "PROFILES",
    "SourceKind",
    "World",
    "WorldError",
    "build_world",
    "expected_passes_per_day",
    "generate_world",
]

FAMILIES = ("grid", "radial", "irregular", "spurs", "mixed", "builtin-loop")
# Every channel the analysis looks for hotspots in: all but the weather.
POLLUTANTS = tuple(ch for ch in CHANNELS if ch not in ("temperature", "humidity"))
PROFILES = ("default-multi", "gasboard-f32")  # the shipped box profiles
DEFAULT_START = datetime(2026, 3, 2, tzinfo=timezone(timedelta(hours=8)))  # a Monday, 00:00
TIMEZONE_H = 8.0
SIGMA_RANGE = (3.0, 30.0)  # source strength, in sensor-noise units
OFF_STREET_M = (10.0, 40.0)
PAIR_M = (150.0, 400.0)  # same-pollutant pairs, along the streets
PASS_RADIUS_M = 50.0  # a vehicle this close to a source passes it
PASSES_PER_DAY = (2.0, 4.0)  # the median source's passes a day, whole fleet
# The box reads low while its gas cells warm up after power-on: those minutes of a shift are not
# counted as patrol time.
WARMUP_S = max(s.warmup_s for s in DEFAULT_SENSORS.values())
_SHIFT_CAP_H = {1: 6.0, 2: 4.5, 3: 3.5}  # longest shift, by shifts a day
_WEEKDAYS = (0, 1, 2, 3, 4)
_WEEKEND = (5, 6)


class WorldError(EnvpatrolError, ValueError):
    """A world that cannot be generated: which argument (`subject`), what is wrong."""


@dataclass(frozen=True, slots=True)
class SourceKind:
    """A kind of source as patrols meet it: what it emits (the first channel strongest), the
    geometries and schedules it comes in, its decay length, and its working hours (local
    minutes) for a working-hours schedule."""

    name: str
    channels: tuple[str, ...]
    geometries: tuple[str, ...]  # point, line, area
    schedules: tuple[str, ...]  # always, meals, hours, share
    decay_m: tuple[float, float]
    hours: tuple[tuple[int, int], ...] = ()


KINDS: tuple[SourceKind, ...] = (
    SourceKind(  # a construction site or a demolition
        "dust",
        channels=("pm10", "pm25"),
        geometries=("point", "area"),
        schedules=("always", "hours"),
        decay_m=(25, 50),
        hours=((7 * 60, 12 * 60), (13 * 60, 18 * 60)),
    ),
    SourceKind(  # a congested junction or street
        "traffic",
        channels=("no2", "co", "noise"),
        geometries=("point", "line"),
        schedules=("always", "share"),
        decay_m=(30, 60),
    ),
    SourceKind(  # a restaurant, or a street of them
        "cooking",
        channels=("cooking_fume", "odor", "pm25"),
        geometries=("point", "line"),
        schedules=("meals",),
        decay_m=(20, 40),
    ),
    SourceKind(  # a paint shop, a furniture workshop, a car body shop
        "solvent",
        channels=("tvoc", "hcho", "odor"),
        geometries=("point", "area"),
        schedules=("hours", "share"),
        decay_m=(20, 40),
        hours=((8 * 60 + 30, 17 * 60 + 30),),
    ),
    SourceKind(  # a refuse transfer station: collection rounds morning and evening
        "waste",
        channels=("odor", "tvoc"),
        geometries=("point", "area"),
        schedules=("always", "hours", "share"),
        decay_m=(25, 50),
        hours=((5 * 60, 9 * 60), (16 * 60, 19 * 60)),
    ),
    SourceKind(  # a small works burning coal or oil
        "industrial",
        channels=("so2", "co", "no2"),
        geometries=("point", "area"),
        schedules=("always", "hours"),
        decay_m=(40, 80),
        hours=((6 * 60, 22 * 60),),
    ),
    SourceKind(  # a gas-fired boiler house
        "heating",
        channels=("co2", "no2"),
        geometries=("point",),
        schedules=("always", "share"),
        decay_m=(30, 60),
    ),
    SourceKind(  # a metal workshop: arc welding makes ozone
        "welding",
        channels=("o3", "no2", "pm25"),
        geometries=("point", "area"),
        schedules=("hours", "share"),
        decay_m=(20, 40),
        hours=((8 * 60, 12 * 60), (13 * 60 + 30, 17 * 60 + 30)),
    ),
    SourceKind(  # trees in bloom along a street or in a park
        "vegetation",
        channels=("pollen",),
        geometries=("area", "line"),
        schedules=("always",),
        decay_m=(40, 80),
    ),
)


@dataclass(frozen=True, slots=True)
class World:
    """A generated world: the Scenario and what it was built from."""

    family: str
    seed: int
    scenario: Scenario
    network: StreetNetwork | None  # None for the built-in loop
    walks: Mapping[str, PatrolRoute]  # the routes' walks through the network, by route name
    passes_per_day: Mapping[str, float]  # expected passes of each source a day, whole fleet
    pairs: tuple[tuple[str, str], ...] = ()  # sources placed as same-pollutant pairs


def generate_world(
    family: str,
    seed: int,
    *,
    null: bool = False,
    days: int = 21,
    start: datetime | None = None,
) -> Scenario:
    """The Scenario of world `seed` of `family` (one of FAMILIES), `days` days from `start`
    (default: DEFAULT_START); the same arguments always give the same Scenario."""
    return build_world(family, seed, null=null, days=days, start=start).scenario


def build_world(
    family: str,
    seed: int,
    *,
    null: bool = False,
    days: int = 21,
    start: datetime | None = None,
) -> World:
    """The world `generate_world` makes, with its network, walks, expected passes and pairs."""
    if family not in FAMILIES:
        raise WorldError("family", f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise WorldError("days", f"must be a whole number of days >= 1, got {days!r}")
    begin = DEFAULT_START if start is None else start
    if begin.tzinfo is None:
        raise WorldError("start", "must carry a UTC offset")
    begin = begin.astimezone(UTC)
    if family == "builtin-loop":
        world = _builtin_world(seed, days, begin)
    else:
        world = _network_world(family, seed, days, begin)
    if null:
        scenario = replace(
            world.scenario,
            name=f"{world.scenario.name}-null",
            description=f"{world.scenario.description}; null: no sources",
            sources=(),
        )
        world = replace(world, scenario=scenario, passes_per_day={}, pairs=())
    return world


def _scenario(
    name: str,
    description: str,
    seed: int,
    days: int,
    start: datetime,
    routes: dict[str, RouteSpec],
    vehicles: tuple[VehicleSpec, ...],
    sources: tuple[Source, ...],
) -> Scenario:
    return Scenario(
        name=name,
        description=description,
        seed=seed,
        start=start,
        duration_h=24.0 * days,
        timezone_h=TIMEZONE_H,
        routes=routes,
        vehicles=vehicles,
        background=BackgroundSpec(),
        sources=sources,
        sensors=dict(DEFAULT_SENSORS),
        gps=GpsSpec(),
        faults=FaultSpec(),
    )


# ---------------------------------------------------------------------------------------------
# Worlds on a generated network


@dataclass(frozen=True, slots=True)
class _Placed:
    """A source being placed, in local metres."""

    kind: SourceKind
    at: Point
    end: Point | None
    radius_m: float
    foot: StreetPoint  # where on the street it stands (a line: its first end)
    channels: tuple[str, ...]


@dataclass
class _Shift:
    """A shift pattern being planned for one vehicle."""

    weekdays: tuple[int, ...] | None
    share: float
    jitter_min: float
    routes: tuple[str, ...]
    lap_s: float = 0.0  # one lap, averaged over its routes
    rates: list[float] = field(default_factory=list)  # passes of each source per patrol second
    start_min: int = 0
    duration_min: int = 0


@dataclass
class _Vehicle:
    name: str
    profile: str
    speed: SpeedProfile
    routes: tuple[str, ...]
    shifts: list[_Shift] = field(default_factory=list)


def _network_world(family: str, seed: int, days: int, start: datetime) -> World:
    rng = random.Random(f"world:{family}:{seed}:network")
    shape = rng.choice(SHAPES) if family == "mixed" else family
    origin = (round(rng.uniform(39.85, 39.98), 4), round(rng.uniform(116.30, 116.50), 4))
    network = build_network(shape, rng, origin)

    rng = random.Random(f"world:{family}:{seed}:fleet")
    vehicles = _fleet(rng)
    walks_by_vehicle = fleet_routes(network, rng, [v.routes for v in vehicles])
    walks = {w.name: w for ws in walks_by_vehicle for w in ws}
    route_specs = {
        name: RouteSpec(name, points=route_points(network, walk), closed=True)
        for name, walk in walks.items()
    }
    built = {
        name: Route(name, list(spec.points or ()), closed=True)
        for name, spec in route_specs.items()
    }

    rng = random.Random(f"world:{family}:{seed}:sources")
    placed, pairs = _place_sources(rng, network, list(walks.values()))
    sources = tuple(_source(rng, network, p, i) for i, p in enumerate(placed))
    names = [s.name for s in sources]

    rng = random.Random(f"world:{family}:{seed}:shifts")
    _plan_shifts(rng, vehicles, _Laps(built, sources, network.origin))
    specs = tuple(
        VehicleSpec(
            name=v.name,
            route=v.routes[0],
            profile=v.profile,
            shifts=tuple(_shift_spec(s, v.routes) for s in v.shifts),
            offset_m=float(round(rng.uniform(0.0, built[v.routes[0]].length_m))),
            speed=v.speed,
        )
        for v in vehicles
    )
    description = (
        f"generated {shape} network, {len(specs)} vehicle{'s' if len(specs) > 1 else ''}, "
        f"{len(sources)} sources"
    )
    scenario = _scenario(
        f"{family}-{seed}", description, seed, days, start, route_specs, specs, sources
    )
    return World(
        family,
        seed,
        scenario,
        network,
        walks,
        expected_passes_per_day(scenario),
        tuple((names[a], names[b]) for a, b in pairs),
    )


def _fleet(rng: random.Random) -> list[_Vehicle]:
    count = rng.choices((1, 2, 3, 4, 5), (2, 3, 3, 2, 1))[0]
    out = []
    for i in range(count):
        name = f"patrol-{i + 1:02d}"
        profile = PROFILES[0] if i == 0 else rng.choice(PROFILES)
        speed = SpeedProfile(cruise_mps=round(rng.uniform(4.5, 7.0), 1))
        routes: tuple[str, ...] = (f"route-{i + 1:02d}",)
        if rng.random() < 0.4:
            routes = (*routes, f"route-{i + 1:02d}b")
        out.append(_Vehicle(name, profile, speed, routes))
    return out


# ---------------------------------------------------------------------------------------------
# Sources


def _place_sources(
    rng: random.Random, network: StreetNetwork, walks: Sequence[PatrolRoute]
) -> tuple[list[_Placed], list[tuple[int, int]]]:
    """3-8 sources on or beside the driven streets, and which of them are placed as pairs."""
    driven = sorted({arc // 2 for w in walks for arc in w.arcs})
    count = rng.randint(3, 8)
    want_pairs = 0
    if rng.random() < 0.65:
        want_pairs = 2 if count >= 6 and rng.random() < 0.3 else 1
    placed: list[_Placed] = []
    _place_singles(rng, network, driven, placed, count - want_pairs)
    pairs: list[tuple[int, int]] = []
    anchors = [i for i, p in enumerate(placed) if p.end is None]
    rng.shuffle(anchors)
    for anchor in anchors[:want_pairs]:
        partner = _place_partner(rng, network, driven, placed, anchor)
        if partner is not None:
            pairs.append((anchor, len(placed)))
            placed.append(partner)
    _place_singles(rng, network, driven, placed, count)  # for partners that found no room
    if len(placed) < 3:
        raise WorldError("seed", f"found room for {len(placed)} sources only")
    return placed, pairs


def _place_singles(
    rng: random.Random,
    network: StreetNetwork,
    streets: Sequence[int],
    placed: list[_Placed],
    count: int,
) -> None:
    """Sources added until there are `count`, each kind favouring channels not yet emitted, and
    another kind tried when one finds no room."""
    for _ in range(400):
        if len(placed) >= count:
            return
        used = {ch for p in placed for ch in p.channels}
        kind = _pick_kind(rng, used)
        for _try in range(40):
            candidate = _draw_place(rng, network, streets, kind, rng.choice(kind.geometries))
            if candidate is not None and _apart(candidate, placed, None):
                placed.append(candidate)
                break


def _pick_kind(rng: random.Random, used: set[str]) -> SourceKind:
    """A kind, favouring those that bring channels the world has no source of yet."""
    weights = [1.0 + 3.0 * len(set(k.channels) - used) for k in KINDS]
    return rng.choices(KINDS, weights)[0]


def _draw_place(
    rng: random.Random,
    network: StreetNetwork,
    streets: Sequence[int],
    kind: SourceKind,
    geometry: str,
    foot: StreetPoint | None = None,
) -> _Placed | None:
    """A source of `kind` on a street (drawn by length, or at `foot`), on it or 10-40 m off it,
    checked to stand nearest to its own street; None when it does not fit there."""
    if foot is None:
        street = rng.choices(streets, [network.length_m(s) for s in streets])[0]
        length = network.length_m(street)
        t = rng.uniform(0.0, length)
    else:
        street, t = foot.street, foot.offset_m
        length = network.length_m(street)
    off = rng.random() < 0.65  # some land on-street: near a junction there is no room
    radius = float(round(rng.uniform(15.0, 50.0))) if geometry == "area" else 0.0
    span = 0.0
    if geometry == "line":
        if length < 90.0:
            return None
        span = rng.uniform(60.0, min(200.0, length - 20.0))
        t = min(t, length - span)
    margin = 45.0 if off else 0.0  # off the street, but not onto a cross street
    if t < margin or t + span > length - margin:
        off = False
    distance = float(round(rng.uniform(*OFF_STREET_M))) if off else 0.0
    dx, dy = network.direction(street)
    side = rng.choice((-1.0, 1.0))
    shift = (distance + radius if off else 0.0) * side
    ax, ay = network.point_on(StreetPoint(street, t))
    at = (ax - dy * shift, ay + dx * shift)
    end = None
    if geometry == "line":
        bx, by = network.point_on(StreetPoint(street, t + span))
        end = (bx - dy * shift, by + dx * shift)
    for point in (at,) if end is None else (at, end):
        nearest, d = nearest_street_point(network, point)
        if off and (nearest.street != street or abs(d - abs(shift)) > 0.5):
            return None
    return _Placed(kind, at, end, radius, StreetPoint(street, t), kind.channels)


def _gap_m(a: _Placed, b: _Placed) -> float:
    """The distance between two sources' geometries, edge to edge."""
    if a.end is None and b.end is None:
        d = math.hypot(a.at[0] - b.at[0], a.at[1] - b.at[1])
    elif a.end is None:
        assert b.end is not None
        d = segment_distance_m(a.at, b.at, b.end)
    elif b.end is None:
        d = segment_distance_m(b.at, a.at, a.end)
    else:
        d = min(
            segment_distance_m(a.at, b.at, b.end),
            segment_distance_m(a.end, b.at, b.end),
            segment_distance_m(b.at, a.at, a.end),
            segment_distance_m(b.end, a.at, a.end),
        )
    return max(0.0, d - a.radius_m - b.radius_m)


def _apart(candidate: _Placed, placed: Sequence[_Placed], partner: int | None) -> bool:
    """Sources sharing a pollutant stay 150 m apart (100 m for a placed pair), others 50 m."""
    for i, other in enumerate(placed):
        shared = set(candidate.channels) & set(other.channels)
        need = (100.0 if i == partner else PAIR_M[0]) if shared else 50.0
        if _gap_m(candidate, other) < need:
            return False
    return True


def _place_partner(
    rng: random.Random,
    network: StreetNetwork,
    streets: Sequence[int],
    placed: Sequence[_Placed],
    anchor: int,
) -> _Placed | None:
    """A second source sharing a pollutant with `placed[anchor]`, 150-400 m from it along the
    streets: the same kind, or another kind emitting one of its channels."""
    first = placed[anchor]
    kind = first.kind
    if rng.random() >= 0.6:
        others = [
            k
            for k in KINDS
            if k is not first.kind and set(k.channels) & set(kind.channels) and _compact(k)
        ]
        kind = rng.choice(others) if others else kind
    geometries = [g for g in kind.geometries if g != "line"]
    along = StreetDistances(network, first.foot)
    for _ in range(80):
        street = rng.choice(streets)
        foot = StreetPoint(street, rng.uniform(0.0, network.length_m(street)))
        if not PAIR_M[0] <= along(foot) <= PAIR_M[1]:
            continue
        candidate = _draw_place(rng, network, streets, kind, rng.choice(geometries), foot)
        if candidate is not None and _apart(candidate, placed, anchor):
            return candidate
    return None


def _compact(kind: SourceKind) -> bool:
    return any(g != "line" for g in kind.geometries)


def _schedule(rng: random.Random, kind: SourceKind) -> Schedule:
    name = rng.choice(kind.schedules)
    days = round(rng.uniform(0.3, 0.95), 2) if rng.random() < 0.35 else 1.0
    if name == "always":
        return Schedule(days=days)
    if name == "meals":
        moved = rng.choice((-30, -15, 0, 0, 15, 30))
        meals = tuple((round(a * 60) + moved, round(b * 60) + moved) for a, b in MEAL_TIMES)
        return Schedule("meals", _hours(meals), days=days)
    if name == "hours":
        moved = 15 * rng.randint(-4, 4)
        return Schedule(
            "meals", _hours(tuple((a + moved, b + moved) for a, b in kind.hours)), days=days
        )
    return Schedule(
        "share",
        share=round(rng.uniform(0.3, 0.8), 2),
        window_min=rng.choice((15.0, 30.0, 60.0)),
        days=days,
    )


def _hours(minutes: tuple[tuple[int, int], ...]) -> tuple[tuple[float, float], ...]:
    """Local minutes as the hours a schedule keeps: h + m / 60, as a scenario file's 'HH:MM'
    reads."""
    return tuple((a // 60 + a % 60 / 60, b // 60 + b % 60 / 60) for a, b in minutes)


def _source(rng: random.Random, network: StreetNetwork, p: _Placed, index: int) -> Source:
    k = math.exp(rng.uniform(math.log(SIGMA_RANGE[0]), math.log(SIGMA_RANGE[1])))
    amplitude = {}
    for i, ch in enumerate(p.channels):
        strength = k if i == 0 else max(SIGMA_RANGE[0], k * rng.uniform(0.5, 1.0))
        amplitude[ch] = float(f"{strength * NOISE_SIGMA[ch]:.4g}")
    lat, lon = network.wgs84(p.at)
    return Source(
        name=f"{p.kind.name}-{index + 1:02d}",
        kind=p.kind.name,
        lat=lat,
        lon=lon,
        amplitude=amplitude,
        decay_m=float(round(rng.uniform(*p.kind.decay_m))),
        end=None if p.end is None else network.wgs84(p.end),
        schedule=_schedule(rng, p.kind),
        radius_m=p.radius_m,
    )


# ---------------------------------------------------------------------------------------------
# Shifts and passes


def lap_time_s(route: Route, speed: SpeedProfile) -> float:
    """The expected time to drive one lap of `route`: cruising (each leg at cruise x U(1 - s,
    1 + s)), stops at a share of the junctions, and idling stands now and then."""
    return _lap_time(route.length_m, len(route.junctions()), speed)


def _lap_time(length_m: float, junctions: int, speed: SpeedProfile) -> float:
    s = speed.cruise_spread
    slowness = 1.0 if s == 0 else math.log((1 + s) / (1 - s)) / (2 * s)  # E[1 / U]
    moving = length_m / speed.cruise_mps * slowness
    stops = junctions * speed.junction_stop_share * sum(speed.junction_stop_s) / 2
    idle = sum(speed.idle_s) / 2
    every = sum(speed.idle_every_s) / 2
    return (moving + stops) * (every + idle) / every if every > 0 else moving + stops


def _targets(source: Source, origin: Point) -> list[Point]:
    """Points standing for a source's geometry: its place, or its line every 25 m."""
    a = to_local(origin, source.lat, source.lon)
    if source.end is None:
        return [a]
    b = to_local(origin, *source.end)
    steps = max(1, math.ceil(math.hypot(b[0] - a[0], b[1] - a[1]) / 25.0))
    return [
        (a[0] + (b[0] - a[0]) * i / steps, a[1] + (b[1] - a[1]) * i / steps)
        for i in range(steps + 1)
    ]


def _route_of(spec: RouteSpec) -> Route:
    if spec.builtin is not None:
        return BUILTIN_ROUTES[spec.builtin]
    if spec.points is None:
        raise WorldError(f"routes.{spec.name}", "only inline or built-in routes are estimated")
    return Route(spec.name, list(spec.points), closed=spec.closed)


class _Laps:
    """What passes depend on, route by route: its length, its junctions, and how many times a lap
    passes each source."""

    def __init__(self, routes: Mapping[str, Route], sources: Sequence[Source], origin: Point):
        self.length = {name: r.length_m for name, r in routes.items()}
        self.junctions = {name: len(r.junctions()) for name, r in routes.items()}
        self.visits: dict[str, list[int]] = {}
        targets = [(_targets(s, origin), PASS_RADIUS_M + s.radius_m) for s in sources]
        for name, route in routes.items():
            loop = [to_local(origin, lat, lon) for lat, lon in _lap(route)]
            self.visits[name] = [visits(loop, points, radius) for points, radius in targets]

    def seconds(self, route: str, speed: SpeedProfile) -> float:
        return _lap_time(self.length[route], self.junctions[route], speed)

    def rates(self, routes: Sequence[str], speed: SpeedProfile) -> list[float]:
        """Passes of each source per second of patrol, the day's route drawn from `routes`."""
        per_route = [[v / self.seconds(r, speed) for v in self.visits[r]] for r in routes]
        return [statistics.fmean(column) for column in zip(*per_route, strict=True)]


def _lap(route: Route) -> list[Point]:
    """One lap's waypoints (lat, lon), back where it started: round a loop, or out and back."""
    if route.closed:
        return [*route.waypoints, route.waypoints[0]]
    return [*route.waypoints, *reversed(route.waypoints[:-1])]


def _days_share(weekdays: tuple[int, ...] | None, share: float) -> float:
    return share * (7 if weekdays is None else len(set(weekdays))) / 7


def expected_passes_per_day(scenario: Scenario) -> dict[str, float]:
    """Each source's expected passes a day by the whole fleet: for every shift pattern, the share
    of days it is worked, times its patrol time (after the boxes' warm-up), times the passes per
    second on its routes (averaged over the routes it picks from). The routes must be inline or
    built-in; a vehicle without shifts patrols around the clock."""
    if not scenario.sources:
        return {}
    first = next(iter(scenario.routes.values()))
    origin = _route_of(first).waypoints[0]
    routes = {name: _route_of(spec) for name, spec in scenario.routes.items()}
    laps = _Laps(routes, scenario.sources, origin)
    totals = [0.0] * len(scenario.sources)
    for vehicle in scenario.vehicles:
        patterns = vehicle.shifts or (ShiftSpec(time(0, 0), time(0, 0)),)
        for shift in patterns:
            minutes = (
                shift.end.hour * 60 + shift.end.minute - shift.start.hour * 60 - shift.start.minute
            ) % (24 * 60) or 24 * 60
            patrol_s = max(0.0, minutes * 60.0 - WARMUP_S)
            f = _days_share(shift.weekdays, shift.share)
            rates = laps.rates(shift.routes or (vehicle.route,), vehicle.speed)
            for i, rate in enumerate(rates):
                totals[i] += f * patrol_s * rate
    return {s.name: round(t, 3) for s, t in zip(scenario.sources, totals, strict=True)}


def _plan_shifts(rng: random.Random, vehicles: Sequence[_Vehicle], laps: _Laps) -> None:
    """Shift patterns for every vehicle, with lengths that give the median source 2-4 passes a
    day. Each shift drives at least one lap; longer shifts stretch all alike. When one lap each
    is already too much, the busiest vehicles drop shifts, and if that is not enough, every shift
    is worked on fewer days."""
    target = rng.uniform(*PASSES_PER_DAY)
    for v in vehicles:
        v.shifts = _patterns(rng, v)
        for shift in v.shifts:
            shift.lap_s = statistics.fmean(laps.seconds(r, v.speed) for r in shift.routes)
            shift.rates = laps.rates(shift.routes, v.speed)
    while True:
        middle = _median_passes(vehicles)
        stretch = target / middle if middle > 0 else 1.0
        busiest = max(len(v.shifts) for v in vehicles)
        if stretch >= 1.0 or busiest == 1:
            break
        rng.choice([v for v in vehicles if len(v.shifts) == busiest]).shifts.pop()
    for v in vehicles:
        cap_s = _SHIFT_CAP_H[max(_per_day(v.shifts).values())] * 3600.0 - WARMUP_S
        for s in v.shifts:
            if stretch < 1.0:
                s.share = max(0.1, round(s.share * stretch, 2))
                patrol_s = s.lap_s
            else:
                patrol_s = min(cap_s, stretch * s.lap_s)
            s.duration_min = 5 * math.ceil((patrol_s + WARMUP_S) / 300.0)
        _lay_out(rng, v.shifts)


def _median_passes(vehicles: Sequence[_Vehicle]) -> float:
    """The median source's passes a day when every shift drives one lap."""
    every = [s for v in vehicles for s in v.shifts]
    per_source = [
        math.fsum(_days_share(s.weekdays, s.share) * s.lap_s * s.rates[i] for s in every)
        for i in range(len(every[0].rates))
    ]
    return statistics.median(per_source) if per_source else 0.0


def _patterns(rng: random.Random, v: _Vehicle) -> list[_Shift]:
    """One of: a shift every day; a weekday and a weekend shift; two shifts on weekdays (and
    perhaps one at weekends); three shifts every day."""
    pattern = rng.choice(("daily", "week-weekend", "two-a-day", "three-a-day"))

    def shift(days: tuple[int, ...] | None, share: tuple[float, float]) -> _Shift:
        return _Shift(days, round(rng.uniform(*share), 2), float(rng.randint(5, 25)), v.routes)

    if pattern == "daily":
        return [shift(None, (0.8, 1.0))]
    if pattern == "week-weekend":
        return [shift(_WEEKDAYS, (0.85, 1.0)), shift(_WEEKEND, (0.4, 0.9))]
    if pattern == "two-a-day":
        out = [shift(_WEEKDAYS, (0.85, 1.0)), shift(_WEEKDAYS, (0.7, 1.0))]
        if rng.random() < 0.5:
            out.append(shift(_WEEKEND, (0.4, 0.9)))
        return out
    return [shift(None, (0.75, 1.0)) for _ in range(3)]


def _per_day(shifts: Sequence[_Shift]) -> dict[tuple[int, ...] | None, int]:
    counts: dict[tuple[int, ...] | None, int] = {}
    for s in shifts:
        counts[s.weekdays] = counts.get(s.weekdays, 0) + 1
    return counts


_SLOTS = (
    (6 * 60 + 30, 9 * 60),
    (10 * 60 + 30, 12 * 60 + 30),
    (14 * 60, 16 * 60),
    (17 * 60, 19 * 60 + 30),
)


def _lay_out(rng: random.Random, shifts: Sequence[_Shift]) -> None:
    """Start times: the shifts of one kind of day take distinct slots of the day (morning,
    midday, afternoon, evening), in time order, 45 minutes apart at least and done by 23:00, in
    whole 5 minutes."""
    by_days: dict[tuple[int, ...] | None, list[_Shift]] = {}
    for s in shifts:
        by_days.setdefault(s.weekdays, []).append(s)
    for group in by_days.values():
        slots = sorted(rng.sample(_SLOTS, len(group)))
        free = 0
        for s, (early, late) in zip(group, slots, strict=True):
            start = max(5 * rng.randint(early // 5, late // 5), free)
            s.start_min = min(start, 23 * 60 - s.duration_min)
            free = s.start_min + s.duration_min + 45


def _shift_spec(s: _Shift, own: tuple[str, ...]) -> ShiftSpec:
    end = s.start_min + s.duration_min
    return ShiftSpec(
        start=time(s.start_min // 60, s.start_min % 60),
        end=time(end // 60 % 24, end % 60),
        weekdays=s.weekdays,
        share=s.share,
        jitter_min=s.jitter_min,
        routes=s.routes if len(own) > 1 else (),
    )


# ---------------------------------------------------------------------------------------------
# The built-in loop


_LOOP_KINDS: tuple[tuple[str, tuple[str, ...], Schedule, float], ...] = (
    ("dust", ("pm10", "pm25"), Schedule(), 35.0),
    ("traffic", ("no2", "co", "noise"), Schedule(), 45.0),
    ("cooking", ("cooking_fume", "odor", "pm25"), Schedule("meals", MEAL_TIMES), 30.0),
)
_LOOP_GAP_M = 600.0
_LOOP_LAPS = 2


def _builtin_world(seed: int, days: int, start: datetime) -> World:
    """One vehicle, two laps of the Shuangjing loop a day starting between 08:00 and 18:00, and a
    dust, a traffic and a cooking source on the loop at least 600 m apart along it."""
    rng = random.Random(f"world:builtin-loop:{seed}")
    loop = BUILTIN_ROUTES["shuangjing-loop"]
    while True:
        spots = sorted(rng.uniform(0.0, loop.length_m) for _ in _LOOP_KINDS)
        gaps = [b - a for a, b in itertools.pairwise(spots)]
        gaps.append(loop.length_m - spots[-1] + spots[0])
        if min(gaps) >= _LOOP_GAP_M:
            break
    rng.shuffle(spots)
    sources = []
    for (kind, channels, schedule, decay), along in zip(_LOOP_KINDS, spots, strict=True):
        k = math.exp(rng.uniform(math.log(SIGMA_RANGE[0]), math.log(SIGMA_RANGE[1])))
        point = loop.at(along)
        sources.append(
            Source(
                name=f"{kind}-{seed}",
                kind=kind,
                lat=round(point.lat, 7),
                lon=round(point.lon, 7),
                amplitude={ch: float(f"{k * NOISE_SIGMA[ch]:.4g}") for ch in channels},
                decay_m=decay,
                schedule=schedule,
            )
        )
    speed = SpeedProfile()
    minutes = 5 * math.ceil((_LOOP_LAPS * lap_time_s(loop, speed) + WARMUP_S) / 300.0)
    opening = 13 * 60  # with the jitter: starts from 08:00 to 18:00
    shift = ShiftSpec(
        start=time(opening // 60, opening % 60),
        end=time((opening + minutes) // 60, (opening + minutes) % 60),
        jitter_min=300.0,
    )
    vehicle = VehicleSpec(
        name="patrol-01",
        route="loop",
        profile=PROFILES[0],
        shifts=(shift,),
        offset_m=float(round(rng.uniform(0.0, loop.length_m))),
        speed=speed,
    )
    scenario = _scenario(
        f"builtin-loop-{seed}",
        "the built-in Shuangjing loop: one vehicle, a dust, a traffic and a cooking source",
        seed,
        days,
        start,
        {"loop": RouteSpec("loop", builtin=loop.name)},
        (vehicle,),
        tuple(sources),
    )
    return World("builtin-loop", seed, scenario, None, {}, expected_passes_per_day(scenario))
