"""A scenario's vehicles on pseudo-terminals: route, speed profile, field, sensors, GPS, faults.

Each vehicle is powered only inside its shift windows (Scenario.windows): outside them the box
does not answer and the GPS is silent; each window is a new power-on, with a new drive and the
modules warming up again. Everything random is drawn from the scenario seed, the vehicle's
index and the window's index.
"""

from __future__ import annotations

import bisect
import functools
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from edge.profile import load_profile
from edge.wire import format_time
from firmware_sim.box import Served, SimulatedBox, box_identity
from firmware_sim.drive import SimClock, VehicleState
from firmware_sim.faults import FaultPlan
from firmware_sim.field import PollutionField
from firmware_sim.gps import SimulatedGps
from firmware_sim.gps_model import GpsErrorModel, GpsObservation
from firmware_sim.motion import PatrolDrive
from firmware_sim.route import BUILTIN_ROUTES, Route
from firmware_sim.route_import import load_route
from firmware_sim.scenario import RouteSpec, Scenario, ShiftWindow, VehicleSpec
from firmware_sim.sensor import SensorArray
from firmware_sim.truth import TruthWriter
from firmware_sim.vehicle import SerialDevices


def build_route(spec: RouteSpec) -> Route:
    if spec.builtin is not None:
        return BUILTIN_ROUTES[spec.builtin]
    if spec.points is not None:
        return Route(spec.name, list(spec.points), closed=spec.closed)
    assert spec.file is not None
    return load_route(spec.file, spec.format, name=spec.name, closed=spec.closed)


def build_field(scenario: Scenario) -> PollutionField:
    bg = scenario.background
    return PollutionField(
        list(scenario.sources),
        seed=scenario.seed,
        background=dict(bg.levels),
        diurnal=bg.diurnal,
        variability=bg.variability,
        correlation_h=bg.correlation_h,
        timezone_h=scenario.timezone_h,
    )


def shift_records(scenario: Scenario) -> dict[str, list[dict[str, str]]]:
    """Every vehicle's powered periods, for the truth header: `on`, `off` (ISO, UTC), `route`."""
    return {
        v.name: [
            {"on": format_time(w.on), "off": format_time(w.off), "route": w.route}
            for w in scenario.windows(v)
        ]
        for v in scenario.vehicles
    }


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _window_seed(seed: int, index: int) -> int:
    """The seed of a vehicle's drive in its `index`-th window: its own seed for the first, so a
    one-shift scenario drives as it always did."""
    if index == 0:
        return seed
    return random.Random(f"drive:{seed}:{index}").getrandbits(63)


class ShiftDrives:
    """Where a vehicle is over all its shift windows: each window starts a new drive
    (PatrolDrive) on the window's route from the vehicle's starting point; between windows it
    stands where the last one ended, and before the first where the first will start."""

    def __init__(
        self,
        windows: Sequence[ShiftWindow],
        routes: Mapping[str, Route],
        spec: VehicleSpec,
        seed: int,
    ) -> None:
        self.windows = tuple(windows)
        self._ons = [w.on for w in self.windows]
        self._parked = routes[spec.route].at(spec.offset_m)
        self.drives = [
            PatrolDrive(
                routes[w.route],
                w.on,
                spec.speed,
                offset_m=spec.offset_m,
                seed=_window_seed(seed, w.index),
                horizon_s=(w.off - w.on).total_seconds() + 3600,
            )
            for w in self.windows
        ]

    def last_index(self, moment: datetime) -> int | None:
        """The window that began last at or before `moment`, None before the first."""
        i = bisect.bisect_right(self._ons, moment) - 1
        return None if i < 0 else i

    def window_at(self, moment: datetime) -> ShiftWindow | None:
        """The window `moment` falls in (from `on` inclusive to `off` exclusive), if any."""
        i = self.last_index(moment)
        if i is None or moment >= self.windows[i].off:
            return None
        return self.windows[i]

    def state(self, moment: datetime) -> VehicleState:
        i = self.last_index(moment)
        if i is None:
            if not self.drives:
                p = self._parked
                return VehicleState(p.lat, p.lon, 0.0, p.heading_deg)
            i, moment = 0, self.windows[0].on
        window, drive = self.windows[i], self.drives[i]
        if moment < window.off:
            return drive.state(moment)
        end = drive.state(window.off)
        return VehicleState(end.lat, end.lon, 0.0, end.heading_deg)


def vehicle_seed(scenario: Scenario, index: int) -> int:
    """The seed of everything random about the scenario's vehicle `index`."""
    return scenario.seed * 1000 + index


def sensors_key(seed: int, window: int) -> str:
    """The seed of a vehicle's modules in its shift window `window` (cold from each power-on)."""
    return f"sensors:{seed}" if window == 0 else f"sensors:{seed}:{window}"


