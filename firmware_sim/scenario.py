"""Scenario files: a patrol simulation described as data (TOML), parsed into frozen settings.

Every key is checked; a mistake raises ScenarioError naming the offending key, e.g.
`sources[2].amplitude.pm10: must be a number, got 'high'`. docs/scenarios.md documents every key
and firmware_sim/scenarios/shuangjing.toml is a worked example.
"""

from __future__ import annotations

import random
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

from edge.errors import EnvpatrolError
from edge.profile import BoxProfile, ProfileError, load_profile
from edge.units import CHANNELS
from firmware_sim.faults import ChannelWindow, FaultSpec
from firmware_sim.field import BACKGROUND, MEAL_TIMES, Schedule, Source
from firmware_sim.gps_model import DropoutZone, GpsSpec
from firmware_sim.motion import SpeedProfile
from firmware_sim.route import BUILTIN_ROUTES
from firmware_sim.sensor import DEFAULT_SENSORS, SensorSpec

_T = TypeVar("_T")

# A shift's start and end move by at most half a day: a day's shift stays that day's.
MAX_JITTER_MIN = 720.0
# The longest run a scenario may describe.
MAX_DURATION_DAYS = 366.0


class ScenarioError(EnvpatrolError, ValueError):
    """A scenario that cannot be used: which file (`source`), which key (`subject`), what is
    wrong."""

    def __init__(self, key: str, problem: str, source: str = "<scenario>") -> None:
        super().__init__(key, problem)
        self.source = source

    def __str__(self) -> str:
        return f"scenario {self.source}: {super().__str__()}"


@dataclass(frozen=True, slots=True)
class RouteSpec:
    name: str
    builtin: str | None = None
    file: Path | None = None
    format: str | None = None  # gpx, geojson, nmea; from the file suffix when omitted
    closed: bool = False  # imported tracks: loop back to the start instead of out-and-back
    points: tuple[tuple[float, float], ...] | None = None  # waypoints (lat, lon) given inline


@dataclass(frozen=True, slots=True)
class ShiftSpec:
    """A shift pattern: from `start` to `end` local time on the days it selects.

    `weekdays` (0 = Monday) picks days of the week (None: every day); of those, a seeded share
    `share` is worked. `jitter_min` moves each day's start and end by up to that many minutes
    either way (a crew does not leave at the same minute every day). `routes` are the routes the
    shift drives, one picked per day (seeded); empty: the vehicle's own route.
    """

    start: time
    end: time
    weekdays: tuple[int, ...] | None = None
    share: float = 1.0
    jitter_min: float = 0.0
    routes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.weekdays is not None and (
            not self.weekdays or not all(0 <= d <= 6 for d in self.weekdays)
        ):
            raise ValueError("weekdays must be days 0 (Monday) .. 6 (Sunday), at least one")
        if not 0.0 < self.share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {self.share}")
        if not 0 <= self.jitter_min <= MAX_JITTER_MIN:
            raise ValueError(f"jitter_min must be 0 .. {MAX_JITTER_MIN:g}")
        if self.start == self.end:
            raise ValueError("a shift must end at another time than it starts")

    @property
    def length(self) -> timedelta:
        """How long the shift lasts (it may cross midnight)."""
        day = datetime(2000, 1, 1, tzinfo=UTC)
        on, off = datetime.combine(day, self.start, UTC), datetime.combine(day, self.end, UTC)
        return off - on if off > on else off + timedelta(days=1) - on


@dataclass(frozen=True, slots=True)
class ShiftWindow:
    """One concrete powered period of one vehicle: switched on at `on`, off at `off` (UTC),
    driving `route`. `index` counts the vehicle's windows from 0 in time order."""

    vehicle: str
    index: int
    on: datetime
    off: datetime
    route: str


@dataclass(frozen=True, slots=True)
class VehicleSpec:
    name: str
    route: str
    profile: str = "default-multi"
    # Shift patterns; empty: powered for the whole scenario.
    shifts: tuple[ShiftSpec, ...] = ()
    offset_m: float = 0.0
    speed: SpeedProfile = field(default_factory=SpeedProfile)
    box_serial: str | None = None  # the serial its box reports; None: derived from the name


