"""A fleet-month of patrol readings, made with numpy and encoded as PostgreSQL binary COPY rows of
`reading` (the ingest's columns, `ingest.columns.COLUMNS`), for the API benchmark at fleet scale.

Pure: no database, no clock. Each vehicle patrols one of a few routes through Shuangjing
sub-district during a day shift (about 06:00-22:00 local) and is parked at its depot otherwise;
while patrolling it cruises at its own speed, stops briefly at lights and junctions, and now and
then stands idling for minutes. The box samples every `step_s` seconds day and night, as a box
powered from the vehicle does; readings of a vehicle standing still for a minute or more carry the
`stationary` flag, as the edge's quality rules set it. Values are the simulator's pollution field
(`firmware_sim.field`: background with diurnal cycle and slow drift, plus sources) with sensor
noise; positions carry a few metres of GNSS noise.
"""

from __future__ import annotations

import itertools
import math
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from h3.api import basic_int as h3i  # type: ignore[import-untyped]

from firmware_sim.field import (
    NOISE_SIGMA,
    SHUANGJING_SOURCES,
    PollutionField,
    Schedule,
    Source,
)
from firmware_sim.geo import EARTH_RADIUS_M, bearing_deg, haversine_m
from firmware_sim.route import SHUANGJING_LOOP, Route
from store.reading_columns import CHANNEL_COLUMNS, COLUMNS

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
PROFILE = "default-multi"
STATIONARY_SPEED_MPS = 0.5  # edge.quality.QualitySettings defaults
STATIONARY_S = 60.0
FloatArray = np.ndarray[tuple[int], np.dtype[np.float64]]
IntArray = np.ndarray[tuple[int], np.dtype[np.int64]]
BoolArray = np.ndarray[tuple[int], np.dtype[np.bool_]]
Matrix = np.ndarray[tuple[int, int], np.dtype[np.float64]]

# Routes on the streets of the sub-district besides the built-in loop: the loop driven the other
# way round, the middle street out and back, and a north-south track through the blocks.
ROUTES: tuple[Route, ...] = (
    SHUANGJING_LOOP,
    Route("shuangjing-loop-reverse", list(reversed(SHUANGJING_LOOP.waypoints))),
    Route(
        "middle-street",
        [
            (39.88990, 116.46185),
            (39.88990, 116.46500),
            (39.88985, 116.46880),
            (39.88980, 116.47460),
        ],
        closed=False,
    ),
    Route(
        "north-south",
        [(39.89365, 116.46800), (39.88980, 116.46880), (39.88590, 116.46900)],
        closed=False,
    ),
)

# Sources of the worked scenario plus two more on the extra routes, so a month has hotspots of
# several pollutants across the sub-district.
SOURCES: tuple[Source, ...] = (
    *SHUANGJING_SOURCES,
    Source(
        "demolition-middle-street",
        "dust",
        39.88990,
        116.46350,
        {"pm10": 150.0, "pm25": 45.0},
        decay_m=40.0,
        schedule=Schedule("share", share=0.7, window_min=60.0),
    ),
    Source(
        "canteen-north-south",
        "cooking",
        39.89180,
        116.46840,
        {"cooking_fume": 0.9, "odor": 8.0, "pm25": 20.0, "tvoc": 200.0},
        decay_m=30.0,
        schedule=Schedule("meals"),
    ),
)


@dataclass(frozen=True, slots=True)
class FleetSpec:
    start: datetime  # first UTC midnight of the month
    vehicles: int = 50
    days: int = 30
    step_s: int = 10
    resolution: int = 10
    seed: int = 7
    timezone_h: float = 8.0

    def __post_init__(self) -> None:
        if self.start.utcoffset() is None:
            raise ValueError("start needs a time zone")
        if not 1 <= self.vehicles <= 99:
            raise ValueError(f"vehicles must be 1..99 (names patrol-NN), got {self.vehicles}")
        if self.days < 1 or self.step_s < 1 or 86_400 % self.step_s:
            raise ValueError("days >= 1 and a step that divides a day are needed")

    @property
    def ticks_per_day(self) -> int:
        return 86_400 // self.step_s

    @property
    def readings(self) -> int:
        return self.vehicles * self.days * self.ticks_per_day

    def vehicle(self, v: int) -> str:
        return f"patrol-{v + 1:02d}"

    def day_start(self, day: int) -> datetime:
        return self.start + timedelta(days=day)


