"""A synthetic pollution field: per-channel background plus sources at known places.

Deterministic for a seed. Background = base level x diurnal factor x a slowly varying random
factor (a sum of low-frequency sinusoids with seeded phases, correlation time of hours). Each
source adds amplitude x exp(-distance / decay length) to its channels while it is active.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime

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


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    kind: str  # "dust", "cooking", "traffic", "odor"
    lat: float
    lon: float
    amplitude: dict[str, float]  # added at the source, canonical units
    decay_m: float = 40.0

    def contribution(self, lat: float, lon: float) -> dict[str, float]:
        d = haversine_m(self.lat, self.lon, lat, lon)
        weight = math.exp(-d / self.decay_m)
        return {ch: amp * weight for ch, amp in self.amplitude.items()}


@dataclass
class PollutionField:
    sources: list[Source]
    seed: int = 1
    background: dict[str, float] = field(default_factory=lambda: dict(BACKGROUND))
    _phases: dict[str, tuple[float, float]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self._phases = {
            ch: (rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)) for ch in self.background
        }

    def background_at(self, moment: datetime) -> dict[str, float]:
        hours = moment.timestamp() / 3600.0
        local_hour = (moment.hour + 8 + moment.minute / 60.0) % 24  # Beijing time
        out: dict[str, float] = {}
        for ch, base in self.background.items():
            p1, p2 = self._phases[ch]
            slow = (
                1.0
                + 0.12 * math.sin(2 * math.pi * hours / 5.0 + p1)
                + 0.06 * math.sin(2 * math.pi * hours / 1.7 + p2)
            )
            if ch == "temperature":
                out[ch] = (
                    base + 5.0 * math.sin(2 * math.pi * (local_hour - 9) / 24) + (slow - 1) * 5
                )
            elif ch in ("humidity", "noise"):
                out[ch] = base * (0.98 + 0.04 * slow - 0.02)
            else:
                out[ch] = base * slow
        return out

    def true_values(self, lat: float, lon: float, moment: datetime) -> dict[str, float]:
        values = self.background_at(moment)
        for source in self.sources:
            for ch, added in source.contribution(lat, lon).items():
                # For noise the amplitude is the level rise in dB at the source.
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