@dataclass(frozen=True, slots=True)
class BackgroundSpec:
    levels: dict[str, float] = field(default_factory=lambda: dict(BACKGROUND))
    diurnal: bool = True
    variability: float = 0.12
    correlation_h: float = 2.0


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    seed: int
    start: datetime
    duration_h: float
    timezone_h: float
    routes: dict[str, RouteSpec]
    vehicles: tuple[VehicleSpec, ...]
    background: BackgroundSpec
    sources: tuple[Source, ...]
    sensors: dict[str, SensorSpec]
    gps: GpsSpec
    faults: FaultSpec
    description: str = ""

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=self.duration_h)

    def windows(self, vehicle: VehicleSpec) -> tuple[ShiftWindow, ...]:
        """Every powered period of the vehicle in UTC, in time order, clipped to the scenario.

        Deterministic for the scenario seed: which days a shift with share < 1 works, each day's
        jitter and each day's route are drawn from the seed, the vehicle, the shift and the local
        day, so adding a day to a scenario changes none of the others. A shift belongs to the
        local day it starts on (`weekdays` select by that day). Overlapping or touching periods
        of one vehicle are joined into one: the box stays on.
        """
        if not vehicle.shifts:
            return (ShiftWindow(vehicle.name, 0, self.start, self.end, vehicle.route),)
        tz = timedelta(hours=self.timezone_h)
        # A shift lasts at most a day and moves by at most half a day either way: one that
        # starts two days before the first local day can still reach into it.
        day = (self.start + tz).date() - timedelta(days=2)
        last = (self.end + tz).date() + timedelta(days=1)
        found: list[tuple[datetime, datetime, str]] = []
        while day <= last:
            for k, shift in enumerate(vehicle.shifts):
                if shift.weekdays is not None and day.weekday() not in shift.weekdays:
                    continue
                rng = random.Random(f"shift:{self.seed}:{vehicle.name}:{k}:{day.isoformat()}")
                if rng.random() >= shift.share:
                    continue
                jitter = timedelta(minutes=rng.uniform(-shift.jitter_min, shift.jitter_min))
                on = datetime.combine(day, shift.start, UTC) - tz + jitter
                off = on + shift.length
                route = rng.choice(shift.routes) if shift.routes else vehicle.route
                on, off = max(on, self.start), min(off, self.end)
                if on < off:
                    found.append((on, off, route))
            day += timedelta(days=1)
        found.sort()
        joined: list[tuple[datetime, datetime, str]] = []
        for on, off, route in found:
            if joined and on <= joined[-1][1]:
                prev = joined[-1]
                joined[-1] = (prev[0], max(prev[1], off), prev[2])
            else:
                joined.append((on, off, route))
        return tuple(
            ShiftWindow(vehicle.name, i, on, off, route)
            for i, (on, off, route) in enumerate(joined)
        )


