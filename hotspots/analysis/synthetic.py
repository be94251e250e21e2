"""Synthetic passes over a street grid with known sources: ground truth for quick checks.

A fast stand-in for the simulator's scenarios, at the level of passes rather than readings:
vehicles drive every street of a rectangular street grid, one pass per cell visited; a pass's
value is the background at its time plus the sources' contribution at the cell centre plus
Gaussian pass noise. It checks the statistics (does the detector find injected sources, does it
stay quiet on a null field) in milliseconds; sensor lag, GPS error and the pass builder are the
evaluation harness's business, which runs the simulator's readings through the real pipeline.

- background: a diurnal cycle plus a slowly varying random process per day (a random walk
  smoothed over ~1 h), the same everywhere;
- sources: points with an amplitude at the source, decay exp(-d / decay_m), and a schedule:
  always on, at meal times (or lunch only), on during a given share of trips, or on during whole days, a given
  share of them (`OnDays`);
- optionally a shared error per cell and day (`cell_day_noise`: what passes of one place on one
  day have in common beyond the background), and values rounded to a register step per channel
  (`quantum`, as a box with integer registers reports them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

import h3
import numpy as np

from edge.units import CHANNELS
from hotspots.analysis.grouping import FloatArray, IntArray
from hotspots.analysis.passes import PassTable
from ingest.passes import ChannelStats, TrackPass

EARTH_RADIUS_M = 6_371_008.8
SHUANGJING = (39.893, 116.462)  # WGS-84, the seed project's sub-district
MEALS_MIN = ((10 * 60 + 30, 13 * 60 + 30), (16 * 60 + 30, 20 * 60))  # local minutes


@dataclass(frozen=True, slots=True)
class OnDays:
    """A schedule: on for whole days, a seeded `share` of the world's days."""

    share: float


@dataclass(frozen=True, slots=True)
class Source:
    lat: float
    lon: float
    pollutant: str
    amplitude: float  # added at the source, in the pollutant's unit
    decay_m: float = 30.0
    # "always", "meals", "lunch" (the first meal window), a share of trips, or OnDays
    schedule: str | float | OnDays = "always"


@dataclass(frozen=True, slots=True)
class SyntheticWorld:
    """A street grid, the fleet that drives it, the background and the sources to find."""

    origin: tuple[float, float] = SHUANGJING
    resolution: int = 11
    streets_ns: int = 4  # north-south streets
    streets_ew: int = 4
    street_spacing_m: float = 250.0
    vehicles: int = 2
    days: int = 10
    trips_per_day: int = 2  # per vehicle; each trip drives every street once
    first_day: datetime = datetime(2026, 3, 2, tzinfo=UTC)
    trip_start_h: float = 1.0  # UTC hour of the first trip (09:00 in Beijing)
    trip_every_h: float = 3.0
    cell_seconds: float = 10.0  # time from one cell to the next
    pollutants: tuple[str, ...] = ("pm25",)
    pass_noise: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({"pm25": 3.0, "no2": 4.0, "noise": 1.5})
    )
    base_level: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({"pm25": 35.0, "no2": 40.0, "noise": 62.0})
    )
    drift: Mapping[str, float] = field(  # size of the slowly varying background
        default_factory=lambda: MappingProxyType({"pm25": 10.0, "no2": 8.0, "noise": 2.0})
    )
    sources: tuple[Source, ...] = ()
    timezone_offset_h: float = 8.0  # local time for meal schedules (Beijing)
    # per pollutant: sigma of an error shared by the passes of one cell on one day
    cell_day_noise: Mapping[str, float] = field(default_factory=dict)
    # per pollutant: register step the values are rounded to (none: not rounded)
    quantum: Mapping[str, float] = field(default_factory=dict)
    seed: int = 1


def offset(origin: tuple[float, float], east_m: float, north_m: float) -> tuple[float, float]:
    """The WGS-84 point east_m / north_m from origin (local equirectangular approximation)."""
    lat0, lon0 = origin
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    dlon = math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat0))))
    return lat0 + dlat, lon0 + dlon


