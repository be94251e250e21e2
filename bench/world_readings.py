"""A scenario's readings as the ingest would get them, simulated with numpy per powered window.

The same models as the pseudo-terminal simulator (firmware_sim), evaluated on arrays instead of
reading by reading:

- the drive: `PatrolDrive` on the window's route, its position at 1 s steps from the timetable's
  pieces (distance along the route, then the route's polyline);
- the field: the scenario's background (`PollutionField.background_at`, sampled every few minutes
  and interpolated: it changes over hours) plus every source, vectorised (distance to point,
  segment or area, decay, schedule);
- the modules (`SensorArray`'s model): transport delay, first-order lag as the exact discrete
  filter of `lag_step` at 1 s, warm-up response, drift, white noise, floor, quantisation; power-on
  at the window's start, a reading every 10 s;
- the receiver (`GpsErrorModel`'s model): wander, multipath jumps, dropouts, the newest fix of
  the reading's second;
- the box profile: each value encoded into its registers and decoded back (`BoxProfile.encode`,
  `BoxProfile.decode`): each profile's register resolution and channels;
- the agent's quality rules (edge.quality): `warmup` for `QualitySettings.warmup_s` after each
  power-on, `stationary`, `no_fix`, `stuck`, `out_of_range`, `spike`.

Then the product's own code: the ingest's pass builder (`ingest.passes.passes_of`) over each
vehicle's track and the job's table conversion (`hotspots.pass_reader.table_from_rows`).

`self_check` compares every vectorised model with its scalar original on fixed inputs.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import h3
import numpy as np
from scipy.signal import lfilter

from edge.profile import BoxProfile, ChannelMap, load_profile
from edge.quality import QualitySettings, is_spike
from edge.units import CHANNELS, converter
from firmware_sim.cli import module_warmup_s
from firmware_sim.field import PollutionField, Schedule, Source
from firmware_sim.geo import EARTH_RADIUS_M
from firmware_sim.gps_model import GpsErrorModel, GpsSpec, minute_event
from firmware_sim.motion import PatrolDrive
from firmware_sim.patrol import (
    ShiftDrives,
    build_field,
    build_route,
    sensors_key,
    vehicle_seed,
)
from firmware_sim.route import Route
from firmware_sim.scenario import Scenario, ShiftWindow, VehicleSpec
from firmware_sim.sensor import LN10, SensorArray, SensorSpec
from hotspots.analysis.passes import PassTable
from hotspots.pass_reader import table_from_rows
from ingest.passes import DEFAULT_PASS_GAP, TrackPass, TrackPoint, passes_of

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]

POLL_S = 10  # the agent polls the box every 10 s
STEP_S = 1  # the modules' lag is integrated in 1 s steps, as SensorArray does
# The background is sampled this often and interpolated: its slow factor's shortest period is
# 1.5 x its correlation time, and a straight line between samples a 36th of that apart is off by
# well under a thousandth of the background (far below any module's noise).
BACKGROUND_MAX_STEP_S = 300.0


# ---------------------------------------------------------------------------- the drive


class RoutePath:
    """`Route.at` on arrays: the point at a distance along the loop (or out-and-back track)."""

    def __init__(self, route: Route) -> None:
        points = list(route.waypoints)
        loop = [*points, points[0]] if route.closed else [*points, *reversed(points[:-1])]
        self.lat = np.array([p[0] for p in loop])
        self.lon = np.array([p[1] for p in loop])
        steps = haversine(self.lat[:-1], self.lon[:-1], self.lat[1:], self.lon[1:])
        self.cumulative = np.concatenate(([0.0], np.cumsum(steps)))
        self.length_m = float(self.cumulative[-1])

    def at(self, distance: FloatArray) -> tuple[FloatArray, FloatArray]:
        d = np.mod(distance, self.length_m)
        i = np.clip(np.searchsorted(self.cumulative, d, side="right") - 1, 0, len(self.lat) - 2)
        seg = self.cumulative[i + 1] - self.cumulative[i]
        f = np.where(seg == 0, 0.0, (d - self.cumulative[i]) / np.where(seg == 0, 1.0, seg))
        lat = self.lat[i] + (self.lat[i + 1] - self.lat[i]) * f
        lon = self.lon[i] + (self.lon[i + 1] - self.lon[i]) * f
        return lat, lon


@dataclass(frozen=True, slots=True)
class DriveTrack:
    """`PatrolDrive.state` on arrays: position and speed at epoch seconds."""

    drive: PatrolDrive
    path: RoutePath

    def at(self, times: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        pieces = self.drive.pieces
        starts = np.array([p.t for p in pieces])
        dist = np.array([p.distance_m for p in pieces])
        speed = np.array([p.speed_mps for p in pieces])
        elapsed = np.maximum(0.0, times - self.drive.departure.timestamp())
        k = np.searchsorted(starts, elapsed, side="right") - 1
        lat, lon = self.path.at(dist[k] + (elapsed - starts[k]) * speed[k])
        return lat, lon, speed[k]


def vehicle_drives(
    scenario: Scenario, vehicle_index: int, routes: Mapping[str, Route]
) -> list[PatrolDrive]:
    """The drive of each of the vehicle's powered windows, exactly as the simulator's vehicle
    drives them (`ShiftDrives`: each window from the vehicle's start point, a timetable of its
    own)."""
    vehicle = scenario.vehicles[vehicle_index]
    windows = scenario.windows(vehicle)
    return ShiftDrives(windows, routes, vehicle, vehicle_seed(scenario, vehicle_index)).drives


def _seed(*parts: object) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode())


def haversine(
    lat1: FloatArray | float,
    lon1: FloatArray | float,
    lat2: FloatArray | float,
    lon2: FloatArray | float,
) -> FloatArray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = (
        np.sin((p2 - p1) / 2) ** 2
        + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.subtract(lon2, lon1)) / 2) ** 2
    )
    out: FloatArray = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
    return out


# ---------------------------------------------------------------------------- the field


def source_distance(source: Source, lat: FloatArray, lon: FloatArray) -> FloatArray:
    """`Source.distance_m` on arrays."""
    if source.end is None:
        d = haversine(source.lat, source.lon, lat, lon)
    else:
        k = math.radians(1.0) * EARTH_RADIUS_M
        c = math.cos(math.radians(source.lat))
        bx, by = (source.end[1] - source.lon) * k * c, (source.end[0] - source.lat) * k
        px, py = (lon - source.lon) * k * c, (lat - source.lat) * k
        length2 = bx * bx + by * by
        f = np.zeros_like(px) if length2 == 0 else np.clip((px * bx + py * by) / length2, 0, 1)
        d = np.hypot(px - f * bx, py - f * by)
    return np.maximum(0.0, d - source.radius_m)


def source_active(field_: PollutionField, source: Source, times: FloatArray) -> BoolArray:
    """`Schedule.active` of the source (as `PollutionField.active_sources` keys it) on arrays."""
    schedule = source.schedule
    key = f"{field_.seed}:{source.name}"
    tz_s = field_.timezone_h * 3600.0
    if not len(times):
        return np.zeros(0, dtype=bool)
    on = np.ones(len(times), dtype=bool)
    if schedule.days < 1.0:
        day = np.floor((times + tz_s) / 86400.0).astype(np.int64)
        days, where = np.unique(day, return_inverse=True)
        works = np.array(
            [
                schedule.on_day(_utc(d * 86400.0 - tz_s + 43200.0), key, field_.timezone_h)
                for d in days.tolist()
            ]
        )
        on &= works[where]
    if schedule.kind == "always":
        return on
    if schedule.kind == "meals":
        second = np.floor(times + tz_s).astype(np.int64) % 86400
        hour = second // 3600 + (second % 3600 // 60) / 60.0 + (second % 60) / 3600.0
        inside = np.zeros(len(times), dtype=bool)
        for start, end in schedule.windows:
            inside |= (start <= hour) & (hour < end)
        return on & inside
    every = replace(schedule, days=1.0)
    if schedule.kind == "share":
        width = schedule.window_min * 60.0
        slot = np.floor(times / width).astype(np.int64)
        slots, where = np.unique(slot, return_inverse=True)
        states = np.array(
            [
                every.active(_utc(s * width + width / 2), key, field_.timezone_h)
                for s in slots.tolist()
            ]
        )
        shared: BoolArray = on & states[where]
        return shared
    each: BoolArray = on & np.array(
        [every.active(_utc(t), key, field_.timezone_h) for t in times.tolist()]
    )
    return each


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class FieldTrack:
    """The scenario's true field along a track: background interpolated from a coarse grid,
    plus every source."""

    def __init__(self, pollution: PollutionField, channels: tuple[str, ...]) -> None:
        self.field = pollution
        self.channels = channels
        self._background: dict[float, dict[str, float]] = {}

    def background(self, times: FloatArray) -> dict[str, FloatArray]:
        step = min(BACKGROUND_MAX_STEP_S, self.field.correlation_h * 3600.0 * 1.5 / 36.0)
        first = math.floor(float(times.min()) / step) * step
        last = math.ceil(float(times.max()) / step) * step
        grid = np.arange(first, last + step / 2, step)
        rows = []
        for t in grid.tolist():
            row = self._background.get(t)
            if row is None:
                row = self.field.background_at(_utc(t))
                self._background[t] = row
            rows.append(row)
        return {
            ch: np.interp(times, grid, np.array([r.get(ch, 0.0) for r in rows]))
            for ch in self.channels
        }

    def values(self, times: FloatArray, lat: FloatArray, lon: FloatArray) -> dict[str, FloatArray]:
        out = self.background(times)
        for source in self.field.sources:
            mine = [ch for ch in self.channels if ch in source.amplitude]
            if not mine:
                continue
            d = source_distance(source, lat, lon)
            near = d < 30.0 * source.decay_m  # exp(-30) adds nothing a sensor could see
            if not near.any():
                continue
            weight = np.where(near, np.exp(-d / source.decay_m), 0.0)
            weight *= source_active(self.field, source, times)
            for ch in mine:
                out[ch] = out[ch] + source.amplitude[ch] * weight
        return out


# ---------------------------------------------------------------------------- the modules


def lag_filter(inputs: FloatArray, t90_s: float, dt: float = STEP_S) -> FloatArray:
    """`lag_step` applied step after step from a state starting at the first input: the exact
    first-order response to inputs held over each step."""
    if t90_s <= 0 or len(inputs) == 0:
        return inputs.copy()
    a = math.exp(-dt * LN10 / t90_s)
    out, _ = lfilter([1.0 - a], [1.0, -a], inputs, zi=[a * inputs[0]])
    result: FloatArray = np.asarray(out, dtype=np.float64)
    return result


def module_output(
    spec: SensorSpec,
    settled: FloatArray,
    since_on: FloatArray,
    drift_sign: float,
    noise: FloatArray,
) -> FloatArray:
    """What a module reports from its lagged state: warm-up, drift, noise, floor, quantum
    (`SensorArray.read` after the lag). `noise` is standard normal."""
    warm = np.where(
        since_on < spec.warmup_s,
        0.5 + 0.5 * np.maximum(0.0, since_on) / max(spec.warmup_s, 1e-9),
        1.0,
    )
    value = settled * warm + drift_sign * spec.drift_per_h * np.maximum(0.0, since_on) / 3600.0
    if spec.noise:
        value = value + spec.noise * noise
    if spec.floor is not None:
        value = np.maximum(spec.floor, value)
    if spec.quantum > 0:
        value = np.round(np.round(value / spec.quantum) * spec.quantum, 10)
    return value


def drift_signs(specs: Mapping[str, SensorSpec], seed: str) -> dict[str, float]:
    """Each module's drift direction: `SensorArray`'s own draw from the window's seed."""
    return SensorArray(dict(specs), random.Random(seed)).drift_sign


