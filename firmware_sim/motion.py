"""A patrol's speed profile: cruising between junctions, stops at some junctions, idling.

The whole timetable is drawn once from the seed (distance along the route against time, piece
by piece), so the vehicle's state is a pure function of time and the same seed drives the same
patrol however fast the simulation runs.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from datetime import datetime

from firmware_sim.drive import VehicleState
from firmware_sim.route import Route


@dataclass(frozen=True, slots=True)
class SpeedProfile:
    """How a patrol vehicle moves. Durations in seconds, speeds in m/s."""

    cruise_mps: float = 6.0
    cruise_spread: float = 0.2  # each leg's speed is cruise x U(1 - spread, 1 + spread)
    junction_stop_share: float = 0.5  # share of junctions where the vehicle stops
    junction_stop_s: tuple[float, float] = (10.0, 45.0)
    idle_every_s: tuple[float, float] = (1800.0, 3600.0)  # time between idling stops
    idle_s: tuple[float, float] = (120.0, 600.0)  # engine running, vehicle standing

    def __post_init__(self) -> None:
        if self.cruise_mps <= 0:
            raise ValueError("cruise_mps must be positive")
        if not 0 <= self.cruise_spread < 1 or not 0 <= self.junction_stop_share <= 1:
            raise ValueError("cruise_spread must be in [0, 1) and junction_stop_share in [0, 1]")
        for name in ("junction_stop_s", "idle_every_s", "idle_s"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be [low, high] with 0 <= low <= high")


@dataclass(frozen=True, slots=True)
class Piece:
    t: float  # seconds since departure
    distance_m: float  # along the route at t
    speed_mps: float  # until the next piece (0 when standing)
    heading_deg: float | None = None  # kept while standing


class PatrolDrive:
    """A vehicle on `route` from `departure`, following a seeded speed profile for `horizon_s`
    (after that it keeps cruising)."""

    def __init__(
        self,
        route: Route,
        departure: datetime,
        profile: SpeedProfile | None = None,
        *,
        offset_m: float = 0.0,
        seed: int = 0,
        horizon_s: float = 24 * 3600.0,
    ) -> None:
        self.route = route
        self.departure = departure
        self.profile = profile or SpeedProfile()
        self.offset_m = offset_m
        self.pieces = _timetable(route, self.profile, offset_m, random.Random(seed), horizon_s)
        self._times = [p.t for p in self.pieces]

    def state(self, moment: datetime) -> VehicleState:
        elapsed = max(0.0, (moment - self.departure).total_seconds())
        piece = self.pieces[bisect.bisect_right(self._times, elapsed) - 1]
        distance = piece.distance_m + (elapsed - piece.t) * piece.speed_mps
        point = self.route.at(distance)
        if piece.speed_mps == 0:
            heading = piece.heading_deg if piece.heading_deg is not None else point.heading_deg
            return VehicleState(point.lat, point.lon, 0.0, heading)
        return VehicleState(point.lat, point.lon, piece.speed_mps, point.heading_deg)


def _timetable(
    route: Route, profile: SpeedProfile, offset_m: float, rng: random.Random, horizon_s: float
) -> list[Piece]:
    junctions = route.junctions() or [0.0]
    length = route.length_m
    t, d = 0.0, offset_m
    lap = math.floor(offset_m / length)
    k = bisect.bisect_right(junctions, offset_m - lap * length)  # the next junction ahead
    next_idle = rng.uniform(*profile.idle_every_s)
    pieces: list[Piece] = []
    while t < horizon_s:
        if k == len(junctions):
            k, lap = 0, lap + 1
        ahead = lap * length + junctions[k] - d
        k += 1
        if ahead <= 0:
            continue
        speed = profile.cruise_mps * rng.uniform(
            1 - profile.cruise_spread, 1 + profile.cruise_spread
        )
        pieces.append(Piece(t, d, speed))
        t += ahead / speed
        d += ahead
        heading = route.at(d - 0.5).heading_deg
        stop = 0.0
        if rng.random() < profile.junction_stop_share:
            stop += rng.uniform(*profile.junction_stop_s)
        if t >= next_idle:
            stop += rng.uniform(*profile.idle_s)
            next_idle = t + stop + rng.uniform(*profile.idle_every_s)
        if stop > 0:
            pieces.append(Piece(t, d, 0.0, heading))
            t += stop
    pieces.append(Piece(t, d, profile.cruise_mps))
    return pieces