def distance_m(lat1: FloatArray, lon1: FloatArray, lat2: float, lon2: float) -> FloatArray:
    """Great-circle distance (haversine), vectorised over the first point."""
    p1 = np.radians(lat1)
    p2 = math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2) - np.radians(lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * math.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a)), dtype=np.float64)


def street_cells(world: SyntheticWorld) -> list[IntArray]:
    """The cells of each street in driving order (H3 integers)."""
    half_ns = (world.streets_ns - 1) * world.street_spacing_m / 2
    half_ew = (world.streets_ew - 1) * world.street_spacing_m / 2
    streets: list[IntArray] = []
    step = 5.0
    along_ns = np.arange(-half_ew, half_ew + step, step)
    along_ew = np.arange(-half_ns, half_ns + step, step)
    for i in range(world.streets_ns):
        east = -half_ns + i * world.street_spacing_m
        streets.append(_path(world, np.full(len(along_ns), east), along_ns))
    for j in range(world.streets_ew):
        north = -half_ew + j * world.street_spacing_m
        streets.append(_path(world, along_ew, np.full(len(along_ew), north)))
    return streets


def _path(world: SyntheticWorld, east: FloatArray, north: FloatArray) -> IntArray:
    cells = [
        h3.str_to_int(h3.latlng_to_cell(*offset(world.origin, e, n), world.resolution))
        for e, n in zip(east, north, strict=True)
    ]
    out = [cells[0]]
    out.extend(c for c in cells[1:] if c != out[-1])
    return np.array(out, dtype=np.int64)


def _source_on(
    source: Source, local_minute: IntArray, trip_draw: FloatArray, day_draw: FloatArray
) -> FloatArray:
    if isinstance(source.schedule, OnDays):
        return (day_draw < source.schedule.share).astype(np.float64)
    if source.schedule == "always":
        return np.ones(len(local_minute))
    if source.schedule in ("meals", "lunch"):
        on = np.zeros(len(local_minute), dtype=bool)
        for start, end in MEALS_MIN[:1] if source.schedule == "lunch" else MEALS_MIN:
            on |= (local_minute >= start) & (local_minute < end)
        return on.astype(np.float64)
    if isinstance(source.schedule, float):
        return (trip_draw < source.schedule).astype(np.float64)
    raise ValueError(f"unknown schedule {source.schedule!r}")


def generate(world: SyntheticWorld) -> PassTable:
    """The passes of every vehicle, day and trip of the world."""
    rng = np.random.default_rng(world.seed)
    streets = street_cells(world)
    route = np.concatenate(streets)
    per_trip = len(route)
    n_trips = world.vehicles * world.days * world.trips_per_day
    vehicle = np.repeat(np.arange(world.vehicles), world.days * world.trips_per_day)
    day = np.tile(np.repeat(np.arange(world.days), world.trips_per_day), world.vehicles)
    slot = np.tile(np.arange(world.trips_per_day), world.vehicles * world.days)
    base = world.first_day.timestamp()
    trip_start = (
        base
        + day * 86400.0
        + (world.trip_start_h + slot * world.trip_every_h) * 3600.0
        + vehicle * 97.0  # vehicles do not start in the same second
    )
    # Alternate directions: odd trips drive the route backwards.
    forward = np.arange(per_trip)
    cell = np.concatenate([route[forward if t % 2 == 0 else forward[::-1]] for t in range(n_trips)])
    start = np.repeat(trip_start, per_trip) + np.tile(forward * world.cell_seconds, n_trips)
    end = start + world.cell_seconds * 0.8
    trip_of_pass = np.repeat(np.arange(n_trips), per_trip)
    unique_cells, inverse = np.unique(cell, return_inverse=True)
    centres = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in unique_cells])
    local_seconds = (start + world.timezone_offset_h * 3600.0) % 86400.0
    local_minute = np.floor(local_seconds / 60.0).astype(np.int64)
    trip_draw = rng.uniform(size=n_trips)[trip_of_pass]
    day_of_pass = np.repeat(day, per_trip)
    cell_index = inverse.reshape(-1)
    values: dict[str, FloatArray] = {}
    for pollutant in world.pollutants:
        level = np.full(len(cell), world.base_level.get(pollutant, 10.0))
        level += _drift(rng, start, base, world.drift.get(pollutant, 0.0))
        for k, source in enumerate(world.sources):
            if source.pollutant != pollutant:
                continue
            d = distance_m(centres[:, 0], centres[:, 1], source.lat, source.lon)
            shape = source.amplitude * np.exp(-d / source.decay_m)
            day_draw = np.random.default_rng((world.seed, k)).uniform(size=world.days)
            on = _source_on(source, local_minute, trip_draw, day_draw[day_of_pass])
            level += shape[cell_index] * on
        level += rng.normal(0.0, world.pass_noise.get(pollutant, 1.0), len(cell))
        shared = world.cell_day_noise.get(pollutant, 0.0)
        if shared > 0:
            effect = rng.normal(0.0, shared, (len(unique_cells), world.days))
            level += effect[cell_index, day_of_pass]
        step = world.quantum.get(pollutant, 0.0)
        if step > 0:
            level = np.round(level / step) * step
        values[pollutant] = level
    return PassTable(
        vehicles=tuple(f"car-{i:02d}" for i in range(world.vehicles)),
        vehicle=np.repeat(vehicle, per_trip).astype(np.int64),
        cell=cell.astype(np.int64),
        start=start,
        end=end,
        values=values,
        counts={p: np.full(len(cell), 1, dtype=np.int64) for p in values},
    )


