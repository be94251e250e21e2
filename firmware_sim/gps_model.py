"""What the GPS receiver reports for where the vehicle truly is: error, multipath, dropouts.

A pure function of (time, true position) and the seed, so a run is reproducible whatever the
simulation speed:
- a slowly wandering horizontal error whose size stays within `error_m` (3-8 m in the open);
- multipath jumps: in each minute, with probability `multipath_per_h / 60`, a jump of
  `multipath_m` metres for a few seconds, with a raised HDOP;
- dropouts: no fix inside the given zones (tunnels, overpasses), and random short outages.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from firmware_sim.geo import EARTH_RADIUS_M, haversine_m


@dataclass(frozen=True, slots=True)
class DropoutZone:
    lat: float
    lon: float
    radius_m: float


@dataclass(frozen=True, slots=True)
class GpsSpec:
    error_m: tuple[float, float] = (3.0, 8.0)
    multipath_per_h: float = 2.0
    multipath_m: tuple[float, float] = (20.0, 50.0)
    multipath_s: tuple[float, float] = (3.0, 15.0)
    dropout_zones: tuple[DropoutZone, ...] = ()
    dropouts_per_h: float = 0.5
    dropout_s: tuple[float, float] = (5.0, 40.0)
    hdop: float = 0.9  # in the open; rises with the error

    def __post_init__(self) -> None:
        for name in ("error_m", "multipath_m", "multipath_s", "dropout_s"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be [low, high] with 0 <= low <= high")
        if self.multipath_per_h < 0 or self.dropouts_per_h < 0:
            raise ValueError("rates must not be negative")


@dataclass(frozen=True, slots=True)
class GpsObservation:
    """One epoch as the receiver reports it; `valid` False means no fix (RMC V, GGA quality 0)."""

    lat: float
    lon: float
    valid: bool
    quality: int
    satellites: int
    hdop: float
    error_m: float  # distance between reported and true position (0 without a fix)
    multipath: bool = False


def _offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    dlon = math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
    return lat + dlat, lon + dlon


def minute_event(
    seed: int, kind: str, rate_per_h: float, span: tuple[float, float], minute: int
) -> tuple[float, float, random.Random] | None:
    """The event of `kind` that starts in `minute` (since the epoch), if one does: its start and
    end (s) and its generator, for the event's further draws. Each minute draws on its own, so
    any moment's events are known without walking the time before it."""
    rng = random.Random(f"{seed}:{kind}:{minute}")
    if rng.random() >= rate_per_h / 60.0:
        return None
    start = minute * 60.0 + rng.uniform(0, 60.0)
    return start, start + rng.uniform(*span), rng


class GpsErrorModel:
    def __init__(self, spec: GpsSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        rng = random.Random(f"gps:{seed}")
        # the wandering error: two (period s, phase) of its size, one of its direction
        self.size = [(rng.uniform(60, 600), rng.uniform(0, 2 * math.pi)) for _ in range(2)]
        self.turn = (rng.uniform(120, 900), rng.uniform(0, 2 * math.pi))

    def _event(
        self, kind: str, rate_per_h: float, span: tuple[float, float], t: float
    ) -> tuple[float, random.Random] | None:
        """The event of `kind` covering second t, if any: (its start, its generator)."""
        minute = math.floor(t / 60.0)
        for m in (minute, minute - 1):
            event = minute_event(self.seed, kind, rate_per_h, span, m)
            if event is not None and event[0] <= t < event[1]:
                return event[0], event[2]
        return None

    def observe(self, t: float, lat: float, lon: float) -> GpsObservation:
        """The receiver's report at epoch t (seconds since the Unix epoch) for the true position."""
        spec = self.spec
        in_zone = any(haversine_m(z.lat, z.lon, lat, lon) <= z.radius_m for z in spec.dropout_zones)
        if in_zone or self._event("dropout", spec.dropouts_per_h, spec.dropout_s, t):
            return GpsObservation(lat, lon, False, 0, 3, 99.0, 0.0)
        (p1, f1), (p2, f2) = self.size
        wander = 0.5 + 0.25 * (
            math.sin(2 * math.pi * t / p1 + f1) + math.sin(2 * math.pi * t / p2 + f2)
        )
        low, high = spec.error_m
        size = low + (high - low) * wander
        angle = 2 * math.pi * t / self.turn[0] + self.turn[1]
        east, north = size * math.sin(angle), size * math.cos(angle)
        hdop = spec.hdop * (1.0 + 0.1 * (size - low))
        satellites = 14 - round(2 * wander)
        jump = self._event("multipath", spec.multipath_per_h, spec.multipath_s, t)
        multipath = jump is not None
        if jump is not None:
            rng = jump[1]
            magnitude, direction = rng.uniform(*spec.multipath_m), rng.uniform(0, 2 * math.pi)
            east += magnitude * math.sin(direction)
            north += magnitude * math.cos(direction)
            hdop, satellites = hdop + rng.uniform(1.5, 3.5), max(4, satellites - 5)
        rlat, rlon = _offset(lat, lon, east, north)
        return GpsObservation(
            rlat, rlon, True, 1, satellites, round(hdop, 1), math.hypot(east, north), multipath
        )