# --- motion --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteArrays:
    """A route's polyline as arrays, for walking many distances at once (as Route.at does)."""

    lat: FloatArray
    lon: FloatArray
    cumulative: FloatArray
    heading: FloatArray  # per segment
    length_m: float

    @classmethod
    def of(cls, route: Route) -> RouteArrays:
        points = list(route.waypoints)
        loop = [*points, points[0]] if route.closed else [*points, *reversed(points[:-1])]
        lengths = [haversine_m(*a, *b) for a, b in itertools.pairwise(loop)]
        headings = [bearing_deg(*a, *b) for a, b in itertools.pairwise(loop)]
        cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
        return cls(
            np.array([p[0] for p in loop]),
            np.array([p[1] for p in loop]),
            cumulative,
            np.array(headings),
            float(cumulative[-1]),
        )

    def at(self, distance_m: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Latitudes, longitudes and headings of the points at `distance_m` along the loop."""
        d = np.mod(distance_m, self.length_m)
        i = np.clip(np.searchsorted(self.cumulative, d, side="right") - 1, 0, len(self.heading) - 1)
        seg = self.cumulative[i + 1] - self.cumulative[i]
        f = np.where(seg > 0, (d - self.cumulative[i]) / np.where(seg > 0, seg, 1.0), 0.0)
        lat = self.lat[i] + (self.lat[i + 1] - self.lat[i]) * f
        lon = self.lon[i] + (self.lon[i + 1] - self.lon[i]) * f
        return lat, lon, self.heading[i]


def stationary(speed: FloatArray, step_s: float) -> BoolArray:
    """The edge's rule: a reading is stationary once the speed has stayed below 0.5 m/s for 60 s
    (counted from the first slow reading)."""
    slow = speed < STATIONARY_SPEED_MPS
    index = np.arange(len(speed))
    last_moving = np.maximum.accumulate(np.where(~slow, index, -1))
    still_for = (index - last_moving - 1) * step_s
    return slow & (still_for >= STATIONARY_S)


def patrol_speed(rng: np.random.Generator, n: int, on_patrol: BoolArray, step_s: int) -> FloatArray:
    """Speed per tick: cruise with variation, short stops at lights and junctions, idling every
    30-60 minutes for 2-10 minutes, zero while off patrol."""
    cruise = rng.uniform(4.5, 7.0)
    speed = np.clip(cruise * (1.0 + 0.15 * rng.standard_normal(n)), 1.0, None)
    ticks_per_min = 60 / step_s
    # short stops: 10-40 s, started at about 3 % of the ticks
    for stop in np.flatnonzero(rng.random(n) < 0.03):
        speed[stop : stop + int(rng.integers(1, 5))] = 0.0
    k = int(rng.uniform(30, 60) * ticks_per_min)
    while k < n:
        length = int(rng.uniform(2, 10) * ticks_per_min)
        speed[k : k + length] = 0.0
        k += length + int(rng.uniform(30, 60) * ticks_per_min)
    speed[~on_patrol] = 0.0
    reported = np.where(speed > 0, speed + 0.1 * rng.standard_normal(n), 0.15 * rng.random(n))
    return np.clip(reported, 0.0, None)


# --- values --------------------------------------------------------------------------------------


def background(field: PollutionField, start: datetime, ticks: int, step_s: int) -> Matrix:
    """Background of every channel (CHANNEL_COLUMNS order) at each tick, shape (ticks, channels):
    the field is evaluated once a minute and interpolated between."""
    minutes = math.ceil(ticks * step_s / 60) + 1
    grid = np.array(
        [
            [row[c] for c in CHANNEL_COLUMNS]
            for row in (field.background_at(start + timedelta(minutes=m)) for m in range(minutes))
        ]
    )
    at = np.arange(ticks) * step_s / 60.0
    return np.stack(
        [np.interp(at, np.arange(minutes), grid[:, j]) for j in range(grid.shape[1])], 1
    )


def source_distance(source: Source, lat: FloatArray, lon: FloatArray) -> FloatArray:
    """Distance in metres to a point or line source, on a local plane (metres across a
    sub-district)."""
    k = math.radians(1.0) * EARTH_RADIUS_M
    c = math.cos(math.radians(source.lat))
    px, py = (lon - source.lon) * k * c, (lat - source.lat) * k
    if source.end is None:
        return np.hypot(px, py)
    bx, by = (source.end[1] - source.lon) * k * c, (source.end[0] - source.lat) * k
    length2 = bx * bx + by * by
    f = np.clip((px * bx + py * by) / length2, 0.0, 1.0) if length2 else np.zeros_like(px)
    return np.hypot(px - f * bx, py - f * by)


def source_active(
    source: Source, field: PollutionField, start: datetime, ticks: int, step_s: int
) -> BoolArray:
    """Whether the source emits at each tick, by the same schedule rule as the field."""
    seconds = start.timestamp() + np.arange(ticks) * step_s
    schedule = source.schedule
    if schedule.kind == "always":
        return np.ones(ticks, dtype=bool)
    if schedule.kind == "meals":
        hour = np.mod(seconds / 3600.0 + field.timezone_h, 24.0)
        active = np.zeros(ticks, dtype=bool)
        for lo, hi in schedule.windows:
            active |= (hour >= lo) & (hour < hi)
        return active
    slot = np.floor(seconds / (schedule.window_min * 60.0)).astype(np.int64)
    key = f"{field.seed}:{source.name}"
    on = {int(s): random.Random(f"{key}:{s}").random() < schedule.share for s in np.unique(slot)}
    return np.array([on[int(s)] for s in slot], dtype=bool)


# --- one vehicle-day -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VehicleDay:
    """The readings of one vehicle over one UTC day, as columns."""

    vehicle: str
    seq: IntArray
    time_us: IntArray  # microseconds since 2000-01-01 UTC (PostgreSQL's epoch)
    lat: FloatArray
    lon: FloatArray
    speed: FloatArray
    course: FloatArray
    satellites: IntArray
    hdop: FloatArray
    cell: IntArray
    stationary: BoolArray
    values: Matrix  # (readings, CHANNEL_COLUMNS)

    def __len__(self) -> int:
        return len(self.seq)


class Fleet:
    """Makes the vehicle-days of a FleetSpec; deterministic for its seed."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        self.field = PollutionField(list(SOURCES), seed=spec.seed, timezone_h=spec.timezone_h)
        self.routes = [RouteArrays.of(r) for r in ROUTES]
        self._background: dict[int, Matrix] = {}
        self._active: dict[int, list[BoolArray]] = {}
        self.noise = np.array([NOISE_SIGMA.get(c, 0.0) for c in CHANNEL_COLUMNS])
        self.amplitudes = [
            np.array([s.amplitude.get(c, 0.0) for c in CHANNEL_COLUMNS]) for s in SOURCES
        ]

    def _day_inputs(self, day: int) -> tuple[Matrix, list[BoolArray]]:
        if day not in self._background:
            self._background.clear()
            self._active.clear()
            start, n, step = self.spec.day_start(day), self.spec.ticks_per_day, self.spec.step_s
            self._background[day] = background(self.field, start, n, step)
            self._active[day] = [source_active(s, self.field, start, n, step) for s in SOURCES]
        return self._background[day], self._active[day]

    def vehicle_day(self, v: int, day: int) -> VehicleDay:
        spec = self.spec
        n, step = spec.ticks_per_day, spec.step_s
        rng = np.random.default_rng([spec.seed, v, day])
        route = self.routes[v % len(self.routes)]
        offset_s = v % step  # vehicles are not in step with each other
        seconds = np.arange(n) * step + offset_s
        local_h = np.mod(seconds / 3600.0 + spec.timezone_h, 24.0)
        shift = (6.0 + rng.uniform(0, 1.0), 22.0 - rng.uniform(0, 1.0))
        on_patrol = (local_h >= shift[0]) & (local_h < shift[1])
        speed = patrol_speed(rng, n, on_patrol, step)
        distance = rng.uniform(0, route.length_m) + np.cumsum(speed * step)
        distance[~on_patrol] = 0.0  # parked at the depot: the start of its route
        lat, lon, course = route.at(distance)
        jitter = 3.0 / (math.radians(1.0) * EARTH_RADIUS_M)  # 3 m, 1 sigma
        lat = lat + jitter * rng.standard_normal(n)
        lon = lon + jitter * rng.standard_normal(n) / math.cos(math.radians(lat[0]))
        base, active = self._day_inputs(day)
        values = base.copy()
        for source, amplitude, on in zip(SOURCES, self.amplitudes, active, strict=True):
            weight = np.exp(-source_distance(source, lat, lon) / source.decay_m) * on
            values += weight[:, None] * amplitude[None, :]
        values += rng.standard_normal(values.shape) * self.noise[None, :]
        values[:, [c != "temperature" for c in CHANNEL_COLUMNS]] = np.clip(
            values[:, [c != "temperature" for c in CHANNEL_COLUMNS]], 0.0, None
        )
        day_us = int((spec.day_start(day) - PG_EPOCH).total_seconds()) * 1_000_000
        resolution = spec.resolution
        return VehicleDay(
            vehicle=spec.vehicle(v),
            seq=day * n + np.arange(1, n + 1, dtype=np.int64),
            time_us=day_us + seconds.astype(np.int64) * 1_000_000,
            lat=lat,
            lon=lon,
            speed=speed,
            course=course,
            satellites=rng.integers(7, 14, n),
            hdop=np.round(rng.uniform(0.6, 1.6, n), 1),
            cell=np.fromiter(
                (h3i.latlng_to_cell(a, b, resolution) for a, b in zip(lat, lon, strict=True)),
                dtype=np.int64,
                count=n,
            ),
            stationary=stationary(speed, step),
            values=values,
        )


# --- PostgreSQL binary COPY ----------------------------------------------------------------------

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
_TEXT_OID = 25


def text_array(items: Sequence[str]) -> bytes:
    """A one-dimensional text[] in binary form."""
    if not items:
        return struct.pack(">iii", 0, 0, _TEXT_OID)
    out = struct.pack(">iiiii", 1, 0, _TEXT_OID, len(items), 1)
    for item in items:
        raw = item.encode()
        out += struct.pack(">i", len(raw)) + raw
    return out


def _row_dtype(vehicle: int, profile: int, flags: int) -> np.dtype[np.void]:
    fields: list[tuple[str, str]] = [("nfields", ">i2")]

    def add(name: str, kind: str) -> None:
        fields.extend([(f"{name}_len", ">i4"), (name, kind)])

    add("vehicle", f"S{vehicle}")
    add("seq", ">i8")
    add("time", ">i8")
    add("time_source", "S4")
    add("lat", ">f8")
    add("lon", ">f8")
    add("fix_valid", "u1")
    add("fix_quality", ">i2")
    add("satellites", ">i2")
    add("hdop", ">f4")
    add("speed_mps", ">f4")
    add("course_deg", ">f4")
    add("fix_age_s", ">f4")
    add("cell", ">i8")
    add("profile", f"S{profile}")
    add("flags", f"S{flags}")
    add("channel_flags", "S3")
    for c in CHANNEL_COLUMNS:
        add(c, ">f8")
    return np.dtype(fields)


_STATIONARY = text_array(["stationary"])
_NO_FLAGS = text_array([])
_EMPTY_JSONB = b"\x01{}"


def copy_rows(day: VehicleDay) -> bytes:
    """The readings as binary COPY tuples (no header or trailer) for the columns
    `ingest.columns.COLUMNS`, in that order: a valid GNSS fix, no channel flags, the `stationary`
    reading flag where the vehicle stood still."""
    assert len(COLUMNS) == 17 + len(CHANNEL_COLUMNS)
    vehicle = day.vehicle.encode()
    out = []
    for flagged, flags in ((False, _NO_FLAGS), (True, _STATIONARY)):
        rows = np.flatnonzero(day.stationary == flagged)
        dtype = _row_dtype(len(vehicle), len(PROFILE), len(flags))
        a = np.zeros(len(rows), dtype=dtype)
        a["nfields"] = len(COLUMNS)
        for name in dtype.names or ():
            if name.endswith("_len"):
                a[name] = dtype[name[:-4]].itemsize
        a["vehicle"] = vehicle
        a["seq"] = day.seq[rows]
        a["time"] = day.time_us[rows]
        a["time_source"] = b"gnss"
        a["lat"] = day.lat[rows]
        a["lon"] = day.lon[rows]
        a["fix_valid"] = 1
        a["fix_quality"] = 1
        a["satellites"] = day.satellites[rows]
        a["hdop"] = day.hdop[rows]
        a["speed_mps"] = day.speed[rows]
        a["course_deg"] = day.course[rows]
        a["fix_age_s"] = 0.2
        a["cell"] = day.cell[rows]
        a["profile"] = PROFILE.encode()
        a["flags"] = flags
        a["channel_flags"] = _EMPTY_JSONB
        for j, c in enumerate(CHANNEL_COLUMNS):
            a[c] = day.values[rows, j]
        out.append(a.tobytes())
    return b"".join(out)