def _drift(rng: np.random.Generator, times: FloatArray, base: float, size: float) -> FloatArray:
    """Diurnal cycle plus a random walk over hourly knots, interpolated (correlation ~ hours)."""
    if size == 0:
        return np.zeros(len(times))
    hours = (times - base) / 3600.0
    knots = np.arange(math.floor(hours.min()) - 1, math.ceil(hours.max()) + 2)
    walk = np.cumsum(rng.normal(0.0, size / 3.0, len(knots)))
    walk -= np.mean(walk)
    diurnal = size * 0.5 * np.sin(2 * np.pi * (hours % 24) / 24.0)
    return np.asarray(np.interp(hours, knots, walk) + diurnal, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Match:
    true_positives: int
    false_positives: int
    false_negatives: int
    errors_m: tuple[float, ...]  # localisation error of each matched source


def as_stored(table: PassTable) -> list[TrackPass]:
    """Synthetic passes as the ingest stores them (one reading's statistics each), to seed a
    database for the hotspot job."""
    out = []
    for i in range(len(table)):
        stats = {}
        for channel, values in table.values.items():
            v = float(values[i])
            if not np.isnan(v):
                energy = v if CHANNELS[channel].energy_mean else None
                stats[channel] = ChannelStats(1, v, v, v, energy)
        out.append(
            TrackPass(
                vehicle=table.vehicles[int(table.vehicle[i])],
                cell=int(table.cell[i]),
                start=datetime.fromtimestamp(float(table.start[i]), UTC),
                end=datetime.fromtimestamp(float(table.end[i]), UTC),
                first_seq=i,
                last_seq=i,
                readings=1,
                stats=stats,
            )
        )
    return out


def match(
    found: Sequence[tuple[float, float]], truth: Sequence[Source], radius_m: float = 75.0
) -> Match:
    """Greedy one-to-one matching of detections (lat, lon) to sources within radius_m."""
    pairs = sorted(
        (float(distance_m(np.array([f[0]]), np.array([f[1]]), s.lat, s.lon)[0]), i, j)
        for i, f in enumerate(found)
        for j, s in enumerate(truth)
    )
    used_found: set[int] = set()
    used_truth: set[int] = set()
    errors: list[float] = []
    for d, i, j in pairs:
        if d > radius_m or i in used_found or j in used_truth:
            continue
        used_found.add(i)
        used_truth.add(j)
        errors.append(d)
    return Match(
        true_positives=len(errors),
        false_positives=len(found) - len(errors),
        false_negatives=len(truth) - len(errors),
        errors_m=tuple(errors),
    )
