"""A synthetic pollution field: per-channel background plus sources at known places.

Deterministic for a seed and a pure function of place and time, so the ground truth of any
reading can be recomputed. Background = base level x diurnal factor x a slowly varying random
factor (a sum of sinusoids with seeded periods around the correlation time and seeded phases: a
smooth stationary process). Each source adds amplitude x exp(-distance / decay length) to its
channels while its schedule has it on; a line source measures the distance to its segment.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from edge.quality import segment_distance_m
from firmware_sim.geo import haversine_m

# Typical urban background in Beijing in canonical units, and the sensor noise (1 sigma) of a
# patrol box's modules.
BACKGROUND: dict[str, float] = {
    "temperature": 12.0,
    "humidity": 45.0,
    "noise": 62.0,
    "pm25": 38.0,
    "pm10": 65.0,
    "co2": 430.0,
    "o3": 60.0,
    "no2": 40.0,
    "so2": 8.0,
    "co": 0.7,
    "hcho": 8.0,
    "tvoc": 120.0,
    "odor": 1.5,
    "cooking_fume": 0.08,
    "pollen": 20.0,
}
NOISE_SIGMA: dict[str, float] = {
    "temperature": 0.1,
    "humidity": 0.5,
    "noise": 1.0,
    "pm25": 2.0,
    "pm10": 3.0,
    "co2": 5.0,
    "o3": 3.0,
    "no2": 3.0,
    "so2": 1.0,
    "co": 0.03,
    "hcho": 1.0,
    "tvoc": 10.0,
    "odor": 0.2,
    "cooking_fume": 0.01,
    "pollen": 2.0,
}

# Traffic-related channels follow the rush hours; ozone follows the sun; the rest is flat apart
# from the random process.
_RUSH = frozenset({"no2", "co", "pm25", "pm10", "noise", "co2", "tvoc"})
MEAL_TIMES: tuple[tuple[float, float], ...] = ((10.5, 13.5), (16.5, 20.0))

ScheduleKind = Literal["always", "meals", "share"]


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a source emits.

    `always`; `meals`: inside the local-time `windows` (default lunch and dinner, or any
    schedule of daily windows); `share`: on in a seeded share of consecutive windows of
    `window_min` minutes. A pass of a patrol vehicle through a source takes well under a window,
    so each pass meets the source on or off. `days` < 1 adds a day pattern on top of any kind: the
    source works only on a seeded share of local days (a site that is busy on some days).
    """

    kind: ScheduleKind = "always"
    windows: tuple[tuple[float, float], ...] = MEAL_TIMES
    share: float = 1.0
    window_min: float = 15.0
    days: float = 1.0  # share of local days on which the source works at all

    def __post_init__(self) -> None:
        if not 0.0 <= self.days <= 1.0:
            raise ValueError(f"days must be a share in [0, 1], got {self.days}")

    def on_day(self, moment: datetime, key: str, timezone_h: float = 8.0) -> bool:
        """Whether the source works on the local day of `moment` at all."""
        if self.days >= 1.0:
            return True
        day = (moment + timedelta(hours=timezone_h)).date().isoformat()
        return random.Random(f"{key}:day:{day}").random() < self.days

    def active(self, moment: datetime, key: str, timezone_h: float = 8.0) -> bool:
        if not self.on_day(moment, key, timezone_h):
            return False
        if self.kind == "always":
            return True
        if self.kind == "meals":
            local = moment + timedelta(hours=timezone_h)
            hour = local.hour + local.minute / 60.0 + local.second / 3600.0
            return any(start <= hour < end for start, end in self.windows)
        slot = math.floor(moment.timestamp() / (self.window_min * 60.0))
        return random.Random(f"{key}:{slot}").random() < self.share


@dataclass(frozen=True, slots=True)
class Source:
    """A point source at (lat, lon), or a line source from there to `end` (lat, lon); with
    `radius_m` > 0 an area source: the full amplitude within radius_m of the point or line, decaying
    beyond it (a yard, a market)."""

    name: str
    kind: str  # "dust", "cooking", "traffic", "odor", ...
    lat: float
    lon: float
    amplitude: dict[str, float]  # added at the source, canonical units (dB rise for noise)
    decay_m: float = 40.0
    end: tuple[float, float] | None = None
    schedule: Schedule = field(default_factory=Schedule)
    radius_m: float = 0.0

    def distance_m(self, lat: float, lon: float) -> float:
        if self.end is None:
            d = haversine_m(self.lat, self.lon, lat, lon)
        else:
            d = segment_distance_m((self.lat, self.lon), self.end, (lat, lon))
        return max(0.0, d - self.radius_m)

    def contribution(self, lat: float, lon: float) -> dict[str, float]:
        weight = math.exp(-self.distance_m(lat, lon) / self.decay_m)
        return {ch: amp * weight for ch, amp in self.amplitude.items()}