class PatrolVehicle(SerialDevices):
    """One scenario vehicle: a box and a GPS receiver on their own pseudo-terminals, powered
    only inside the vehicle's shift windows. Each window is a new power-on: a new drive on the
    window's route, and the box's modules warming up again from the window's `on`."""

    def __init__(
        self,
        scenario: Scenario,
        spec: VehicleSpec,
        index: int,
        clock: SimClock,
        field: PollutionField,
        routes: Mapping[str, Route],
        truth: TruthWriter | None = None,
        on_truth: Callable[[dict[str, Any]], None] | None = None,
        on_served: Callable[[Served], None] | None = None,
    ) -> None:
        self.name = spec.name
        self.scenario = scenario
        self.clock = clock
        self.field = field
        self.windows = scenario.windows(spec)
        self.seed = vehicle_seed(scenario, index)
        self.drive = ShiftDrives(self.windows, routes, spec, self.seed)
        self._specs = {ch: s for ch, s in scenario.sensors.items() if ch in field.background}
        self._sensors: tuple[int, SensorArray] | None = None
        self.gps_model = GpsErrorModel(scenario.gps, self.seed)
        self.faults = FaultPlan(scenario.faults, self.seed)
        self._truth = truth
        self._on_truth = on_truth
        self._on_served = on_served  # every answer as served, its bytes too (accounting)
        self._lock = threading.Lock()
        self._requests = 0
        self._pending: dict[str, Any] | None = None
        profile = load_profile(spec.profile)
        # The truth's warm-up is that of the modules behind the box's channels, as the agent's
        # configured warm-up (firmware_sim.cli.module_warmup_s) is.
        self._served_channels = frozenset(ch.channel for ch in profile.channels)
        self.box = SimulatedBox(
            profile,
            self._sample,
            self._served,
            faults=self.faults,
            powered=self.powered,
            identity=box_identity(profile, spec.name, spec.box_serial),
        )
        self.gps = SimulatedGps(self.drive, clock, observe=self._observe)

    def powered(self, moment: datetime | None = None) -> bool:
        return self.drive.window_at(moment or self.clock.now()) is not None

    def sensors_at(self, moment: datetime) -> SensorArray:
        """The box's modules as powered on at the start of the window of `moment` (the window
        that ended last when the box answers just after its end)."""
        i = self.drive.last_index(moment) or 0
        if self._sensors is None or self._sensors[0] != i:
            on = self.windows[i].on if self.windows else self.scenario.start
            key = sensors_key(self.seed, i)
            self._sensors = (i, SensorArray(self._specs, random.Random(key), on.timestamp()))
        return self._sensors[1]

    def _observe(self, moment: datetime, state: VehicleState) -> GpsObservation | None:
        if not self.powered(moment):
            return None
        return self.gps_model.observe(moment.timestamp(), state.lat, state.lon)

    def _truth_at(self, ts: float) -> dict[str, float]:
        moment = datetime.fromtimestamp(ts, UTC)
        state = self.drive.state(moment)
        return self.field.true_values(state.lat, state.lon, moment)

    def _sample(self) -> tuple[datetime, dict[str, float | None]]:
        moment = self.clock.now()
        with self._lock:
            self._requests += 1
            sensors = self.sensors_at(moment)
            measured = sensors.read(moment.timestamp(), self._truth_at)
            hours = (moment - self.scenario.start).total_seconds() / 3600.0
            values, applied = self.faults.channels(hours, dict(measured))
            state = self.drive.state(moment)
            seen = self.gps_model.observe(
                moment.replace(microsecond=0).timestamp(), state.lat, state.lon
            )
            self._pending = {
                "type": "reading",
                "vehicle": self.name,
                "request": self._requests,
                "time": format_time(moment),
                "position": {
                    "lat": round(state.lat, 7),
                    "lon": round(state.lon, 7),
                    "speed_mps": round(state.speed_mps, 2),
                    "heading_deg": round(state.heading_deg, 1),
                },
                "gps": {
                    "lat": round(seen.lat, 7),
                    "lon": round(seen.lon, 7),
                    "valid": seen.valid,
                    "hdop": seen.hdop,
                    "error_m": round(seen.error_m, 1),
                    "multipath": seen.multipath,
                },
                "truth": {
                    ch: _r(v)
                    for ch, v in self.field.true_values(state.lat, state.lon, moment).items()
                },
                "active_sources": [s.name for s in self.field.active_sources(moment)],
                "faults": applied,
                "warmup": sensors.warming_up(moment.timestamp(), self._served_channels),
            }
        return moment, values

    def _served(self, served: Served) -> None:
        if self._on_served is not None:
            self._on_served(served)
        with self._lock:
            record = self._pending
            self._pending = None
        if record is None:
            return
        record["served"] = {ch: _r(v) for ch, v in served.values.items()}
        if served.fault != "ok":
            record["faults"] = [*record["faults"], served.fault]
        if self._truth is not None:
            self._truth.write(record)
        if self._on_truth is not None:
            self._on_truth(record)


class ScenarioRun:
    """All vehicles of a scenario on one simulated clock, with the truth file beside them."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        speed: float = 1.0,
        truth_path: str | None = None,
        on_truth: Callable[[dict[str, Any]], None] | None = None,
        on_served: Callable[[str, Served], None] | None = None,
        start: datetime | None = None,
        clock: SimClock | None = None,
    ) -> None:
        self.scenario = scenario
        self.clock = clock or SimClock(start or scenario.start, speed=speed)
        self.field = build_field(scenario)
        routes = {name: build_route(spec) for name, spec in scenario.routes.items()}
        self.truth = (
            None
            if truth_path is None
            else TruthWriter(
                truth_path,
                {
                    "scenario": scenario.name,
                    "seed": scenario.seed,
                    "start": format_time(scenario.start),
                    "end": format_time(scenario.end),
                    "timezone_h": scenario.timezone_h,
                    "vehicles": [v.name for v in scenario.vehicles],
                    "shifts": shift_records(scenario),
                },
                list(scenario.sources),
            )
        )
        self.vehicles = [
            PatrolVehicle(
                scenario,
                spec,
                i,
                self.clock,
                self.field,
                routes,
                self.truth,
                on_truth,
                None if on_served is None else functools.partial(on_served, spec.name),
            )
            for i, spec in enumerate(scenario.vehicles)
        ]

    def start(self) -> None:
        for vehicle in self.vehicles:
            vehicle.start()

    def stop(self) -> None:
        for vehicle in self.vehicles:
            vehicle.stop()
        if self.truth is not None:
            self.truth.close()

    def remaining_wall_s(self) -> float:
        return max(0.0, (self.scenario.end - self.clock.now()) / timedelta(seconds=1)) / (
            self.clock.speed
        )
