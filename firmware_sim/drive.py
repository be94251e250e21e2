"""A vehicle driving a route on a simulated clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from firmware_sim.route import Route, RoutePoint


@dataclass
class SimClock:
    """Simulated time running `speed` times faster than the wall clock from `start`."""

    start: datetime
    speed: float = 1.0
    monotonic: Callable[[], float] = time.monotonic
    _origin: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("the simulation start must be timezone-aware")
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        self._origin = self.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(self.monotonic() - self._origin) * self.speed)


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