@dataclass
class PollutionField:
    sources: list[Source]
    seed: int = 1
    background: dict[str, float] = field(default_factory=lambda: dict(BACKGROUND))
    diurnal: bool = True
    variability: float = 0.12  # 1 sigma of the slow random factor, relative
    correlation_h: float = 2.0  # typical time scale of the slow random factor
    timezone_h: float = 8.0  # local time offset (Beijing) for the diurnal cycle and meal times
    _terms: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        # Six sinusoids per channel with periods spread around the correlation time; amplitudes
        # scaled so the sum has the requested standard deviation.
        for ch in self.background:
            terms = []
            for _ in range(6):
                period_h = self.correlation_h * rng.uniform(1.5, 6.0)
                terms.append((period_h, rng.uniform(0, 2 * math.pi), rng.uniform(0.5, 1.0)))
            norm = math.sqrt(sum(a * a for _, _, a in terms) / 2.0)
            self._terms[ch] = [(p, ph, a / norm) for p, ph, a in terms]

    def slow_factor(self, channel: str, moment: datetime) -> float:
        hours = moment.timestamp() / 3600.0
        total = sum(a * math.sin(2 * math.pi * hours / p + ph) for p, ph, a in self._terms[channel])
        return max(0.2, 1.0 + self.variability * total)

    def local_hour(self, moment: datetime) -> float:
        local = moment + timedelta(hours=self.timezone_h)
        return local.hour + local.minute / 60.0 + local.second / 3600.0

    def diurnal_factor(self, channel: str, local_hour: float) -> float:
        if not self.diurnal:
            return 1.0
        if channel in _RUSH:
            morning = math.exp(-(((local_hour - 8.0) / 1.5) ** 2))
            evening = math.exp(-(((local_hour - 18.0) / 2.0) ** 2))
            night = math.exp(-(((local_hour - 3.5) / 2.5) ** 2))
            return 1.0 + 0.35 * morning + 0.3 * evening - 0.25 * night
        if channel == "o3":
            return 0.5 + 0.9 * math.exp(-(((local_hour - 15.0) / 3.0) ** 2))
        return 1.0

    def background_at(self, moment: datetime) -> dict[str, float]:
        local_hour = self.local_hour(moment)
        out: dict[str, float] = {}
        for ch, base in self.background.items():
            slow = self.slow_factor(ch, moment)
            if ch == "temperature":
                cycle = 5.0 * math.sin(2 * math.pi * (local_hour - 9) / 24) if self.diurnal else 0
                out[ch] = base + cycle + (slow - 1) * 5
            elif ch == "humidity":
                out[ch] = min(100.0, base * slow)
            elif ch == "noise":
                out[ch] = base + 4.0 * (self.diurnal_factor(ch, local_hour) - 1) + (slow - 1) * 5
            else:
                out[ch] = base * self.diurnal_factor(ch, local_hour) * slow
        return out

    def active_sources(self, moment: datetime) -> list[Source]:
        return [
            s
            for s in self.sources
            if s.schedule.active(moment, f"{self.seed}:{s.name}", self.timezone_h)
        ]

    def true_values(self, lat: float, lon: float, moment: datetime) -> dict[str, float]:
        values = self.background_at(moment)
        for source in self.active_sources(moment):
            for ch, added in source.contribution(lat, lon).items():
                values[ch] = values.get(ch, 0.0) + added
        return values


# Sources placed along the built-in Shuangjing loop: what patrol officers meet on that route.
SHUANGJING_SOURCES = [
    Source(
        "construction-gate-guangqu",
        "dust",
        39.89368,
        116.47020,
        {"pm10": 180.0, "pm25": 60.0},
        decay_m=35.0,
    ),
    Source(
        "restaurant-street-middle",
        "cooking",
        39.88986,
        116.46700,
        {"cooking_fume": 1.2, "odor": 12.0, "pm25": 25.0, "tvoc": 300.0},
        decay_m=30.0,
    ),
    Source(
        "junction-xidawang",
        "traffic",
        39.88600,
        116.47470,
        {"no2": 90.0, "co": 1.5, "noise": 12.0},
        decay_m=45.0,
    ),
]