# ---------------------------------------------------------------------------- the receiver


@dataclass(frozen=True, slots=True)
class _Events:
    start: FloatArray
    end: FloatArray
    magnitude: FloatArray
    direction: FloatArray


class GpsTrack:
    """`GpsErrorModel.observe` on arrays (the same model's draws)."""

    def __init__(self, spec: GpsSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        model = GpsErrorModel(spec, seed)
        self.size, self.turn = model.size, model.turn

    def _events(
        self, kind: str, rate_per_h: float, span: tuple[float, float], minutes: range
    ) -> _Events:
        n = len(minutes)
        start, end = np.full(n, np.inf), np.full(n, -np.inf)
        magnitude, direction = np.zeros(n), np.zeros(n)
        for i, m in enumerate(minutes):
            event = minute_event(self.seed, kind, rate_per_h, span, m)
            if event is None:
                continue
            start[i], end[i], rng = event
            if kind == "multipath":
                magnitude[i] = rng.uniform(*self.spec.multipath_m)
                direction[i] = rng.uniform(0, 2 * math.pi)
        return _Events(start, end, magnitude, direction)

    def observe(
        self, t: FloatArray, lat: FloatArray, lon: FloatArray
    ) -> tuple[FloatArray, FloatArray, BoolArray]:
        """Reported (lat, lon) and whether there is a fix, for true positions at epochs t."""
        spec = self.spec
        if not len(t):
            return lat.copy(), lon.copy(), np.zeros(0, dtype=bool)
        minute = np.floor(t / 60.0).astype(np.int64)
        first = int(minute.min()) - 1
        minutes = range(first, int(minute.max()) + 1)
        now, before = minute - first, minute - first - 1

        def covering(ev: _Events) -> tuple[BoolArray, BoolArray]:
            a = (ev.start[now] <= t) & (t < ev.end[now])
            b = (ev.start[before] <= t) & (t < ev.end[before])
            return a, b & ~a

        drop_now, drop_before = covering(
            self._events("dropout", spec.dropouts_per_h, spec.dropout_s, minutes)
        )
        valid = ~(drop_now | drop_before)
        for zone in spec.dropout_zones:
            valid &= haversine(zone.lat, zone.lon, lat, lon) > zone.radius_m
        (p1, f1), (p2, f2) = self.size
        wander = 0.5 + 0.25 * (
            np.sin(2 * math.pi * t / p1 + f1) + np.sin(2 * math.pi * t / p2 + f2)
        )
        low, high = spec.error_m
        size = low + (high - low) * wander
        angle = 2 * math.pi * t / self.turn[0] + self.turn[1]
        east, north = size * np.sin(angle), size * np.cos(angle)
        jumps = self._events("multipath", spec.multipath_per_h, spec.multipath_s, minutes)
        jump_now, jump_before = covering(jumps)
        for hit, index in ((jump_now, now), (jump_before, before)):
            magnitude = jumps.magnitude[index] * hit
            direction = jumps.direction[index]
            east = east + magnitude * np.sin(direction)
            north = north + magnitude * np.cos(direction)
        rlat = lat + np.degrees(north / EARTH_RADIUS_M)
        rlon = lon + np.degrees(east / (EARTH_RADIUS_M * np.cos(np.radians(lat))))
        return np.where(valid, rlat, lat), np.where(valid, rlon, lon), valid


# ---------------------------------------------------------------------------- the box profile


_INT_RANGE: dict[str, tuple[int, int, int]] = {
    "u16": (0, 0xFFFF, 0xFFFF),
    "s16": (-0x8000, 0x7FFF, 0xFFFF),
    "u32": (0, 0xFFFF_FFFF, 0xFFFF_FFFF),
    "s32": (-0x8000_0000, 0x7FFF_FFFF, 0xFFFF_FFFF),
}


def through_register(ch: ChannelMap, values: FloatArray) -> FloatArray:
    """Canonical values as the agent decodes them after the box wrote them into `ch`'s
    registers (`BoxProfile.encode`, then `BoxProfile.decode`); NaN for a sentinel."""
    # The unit conversions are factors (edge.units): the box's unit is the canonical value
    # divided by the factor, the agent's value the box's times the factor.
    factor = converter(ch.channel, ch.unit)(1.0)
    native = (values / factor - ch.offset) / ch.scale
    if ch.type == "f32":
        with np.errstate(over="ignore"):
            single = native.astype(np.float32)
        number = single.astype(np.float64)
        raw = single.view(np.uint32).astype(np.int64)
        number = np.where(np.isin(raw, ch.sentinels) | ~np.isfinite(number), np.nan, number)
    else:
        low, high, mask = _INT_RANGE[ch.type]
        whole = np.clip(np.rint(native), low, high).astype(np.int64)
        # A real value that happens to equal a sentinel is sent one step below it.
        for _ in range(len(ch.sentinels) + 1):
            hit = np.isin(whole & mask, ch.sentinels)
            if not hit.any():
                break
            whole = whole - hit
        number = whole.astype(np.float64)
    decoded = number * ch.scale + ch.offset
    rounded: FloatArray = np.round(decoded if factor == 1.0 else decoded * factor, 4)
    return rounded


# ---------------------------------------------------------------------------- the agent's flags


def stationary_flags(
    times: FloatArray, speed: FloatArray, fix: BoolArray, q: QualitySettings
) -> BoolArray:
    """`QualityTracker`'s stationary rule: GNSS speed under the threshold for long enough; a
    reading without a fix has no speed and restarts the count."""
    still = fix & (speed < q.stationary_speed_mps)
    begins = still & ~np.concatenate(([False], still[:-1]))
    begin = np.maximum.accumulate(np.where(begins, np.arange(len(times)), 0))
    since = times - times[begin]
    flagged: BoolArray = still & (since >= q.stationary_s)
    return flagged


def channel_flags(
    times: FloatArray, values: FloatArray, channel: str, since_on: FloatArray, q: QualitySettings
) -> BoolArray:
    """Readings whose value of `channel` the agent flags (so the ingest does not count it):
    sentinel (NaN here), warm-up, out of range, stuck (unchanged for `stuck_s`), spike."""
    spec = CHANNELS[channel]
    flagged = np.isnan(values) | (since_on < q.warmup_s)
    ok = np.flatnonzero(~np.isnan(values))
    v = values[ok]
    flagged[ok] |= (v < spec.low) | (v > spec.high)
    if len(v) > 1:
        changed = np.concatenate(([True], v[1:] != v[:-1]))
        begin = np.maximum.accumulate(np.where(changed, np.arange(len(v)), 0))
        if q.stuck_s > 0:
            flagged[ok] |= times[ok] - times[ok][begin] >= q.stuck_s
        steps = np.abs(np.diff(v))
        if (steps > q.spike_step_fraction * (spec.high - spec.low)).any():
            flagged[ok] |= _spikes(v, channel, q)
    return flagged


def _spikes(v: FloatArray, channel: str, q: QualitySettings) -> BoolArray:
    """The spike rule with its memory (rare: only when a step is that large at all)."""
    spec = CHANNELS[channel]
    out = np.zeros(len(v), dtype=bool)
    reference, spikes = float(v[0]), 0
    for i in range(1, len(v)):
        value = float(v[i])
        if is_spike(spec, value, reference, q):
            spikes += 1
            if spikes >= q.spike_accept_after:
                reference, spikes = value, 0
            else:
                out[i] = True
        else:
            reference, spikes = value, 0
    return out


# ---------------------------------------------------------------------------- one window


@dataclass(frozen=True, slots=True)
class WindowReadings:
    """One powered window of one vehicle: its readings as the agent tags them."""

    vehicle: str
    profile: str
    window: int
    times: FloatArray
    lat: FloatArray  # the fix's position (the true one where there is no fix)
    lon: FloatArray
    fix: BoolArray
    stationary: BoolArray
    values: Mapping[str, FloatArray]  # decoded canonical values, NaN for a sentinel
    flagged: Mapping[str, BoolArray]  # channel flags that keep a value out of the statistics


class WorldModels:
    """What a scenario's vehicles share: routes, field, sensors; built once per scenario.
    `channels` are the channels simulated (those analysed; each box reads those it carries)."""

    def __init__(
        self,
        scenario: Scenario,
        channels: tuple[str, ...],
        quality: QualitySettings | None = None,
    ) -> None:
        self.scenario = scenario
        self.channels = channels
        self.quality = quality or QualitySettings()
        self.field = build_field(self.scenario)
        self.routes = {name: build_route(spec) for name, spec in self.scenario.routes.items()}
        self.paths = {name: RoutePath(route) for name, route in self.routes.items()}
        self.truth = FieldTrack(self.field, self.channels)
        self.profiles = {v.profile: load_profile(v.profile) for v in self.scenario.vehicles}
        # Each agent warms up as long as its box's slowest module, as the edge configs the
        # simulator writes for a scenario say (firmware_sim.cli.sim_quality); an explicit
        # `quality` holds for every vehicle instead.
        self.vehicle_quality = {
            name: quality or replace(QualitySettings(), warmup_s=module_warmup_s(scenario, profile))
            for name, profile in self.profiles.items()
        }


def vehicle_channels(models: WorldModels, vehicle: VehicleSpec) -> dict[str, ChannelMap]:
    profile: BoxProfile = models.profiles[vehicle.profile]
    return {
        ch.channel: ch
        for ch in profile.channels
        if ch.channel in models.channels and ch.channel in models.scenario.sensors
    }


def simulate_window(
    models: WorldModels,
    vehicle_index: int,
    window: ShiftWindow,
    drive: PatrolDrive,
    gps: GpsTrack,
) -> WindowReadings:
    """One window of one vehicle: `drive` is the window's drive, `gps` the vehicle's receiver."""
    scenario = models.scenario
    vehicle = scenario.vehicles[vehicle_index]
    maps = vehicle_channels(models, vehicle)
    quality = models.vehicle_quality[vehicle.profile]
    specs = {ch: scenario.sensors[ch] for ch in maps}
    on, off = window.on.timestamp(), window.off.timestamp()
    polls = math.ceil((off - on) / POLL_S)
    times = on + POLL_S * np.arange(polls, dtype=np.float64)
    times = times[times < off]
    track = DriveTrack(drive, models.paths[window.route])
    # The modules' inputs at 1 s steps, each channel's delay earlier: one grid when the delays
    # are whole seconds, starting that far before power-on.
    delays = {ch: s.delay_s for ch, s in specs.items()}
    lead = math.ceil(max(delays.values(), default=0.0))
    steps = (len(times) - 1) * POLL_S // STEP_S + 1 if len(times) else 0
    grid = on - lead + STEP_S * np.arange(steps + lead, dtype=np.float64)
    values: dict[str, FloatArray] = {}
    flagged: dict[str, BoolArray] = {}
    signs = drift_signs(specs, sensors_key(vehicle_seed(scenario, vehicle_index), window.index))
    rng = np.random.default_rng(_seed(scenario.seed, vehicle_index, window.index, "noise"))
    since = times - on
    if steps:
        glat, glon, _ = track.at(grid)
        truth = models.truth.values(grid, glat, glon)
        other: dict[float, dict[str, FloatArray]] = {}
        for ch, spec in specs.items():
            if float(spec.delay_s).is_integer():
                shift = lead - int(spec.delay_s)
                inputs = truth[ch][shift : shift + steps]
            else:
                found = other.get(spec.delay_s)
                if found is None:
                    at = on - spec.delay_s + STEP_S * np.arange(steps, dtype=np.float64)
                    found = models.truth.values(at, *track.at(at)[:2])
                    other[spec.delay_s] = found
                inputs = found[ch]
            settled = lag_filter(inputs, spec.t90_s)[:: POLL_S // STEP_S]
            measured = module_output(
                spec, settled, since, signs[ch], rng.standard_normal(len(times))
            )
            values[ch] = through_register(maps[ch], measured)
            flagged[ch] = channel_flags(times, values[ch], ch, since, quality)
    # The newest fix at each reading: the receiver's epoch of that whole second.
    epochs = np.floor(times)
    tlat, tlon, speed = track.at(epochs)
    lat, lon, fix = gps.observe(epochs, tlat, tlon)
    return WindowReadings(
        vehicle=vehicle.name,
        profile=vehicle.profile,
        window=window.index,
        times=times,
        lat=lat,
        lon=lon,
        fix=fix,
        stationary=stationary_flags(times, speed, fix, quality),
        values=values,
        flagged=flagged,
    )


def world_readings(scenario: Scenario, channels: Sequence[str]) -> list[WindowReadings]:
    """Every powered window of every vehicle, simulating `channels` where a box carries them."""
    models = WorldModels(scenario, tuple(channels))
    out = []
    for i, vehicle in enumerate(scenario.vehicles):
        gps = GpsTrack(scenario.gps, vehicle_seed(scenario, i))
        drives = vehicle_drives(scenario, i, models.routes)
        for window, drive in zip(scenario.windows(vehicle), drives, strict=True):
            out.append(simulate_window(models, i, window, drive, gps))
    return out


# ---------------------------------------------------------------------------- passes


def track_points(readings: WindowReadings, resolution: int, first_seq: int) -> list[TrackPoint]:
    """The vehicle's track points of the window: readings with a fix, each with the values that
    may count (none while stationary; none of a flagged channel)."""
    points = []
    channels = list(readings.values)
    kept = {ch: np.where(readings.flagged[ch], np.nan, readings.values[ch]) for ch in channels}
    rows = np.column_stack([kept[ch] for ch in channels]) if channels else None
    lat, lon = readings.lat.tolist(), readings.lon.tolist()
    cell_of = h3.latlng_to_cell
    for i in np.flatnonzero(readings.fix).tolist():
        cell = h3.str_to_int(cell_of(lat[i], lon[i], resolution))
        values: dict[str, float] = {}
        if rows is not None and not readings.stationary[i]:
            row = rows[i].tolist()
            values = {ch: v for ch, v in zip(channels, row, strict=True) if not math.isnan(v)}
        moment = _utc(float(readings.times[i]))
        points.append(TrackPoint(moment, first_seq + i, cell, values))
    return points


def vehicle_passes(readings: Sequence[WindowReadings], resolution: int) -> list[TrackPass]:
    """The ingest's passes of every vehicle (`passes_of` over each vehicle's whole track)."""
    by_vehicle: dict[str, list[TrackPoint]] = {}
    seq: dict[str, int] = {}
    for r in readings:
        start = seq.get(r.vehicle, 0)
        by_vehicle.setdefault(r.vehicle, []).extend(track_points(r, resolution, start))
        seq[r.vehicle] = start + len(r.times)
    out: list[TrackPass] = []
    for vehicle in sorted(by_vehicle):
        out.extend(passes_of(vehicle, by_vehicle[vehicle], DEFAULT_PASS_GAP))
    return out


def pass_table(passes: Sequence[TrackPass]) -> PassTable:
    """The passes as the hotspot job reads them from `pass`, through the job's own conversion
    (`table_from_rows`): the energy mean for noise, else the mean; a pass without any usable
    value is not read."""
    channels = sorted({c for p in passes for c in p.stats})
    rows = []
    for p in passes:
        if not p.stats:
            continue
        row: list[object] = [p.vehicle, p.cell, p.start.timestamp(), p.end.timestamp()]
        for c in channels:
            s = p.stats.get(c)
            if s is None:
                row.extend((None, None))
            else:
                row.extend((s.energy_mean if s.energy_mean is not None else s.mean, s.n))
        rows.append(row)
    return table_from_rows(channels, rows)


# ---------------------------------------------------------------------------- self-check


def self_check(scenario: Scenario | None = None) -> list[str]:
    """Each vectorised model against its scalar original on fixed inputs; the problems found
    (an empty list when they agree). Without a scenario: the shipped Shuangjing scenario and,
    where the simulator has them, two generated worlds (areas, lines, every schedule)."""
    from firmware_sim.scenario import load_scenario

    if scenario is not None:
        scenarios = [scenario]
    else:
        from importlib import resources

        path = resources.files("firmware_sim.scenarios").joinpath("shuangjing.toml")
        scenarios = [load_scenario(str(path))]
        try:
            from firmware_sim import worlds
        except ImportError:
            pass
        else:
            scenarios += [worlds.generate_world("grid", 1001), worlds.generate_world("radial", 2)]
    problems: list[str] = []
    for s in scenarios:
        found = _check_sensor(s.sensors) + _check_profiles(s) + _check_drive_field_gps(s)
        problems += [f"{s.name}: {p}" for p in found]
    return problems


def _check_sensor(sensors: Mapping[str, SensorSpec]) -> list[str]:
    """The lag and delay response: a noiseless module of each kind, driven through a passing
    plume (a step up, a Gaussian peak and a step down), read every 10 s by `SensorArray` and by
    the vectorised model."""
    problems = []
    t0 = 1_800_000_000.0
    duration = 900

    def truth_at(t: float) -> float:
        x = t - t0
        peak = 40.0 * math.exp(-(((x - 400.0) / 25.0) ** 2))
        return 10.0 + (15.0 if 120 <= x < 600 else 0.0) + peak

    for ch, spec in sorted(sensors.items()):
        clean = replace(spec, noise=0.0, quantum=0.0, drift_per_h=0.0)
        times: FloatArray = t0 + POLL_S * np.arange(duration // POLL_S, dtype=np.float64)
        scalar = _scalar_readings(ch, clean, 1, times, t0, truth_at)
        steps = (len(times) - 1) * POLL_S + 1
        grid = t0 - clean.delay_s + np.arange(steps, dtype=np.float64)
        inputs = np.array([truth_at(float(u)) for u in grid.tolist()])
        settled = lag_filter(inputs, clean.t90_s)[::POLL_S]
        fast = module_output(clean, settled, times - t0, 1.0, np.zeros(len(times)))
        worst = float(np.max(np.abs(fast - scalar)))
        if worst > 1e-6:
            problems.append(f"sensor {ch}: the lag/delay response differs by up to {worst:.3g}")
        # With noise: the same response within the noise, and noise of the same size.
        noisy = replace(spec, drift_per_h=0.0)
        sample = _scalar_readings(ch, noisy, 2, times, t0, truth_at)
        rng = np.random.default_rng(2)
        fast = module_output(noisy, settled, times - t0, 1.0, rng.standard_normal(len(times)))
        spread = math.hypot(noisy.noise, noisy.quantum)
        bias = abs(float(np.mean(fast - sample)))
        if bias > 6 * spread / math.sqrt(len(times)) + noisy.quantum / 2:
            problems.append(f"sensor {ch}: with noise, off by {bias:.3g} on average")
        scale = float(np.std(fast - sample)) / max(spread * math.sqrt(2), 1e-12)
        if spread > 0 and not 0.7 < scale < 1.3:
            problems.append(f"sensor {ch}: noise {scale:.2f} times the module's")
    return problems


def _scalar_readings(
    channel: str,
    spec: SensorSpec,
    seed: int,
    times: FloatArray,
    power_on: float,
    truth: Callable[[float], float],
) -> FloatArray:
    """One module read by `SensorArray` at `times`, the true value given by `truth`."""
    array = SensorArray({channel: spec}, random.Random(seed), power_on)

    def inputs(t: float) -> dict[str, float]:
        return {channel: truth(t)}

    return np.array([array.read(t, inputs)[channel] for t in times.tolist()])


def _check_profiles(scenario: Scenario) -> list[str]:
    problems = []
    rng = np.random.default_rng(7)
    for name in sorted({v.profile for v in scenario.vehicles} | {"default-multi", "gasboard-f32"}):
        profile = load_profile(name)
        for ch in profile.channels:
            spec = CHANNELS[ch.channel]
            top = min(spec.high, 2000.0)
            sample = np.concatenate(
                (rng.uniform(max(spec.low, -40.0), top, 300), rng.uniform(0, 5, 100))
            )
            sample = np.round(sample, 3)
            fast = through_register(ch, sample)
            for value, got in zip(sample.tolist(), fast.tolist(), strict=True):
                want = profile.decode(profile.encode({ch.channel: value})).values[ch.channel]
                if (want is None) != math.isnan(got) or (want is not None and got != want):
                    problems.append(
                        f"profile {name} {ch.channel}: {value} decodes to {want}, fast {got}"
                    )
                    break
    return problems


def _check_drive_field_gps(scenario: Scenario) -> list[str]:
    problems = []
    channels = tuple(sorted({c for s in scenario.sources for c in s.amplitude}))
    models = WorldModels(scenario, channels)
    vehicle = scenario.vehicles[0]
    window = scenario.windows(vehicle)[0]
    drive = vehicle_drives(scenario, 0, models.routes)[0]
    track = DriveTrack(drive, models.paths[window.route])
    rng = random.Random(3)
    times = np.array(
        sorted(window.on.timestamp() + rng.uniform(0, 6 * 3600) for _ in range(400)), dtype=float
    )
    lat, lon, speed = track.at(times)
    gps_scalar = GpsErrorModel(scenario.gps, 11)
    gps_fast = GpsTrack(scenario.gps, 11)
    glat, glon, gfix = gps_fast.observe(times, lat, lon)
    bad_drive = bad_field = bad_gps = 0
    fast_truth = models.truth.values(times, lat, lon)
    for i, t in enumerate(times.tolist()):
        state = drive.state(_utc(t))
        if (
            abs(state.lat - lat[i]) > 1e-9
            or abs(state.lon - lon[i]) > 1e-9
            or state.speed_mps != speed[i]
        ):
            bad_drive += 1
        want = models.field.true_values(state.lat, state.lon, _utc(t))
        if any(
            abs(want[ch] - fast_truth[ch][i]) > 1e-3 * max(1.0, abs(want[ch])) for ch in channels
        ):
            bad_field += 1
        seen = gps_scalar.observe(t, float(lat[i]), float(lon[i]))
        if seen.valid != bool(gfix[i]) or (
            seen.valid and (abs(seen.lat - glat[i]) > 1e-9 or abs(seen.lon - glon[i]) > 1e-9)
        ):
            bad_gps += 1
    for what, bad in (("drive", bad_drive), ("field", bad_field), ("gps", bad_gps)):
        if bad:
            problems.append(f"{what}: {bad} of {len(times)} sampled moments differ")
    # Schedules of every kind against Schedule.active, including days < 1.
    probe = [
        Source("a", "x", 0.0, 0.0, {"pm25": 1.0}, schedule=Schedule()),
        Source("b", "x", 0.0, 0.0, {"pm25": 1.0}, schedule=Schedule("meals", days=0.6)),
        Source("c", "x", 0.0, 0.0, {"pm25": 1.0}, schedule=Schedule("share", share=0.4)),
        Source("d", "x", 0.0, 0.0, {"pm25": 1.0}, schedule=Schedule("share", share=0.5, days=0.3)),
    ]
    f = PollutionField(probe, seed=5)
    moments = np.array(
        [1_800_000_000.0 + rng.uniform(0, 20 * 86400) for _ in range(500)], dtype=float
    )
    for s in probe:
        active = source_active(f, s, moments)
        scheduled = np.array(
            [s.schedule.active(_utc(t), f"5:{s.name}", 8.0) for t in moments.tolist()]
        )
        if (active != scheduled).any():
            problems.append(
                f"schedule {s.schedule.kind}: {(active != scheduled).sum()} moments differ"
            )
    return problems
