"""A vehicle driving a route on a simulated clock."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from firmware_sim.route import Route, RoutePoint


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SimClock:
    """Simulated time running `speed` times faster than the wall clock from `start`.

    With `catch_up`, a start in the past runs at `speed` until the simulated time reaches the wall
    clock's, and at real time from then on (a start at or after now: at real time from the start):
    readings never run ahead of now (an ingest refuses readings from the future), and a demo goes
    on storing for as long as it runs.
    """

    start: datetime
    speed: float = 1.0
    monotonic: Callable[[], float] = time.monotonic
    catch_up: bool = False
    wall: Callable[[], datetime] = _utc_now
    _origin: float = field(default=0.0, init=False)
    _lead_s: float = field(default=0.0, init=False)  # how far the start lies behind the wall

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("the simulation start must be timezone-aware")
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        self._origin = self.monotonic()
        if self.catch_up:
            self._lead_s = max(0.0, (self.wall() - self.start).total_seconds())

    def now(self) -> datetime:
        elapsed = self.monotonic() - self._origin
        simulated = elapsed * self.speed
        if self.catch_up and self.speed > 1.0:
            simulated = min(simulated, self._lead_s + elapsed)
        return self.start + timedelta(seconds=simulated)

    def real_time_in_s(self) -> float:
        """Wall seconds until the clock runs at real time: 0 once it does, inf if it never will."""
        if not self.catch_up or self.speed <= 1.0:
            return 0.0 if self.catch_up else math.inf
        caught_up = self._lead_s / (self.speed - 1.0)
        return max(0.0, caught_up - (self.monotonic() - self._origin))


@dataclass(frozen=True, slots=True)
class VehicleState:
    lat: float
    lon: float
    speed_mps: float
    heading_deg: float


class Motion(Protocol):
    """Where a vehicle is at a moment: a constant-speed CruiseDrive or a PatrolDrive with stops."""

    def state(self, moment: datetime, /) -> VehicleState: ...


@dataclass(frozen=True)
class CruiseDrive:
    """Constant cruise speed around a loop, starting `offset_m` along it at `departure`."""

    route: Route
    departure: datetime
    speed_mps: float = 6.0
    offset_m: float = 0.0

    def state(self, moment: datetime) -> VehicleState:
        elapsed = max(0.0, (moment - self.departure).total_seconds())
        point: RoutePoint = self.route.at(self.offset_m + elapsed * self.speed_mps)
        return VehicleState(point.lat, point.lon, self.speed_mps, point.heading_deg)