class _Table:
    """One TOML table being read, remembering which keys were used."""

    def __init__(self, data: Any, key: str, source: str) -> None:
        if not isinstance(data, dict):
            raise ScenarioError(key or "(top level)", "must be a table", source)
        self.data: dict[str, Any] = data
        self.key = key
        self.source = source
        self.used: set[str] = set()

    def path(self, name: str) -> str:
        if not name:
            return self.key or "(top level)"
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str, problem: str) -> ScenarioError:
        return ScenarioError(self.path(name), problem, self.source)

    def build(self, factory: Callable[..., _T], /, *args: Any, **fields: Any) -> _T:
        """A spec made from this table's fields, then the table checked for unknown keys; a
        spec's own consistency check (a ValueError) is reported at this table."""
        try:
            spec = factory(*args, **fields)
        except ValueError as exc:
            raise self.error("", str(exc)) from exc
        self.done()
        return spec

    def raw(self, name: str) -> Any:
        self.used.add(name)
        return self.data.get(name)

    def number(self, name: str, default: float, *, minimum: float | None = None) -> float:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, f"must be a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(name, f"must be at least {minimum}, got {value!r}")
        return float(value)

    def integer(self, name: str, default: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, got {value!r}")
        return value

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {value!r}")
        return value

    def required_text(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise self.error(name, "required")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {value!r}")
        return value

    def pair(self, name: str, default: tuple[float, float]) -> tuple[float, float]:
        value = self.raw(name)
        if value is None:
            return default
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            raise self.error(name, f"must be a pair of numbers [a, b], got {value!r}")
        return float(value[0]), float(value[1])

    def table(self, name: str) -> _Table:
        value = self.raw(name)
        return _Table({} if value is None else value, self.path(name), self.source)

    def tables(self, name: str) -> list[_Table]:
        value = self.raw(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(name, "must be an array of tables ([[...]])")
        return [_Table(v, f"{self.path(name)}[{i}]", self.source) for i, v in enumerate(value)]

    def channels(self, name: str) -> dict[str, float]:
        t = self.table(name)
        out = {}
        for ch in list(t.data):
            if ch not in CHANNELS:
                raise t.error(ch, f"unknown channel (known: {', '.join(sorted(CHANNELS))})")
            out[ch] = t.number(ch, 0.0)
        return out

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key")


_LOCAL_TIME = re.compile(r"[0-9]{2}:[0-9]{2}(:[0-9]{2})?")


def _local_time(t: _Table, value: Any, name: str) -> time:
    # Only the two forms the docs name: fromisoformat alone also takes "07", "0700", "T07:00"
    # and offsets, which a reader of the file would not take for a time of day.
    if not isinstance(value, str) or not _LOCAL_TIME.fullmatch(value):
        raise t.error(name, f"must be 'HH:MM' or 'HH:MM:SS' local time, got {value!r}")
    try:
        return time.fromisoformat(value)
    except ValueError as exc:
        raise t.error(name, f"must be 'HH:MM' or 'HH:MM:SS' local time, got {value!r}") from exc


def _speed(t: _Table) -> SpeedProfile:
    d = SpeedProfile()
    return t.build(
        SpeedProfile,
        cruise_mps=t.number("cruise_mps", d.cruise_mps, minimum=0.1),
        cruise_spread=t.number("cruise_spread", d.cruise_spread, minimum=0),
        junction_stop_share=t.number("junction_stop_share", d.junction_stop_share, minimum=0),
        junction_stop_s=t.pair("junction_stop_s", d.junction_stop_s),
        idle_every_s=t.pair("idle_every_s", d.idle_every_s),
        idle_s=t.pair("idle_s", d.idle_s),
    )


def _schedule(t: _Table, name: str) -> Schedule:
    value = t.raw(name)
    if value is None or value == "always":
        return Schedule()
    if value == "meals":
        return Schedule("meals", MEAL_TIMES)
    if isinstance(value, dict):
        s = _Table(value, t.path(name), t.source)
        kind = s.required_text("kind")
        days = s.number("days", 1.0, minimum=0)
        if days > 1:
            raise s.error("days", f"must be a share between 0 and 1, got {days:g}")
        if kind == "meals":
            windows = s.raw("windows")
            parsed = MEAL_TIMES
            if windows is not None:
                if not isinstance(windows, list):
                    raise s.error("windows", "must be a list of ['HH:MM', 'HH:MM'] pairs")
                pairs = []
                for i, w in enumerate(windows):
                    if not isinstance(w, list) or len(w) != 2:
                        raise s.error(f"windows[{i}]", "must be ['HH:MM', 'HH:MM']")
                    a, b = (_local_time(s, v, f"windows[{i}]") for v in w)
                    pairs.append((a.hour + a.minute / 60, b.hour + b.minute / 60))
                parsed = tuple(pairs)
            s.done()
            return Schedule("meals", parsed, days=days)
        if kind == "share":
            share = s.number("share", 0.5, minimum=0)
            if share > 1:
                raise s.error("share", "must be between 0 and 1")
            window = s.number("window_min", 15.0, minimum=1)
            s.done()
            return Schedule("share", share=share, window_min=window, days=days)
        if kind == "always":
            s.done()
            return Schedule(days=days)
        raise s.error("kind", f"must be always, meals or share, got {kind!r}")
    raise t.error(name, f"must be 'always', 'meals' or a table {{kind = ...}}, got {value!r}")


def _source(t: _Table) -> Source:
    name = t.required_text("name")
    kind = t.text("kind", "other") or "other"
    at = t.raw("at")
    line = t.raw("line")
    if (at is None) == (line is None):
        raise t.error(
            "at", "give exactly one of at = [lat, lon] or line = [[lat, lon], [lat, lon]]"
        )
    end: tuple[float, float] | None = None
    if at is not None:
        t.used.discard("at")
        lat, lon = t.pair("at", (0.0, 0.0))
    else:
        if not isinstance(line, list) or len(line) != 2:
            raise t.error("line", "must be two [lat, lon] points")
        points = []
        for i, p in enumerate(line):
            key = f"line[{i}]"
            points.append(_Table({key: p}, t.key, t.source).pair(key, (0.0, 0.0)))
        (lat, lon), end = points
    amplitude = t.channels("amplitude")
    if not amplitude:
        raise t.error("amplitude", "needs at least one channel")
    decay = t.number("decay_m", 40.0, minimum=1.0)
    schedule = _schedule(t, "schedule")
    radius = t.number("radius_m", 0.0, minimum=0)
    t.done()
    return Source(name, kind, lat, lon, amplitude, decay, end, schedule, radius)


def _sensors(t: _Table) -> dict[str, SensorSpec]:
    out = dict(DEFAULT_SENSORS)
    for ch in list(t.data):
        if ch not in CHANNELS:
            raise t.error(ch, "unknown channel")
        s = t.table(ch)
        base = out.get(ch, SensorSpec())
        out[ch] = s.build(
            replace,
            base,
            t90_s=s.number("t90_s", base.t90_s, minimum=0),
            delay_s=s.number("delay_s", base.delay_s, minimum=0),
            noise=s.number("noise", base.noise, minimum=0),
            drift_per_h=s.number("drift_per_h", base.drift_per_h),
            quantum=s.number("quantum", base.quantum, minimum=0),
            warmup_s=s.number("warmup_s", base.warmup_s, minimum=0),
        )
    return out


def _gps(t: _Table) -> GpsSpec:
    d = GpsSpec()
    zones = []
    for z in t.tables("dropout_zones"):
        lat, lon = z.pair("at", (0.0, 0.0))
        if "at" not in z.data:
            raise z.error("at", "required")
        zones.append(DropoutZone(lat, lon, z.number("radius_m", 40.0, minimum=1)))
        z.done()
    return t.build(
        GpsSpec,
        error_m=t.pair("error_m", d.error_m),
        multipath_per_h=t.number("multipath_per_h", d.multipath_per_h, minimum=0),
        multipath_m=t.pair("multipath_m", d.multipath_m),
        multipath_s=t.pair("multipath_s", d.multipath_s),
        dropout_zones=tuple(zones),
        dropouts_per_h=t.number("dropouts_per_h", d.dropouts_per_h, minimum=0),
        dropout_s=t.pair("dropout_s", d.dropout_s),
        hdop=t.number("hdop", d.hdop, minimum=0.5),
    )


def _windows(t: _Table, name: str) -> tuple[ChannelWindow, ...]:
    out = []
    for w in t.tables(name):
        channel = w.required_text("channel")
        if channel not in CHANNELS:
            raise w.error("channel", f"unknown channel {channel!r}")
        start, end = w.pair("hours", (0.0, 0.0))
        if "hours" not in w.data or end <= start:
            raise w.error("hours", "required: [from, to] hours after the start, from < to")
        out.append(ChannelWindow(channel, start, end))
        w.done()
    return tuple(out)


def _faults(t: _Table) -> FaultSpec:
    return t.build(
        FaultSpec,
        drop=t.number("drop", 0.0, minimum=0),
        late=t.number("late", 0.0, minimum=0),
        crc=t.number("crc", 0.0, minimum=0),
        garbage=t.number("garbage", 0.0, minimum=0),
        late_s=t.number("late_s", 1.0, minimum=0),
        stuck=_windows(t, "stuck"),
        sentinel=_windows(t, "sentinel"),
    )


def _points(r: _Table) -> tuple[tuple[float, float], ...]:
    """A route's inline waypoints: `points = [[lat, lon], ...]`, at least two distinct."""
    value = r.raw("points")
    if not isinstance(value, list) or len(value) < 2:
        raise r.error("points", f"must be a list of at least two [lat, lon] pairs, got {value!r}")
    points = []
    for i, p in enumerate(value):
        key = f"points[{i}]"
        lat, lon = _Table({key: p}, r.key, r.source).pair(key, (0.0, 0.0))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise r.error(f"points[{i}]", f"[{lat:g}, {lon:g}] is not a [lat, lon] on Earth")
        points.append((lat, lon))
    if len(set(points)) < 2:
        raise r.error("points", "needs at least two distinct points")
    return tuple(points)


def _routes(top: _Table, base: Path) -> dict[str, RouteSpec]:
    routes: dict[str, RouteSpec] = {}
    for r in top.tables("routes"):
        name = r.required_text("name")
        if name in routes:
            raise r.error("name", f"route {name!r} is defined twice")
        builtin = r.text("builtin")
        file = r.text("file")
        given = [k for k in ("builtin", "file", "points") if k in r.data]
        if len(given) != 1:
            raise r.error(
                given[1] if len(given) > 1 else "builtin",
                "give exactly one of builtin = ..., file = ... or points = [[lat, lon], ...]",
            )
        if builtin is not None and builtin not in BUILTIN_ROUTES:
            raise r.error(
                "builtin", f"unknown route {builtin!r} (known: {', '.join(BUILTIN_ROUTES)})"
            )
        points = _points(r) if "points" in r.data else None
        fmt = r.text("format")
        if fmt is not None and fmt not in ("gpx", "geojson", "nmea"):
            raise r.error("format", "must be gpx, geojson or nmea")
        if fmt is not None and file is None:
            raise r.error("format", "only for a route from a file")
        path = None if file is None else (base / file)
        routes[name] = RouteSpec(name, builtin, path, fmt, r.flag("closed", False), points)
        r.done()
    if not routes:
        routes["shuangjing-loop"] = RouteSpec("shuangjing-loop", builtin="shuangjing-loop")
    return routes


def _is_profile_path(value: str) -> bool:
    """A vehicle's `profile` names a file when it looks like one; otherwise a built-in."""
    return value.endswith(".toml") or "/" in value or "\\" in value


def _profile(v: _Table, base: Path) -> tuple[str, BoxProfile]:
    """A vehicle's box profile: a built-in name as it is, a file resolved against the scenario
    file's folder (as route files are) and kept as an absolute path."""
    value = v.text("profile", "default-multi") or "default-multi"
    if _is_profile_path(value):
        value = str((base / value).resolve())
    try:
        return value, load_profile(value)
    except ProfileError as exc:
        raise v.error("profile", str(exc)) from exc


def _box_serial(v: _Table, profile: BoxProfile) -> str | None:
    """A vehicle's `box_serial`, checked against its profile's serial register."""
    serial = v.text("box_serial")
    if serial is None:
        return None
    field_ = None if profile.identity is None else profile.identity.field("serial")
    if field_ is None:
        raise v.error("box_serial", f"profile {profile.name} has no serial register")
    if not serial:
        raise v.error("box_serial", "must not be empty")
    try:
        field_.encode(serial)
    except ValueError as exc:
        raise v.error("box_serial", str(exc)) from exc
    return serial


def _route_names(t: _Table, name: str, routes: dict[str, RouteSpec]) -> tuple[str, ...]:
    value = t.raw(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(r, str) for r in value):
        raise t.error(name, f"must be a non-empty list of route names, got {value!r}")
    for route in value:
        if route not in routes:
            raise t.error(name, f"no route named {route!r} (defined: {', '.join(routes)})")
    return tuple(value)


def _weekdays(t: _Table) -> tuple[int, ...] | None:
    value = t.raw("weekdays")
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in value)
    ):
        raise t.error(
            "weekdays", f"must be a non-empty list of days 0 (Monday) .. 6 (Sunday), got {value!r}"
        )
    return tuple(sorted(set(value)))


def _shift(s: _Table, routes: dict[str, RouteSpec]) -> ShiftSpec:
    for key in ("start", "end"):
        if key not in s.data:
            raise s.error(key, "required: 'HH:MM' local time")
    start = _local_time(s, s.raw("start"), "start")
    end = _local_time(s, s.raw("end"), "end")
    if start == end:
        raise s.error("end", "must differ from start (a shift lasts less than a day)")
    share = s.number("share", 1.0, minimum=0)
    if not 0 < share <= 1:
        raise s.error("share", f"must be a share of days in (0, 1], got {share:g}")
    jitter = s.number("jitter_min", 0.0, minimum=0)
    if jitter > MAX_JITTER_MIN:
        raise s.error("jitter_min", f"must be at most {MAX_JITTER_MIN:g} (12 h), got {jitter:g}")
    return s.build(
        ShiftSpec,
        start,
        end,
        weekdays=_weekdays(s),
        share=share,
        jitter_min=jitter,
        routes=_route_names(s, "routes", routes),
    )


def _shifts(v: _Table, routes: dict[str, RouteSpec]) -> tuple[ShiftSpec, ...]:
    """`shift = ["HH:MM", "HH:MM"]` (one daily shift) or `[[vehicles.shifts]]` tables."""
    shift_raw = v.raw("shift")
    tables = v.tables("shifts")
    if shift_raw is not None and tables:
        raise v.error("shift", "give either shift = [...] or [[vehicles.shifts]] tables, not both")
    if shift_raw is not None:
        if not isinstance(shift_raw, list) or len(shift_raw) != 2:
            raise v.error("shift", "must be ['HH:MM', 'HH:MM'] in local time")
        start, end = (_local_time(v, x, "shift") for x in shift_raw)
        if start == end:
            raise v.error("shift", "must end at another time than it starts")
        return (ShiftSpec(start, end),)
    if v.raw("shifts") is not None and not tables:
        raise v.error("shifts", "needs at least one [[vehicles.shifts]] table")
    return tuple(_shift(s, routes) for s in tables)


def _vehicles(top: _Table, routes: dict[str, RouteSpec], base: Path) -> tuple[VehicleSpec, ...]:
    out: list[VehicleSpec] = []
    for v in top.tables("vehicles"):
        name = v.required_text("name")
        route = v.text("route", next(iter(routes))) or ""
        if route not in routes:
            raise v.error("route", f"no route named {route!r} (defined: {', '.join(routes)})")
        profile_name, profile = _profile(v, base)
        out.append(
            VehicleSpec(
                name=name,
                route=route,
                profile=profile_name,
                shifts=_shifts(v, routes),
                offset_m=v.number("offset_m", 0.0, minimum=0),
                speed=_speed(v.table("speed")),
                box_serial=_box_serial(v, profile),
            )
        )
        v.done()
    if not out:
        raise top.error("vehicles", "at least one [[vehicles]] entry is required")
    if len({v.name for v in out}) != len(out):
        raise top.error("vehicles", "vehicle names must be unique")
    return tuple(out)


def _duration_h(top: _Table) -> float:
    """`duration_h` or `duration_days`, at most one of them (8 hours without either)."""
    key = "duration_days" if "duration_days" in top.data else "duration_h"
    if key == "duration_days":
        if "duration_h" in top.data:
            raise top.error(key, "give exactly one of duration_h and duration_days")
        hours = top.number(key, 1.0, minimum=0.001) * 24.0
    else:
        hours = top.number(key, 8.0, minimum=0.01)
    if hours > MAX_DURATION_DAYS * 24.0:
        raise top.error(key, f"at most {MAX_DURATION_DAYS:g} days")
    return hours


def parse_scenario(text: str, source: str = "<scenario>", base: Path | None = None) -> Scenario:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError("(file)", f"not valid TOML: {exc}", source) from exc
    top = _Table(doc, "", source)
    start_raw = top.raw("start")
    if isinstance(start_raw, datetime):
        if start_raw.tzinfo is None:
            raise top.error("start", "needs a UTC offset, e.g. 2026-03-02T08:00:00+08:00")
        start = start_raw.astimezone(UTC)
    elif start_raw is None:
        raise top.error("start", "required (an offset date-time)")
    else:
        raise top.error("start", f"must be a TOML date-time with offset, got {start_raw!r}")
    folder = base or Path.cwd()
    routes = _routes(top, folder)
    bg = top.table("background")
    levels = dict(BACKGROUND)
    levels.update(bg.channels("levels"))
    background = BackgroundSpec(
        levels=levels,
        diurnal=bg.flag("diurnal", True),
        variability=bg.number("variability", 0.12, minimum=0),
        correlation_h=bg.number("correlation_h", 2.0, minimum=0.1),
    )
    bg.done()
    scenario = Scenario(
        name=top.text("name", Path(source).stem) or "scenario",
        description=top.text("description", "") or "",
        seed=top.integer("seed", 1),
        start=start,
        duration_h=_duration_h(top),
        timezone_h=top.number("timezone_h", 8.0),
        routes=routes,
        vehicles=_vehicles(top, routes, folder),
        background=background,
        sources=tuple(_source(s) for s in top.tables("sources")),
        sensors=_sensors(top.table("sensors")),
        gps=_gps(top.table("gps")),
        faults=_faults(top.table("faults")),
    )
    top.done()
    names = [s.name for s in scenario.sources]
    if len(set(names)) != len(names):
        raise top.error("sources", "source names must be unique")
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError("(file)", f"cannot read: {exc.strerror}", str(p)) from exc
    return parse_scenario(text, str(p), p.parent)
