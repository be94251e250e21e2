"""Indicative bands from Chinese standards, next to our own statistics: never compliance values.

A cell median from a moving box is not a 1 h / 24 h average at a fixed site, so these bands are
**indicative** only (the `indicative` field says so in every result).

- IAQI (HJ 633-2012): piecewise-linear between breakpoints. As in real-time (hourly) reporting,
  gases use the 1 h breakpoints and particles the 24 h ones. SO2 has no 1 h IAQI above
  800 ug/m3: the 24 h breakpoints are used there.
- Noise (GB 3096-2008): the day (06-22) and night (22-06) LAeq limits of a functional area class.

Values are in the canonical units of edge.units: ug/m3 for gases and particles at 25 C and
1013.25 hPa (the reference state of GB 3095 since 2018), CO in mg/m3. Convert box units with
edge.units.converter before asking for a band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from edge.units import CHANNELS
from hotspots.analysis.grouping import FloatArray

IAQI_LEVELS = (0, 50, 100, 150, 200, 300, 400, 500)

# Breakpoints per pollutant and averaging basis, in canonical units (CO in mg/m3).
_BREAKPOINTS: Mapping[tuple[str, str], tuple[float, ...]] = MappingProxyType(
    {
        ("so2", "24h"): (0, 50, 150, 475, 800, 1600, 2100, 2620),
        ("so2", "1h"): (0, 150, 500, 650, 800),
        ("no2", "24h"): (0, 40, 80, 180, 280, 565, 750, 940),
        ("no2", "1h"): (0, 100, 200, 700, 1200, 2340, 3090, 3840),
        ("pm10", "24h"): (0, 50, 150, 250, 350, 420, 500, 600),
        ("co", "24h"): (0, 2, 4, 14, 24, 36, 48, 60),
        ("co", "1h"): (0, 5, 10, 35, 60, 90, 120, 150),
        ("o3", "1h"): (0, 160, 200, 300, 400, 800, 1000, 1200),
        ("o3", "8h"): (0, 100, 160, 215, 265, 800),
        ("pm25", "24h"): (0, 35, 75, 115, 150, 250, 350, 500),
    }
)

# The basis real-time reports use for each pollutant.
REALTIME_BASIS: Mapping[str, str] = MappingProxyType(
    {"so2": "1h", "no2": "1h", "co": "1h", "o3": "1h", "pm10": "24h", "pm25": "24h"}
)

# (upper IAQI of the category, name, RGB colour)
_CATEGORIES = (
    (50, "excellent", (0, 228, 0)),
    (100, "good", (255, 255, 0)),
    (150, "lightly polluted", (255, 126, 0)),
    (200, "moderately polluted", (255, 0, 0)),
    (300, "heavily polluted", (153, 0, 76)),
    (math.inf, "severely polluted", (126, 0, 35)),
)

INDICATIVE_NOTE = (
    "Indicative only: mobile monitoring is not a compliance measurement; HJ 633 / GB 3095 / "
    "GB 3096 apply to fixed sites and their averaging periods."
)


@dataclass(frozen=True, slots=True)
class IaqiBand:
    pollutant: str
    value: float
    unit: str
    basis: str  # which breakpoints: "1h", "8h" or "24h"
    iaqi: int | None  # None above the top breakpoint of every basis
    category: str
    colour: tuple[int, int, int]
    indicative: bool = True
    note: str = INDICATIVE_NOTE


def iaqi(pollutant: str, value: float, basis: str | None = None) -> int | None:
    """IAQI of a concentration (canonical unit); None beyond the last breakpoint.

    HJ 633 rounds IAQI up to the next integer.
    """
    if value < 0 or not math.isfinite(value):
        raise ValueError(f"{pollutant}: concentration must be finite and >= 0, got {value}")
    basis = basis or REALTIME_BASIS[pollutant]
    points = _BREAKPOINTS[(pollutant, basis)]
    if pollutant == "so2" and basis == "1h" and value > points[-1]:
        return iaqi("so2", value, "24h")
    for i in range(1, len(points)):
        if value <= points[i]:
            lo_c, hi_c = points[i - 1], points[i]
            lo_i, hi_i = IAQI_LEVELS[i - 1], IAQI_LEVELS[i]
            return math.ceil((hi_i - lo_i) / (hi_c - lo_c) * (value - lo_c) + lo_i)
    return None


def category(index: int | None) -> tuple[str, tuple[int, int, int]]:
    if index is None:
        return _CATEGORIES[-1][1], _CATEGORIES[-1][2]
    for upper, name, colour in _CATEGORIES:
        if index <= upper:
            return name, colour
    return _CATEGORIES[-1][1], _CATEGORIES[-1][2]  # pragma: no cover - inf is the last upper


def iaqi_band(pollutant: str, value: float) -> IaqiBand | None:
    """The indicative IAQI band of a level, or None for a channel without IAQI breakpoints."""
    if pollutant not in REALTIME_BASIS:
        return None
    basis = REALTIME_BASIS[pollutant]
    index = iaqi(pollutant, max(value, 0.0), basis)
    name, colour = category(index)
    return IaqiBand(
        pollutant=pollutant,
        value=value,
        unit=CHANNELS[pollutant].unit,
        basis=basis,
        iaqi=index,
        category=name,
        colour=colour,
    )


@dataclass(frozen=True, slots=True)
class ScaleStep:
    """One colour of a map scale: values up to `upper` (None: no upper end)."""

    upper: float | None
    category: str  # HJ 633 category, or the GB 3096 class whose day limit bounds it
    colour: tuple[int, int, int]


def colour_scale(pollutant: str) -> tuple[ScaleStep, ...] | None:
    """The indicative colour scale of a channel for maps: the HJ 633 categories by the
    concentrations at their IAQI bounds (real-time basis), or for noise the GB 3096 day limits
    (class 1 to 4); None for channels without a national standard."""
    if pollutant == "noise":
        greens = ((55.0, "1", (0, 228, 0)), (60.0, "2", (255, 255, 0)), (65.0, "3", (255, 126, 0)))
        steps = [ScaleStep(upper, f"class {name}", colour) for upper, name, colour in greens]
        steps.append(ScaleStep(70.0, "class 4", (255, 0, 0)))
        steps.append(ScaleStep(None, "over class 4", (153, 0, 76)))
        return tuple(steps)
    if pollutant not in REALTIME_BASIS:
        return None
    points = _BREAKPOINTS[(pollutant, REALTIME_BASIS[pollutant])]
    out = []
    for upper_index, name, colour in _CATEGORIES:
        level = IAQI_LEVELS.index(int(upper_index)) if upper_index in IAQI_LEVELS else None
        upper = points[level] if level is not None and level < len(points) else None
        out.append(ScaleStep(upper, name, colour))
        if upper is None:
            break
    return tuple(out)


# GB 3096-2008 class -> (day limit, night limit), LAeq dB(A).
NOISE_LIMITS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "0": (50.0, 40.0),
        "1": (55.0, 45.0),
        "2": (60.0, 50.0),
        "3": (65.0, 55.0),
        "4a": (70.0, 55.0),
        "4b": (70.0, 60.0),
    }
)
NIGHT_SUDDEN_MARGIN_DB = 15.0  # a sudden noise at night may exceed the limit by at most this
DAY_START_H = 6
NIGHT_START_H = 22


@dataclass(frozen=True, slots=True)
class NoiseBand:
    level: float  # LAeq-like energy mean, dB(A)
    noise_class: str
    period: str  # "day" or "night"
    limit: float
    excess: float  # level - limit, dB (negative: below)
    indicative: bool = True
    note: str = INDICATIVE_NOTE + " A vehicle-mounted microphone also hears its own vehicle."


def noise_band(level: float, noise_class: str = "2", period: str = "day") -> NoiseBand:
    """Compare an energy-mean level with a GB 3096 class limit (indicative)."""
    if noise_class not in NOISE_LIMITS:
        raise ValueError(f"unknown noise class {noise_class!r}; one of {', '.join(NOISE_LIMITS)}")
    if period not in ("day", "night"):
        raise ValueError(f"period must be 'day' or 'night', got {period!r}")
    day, night = NOISE_LIMITS[noise_class]
    limit = day if period == "day" else night
    return NoiseBand(
        level=level, noise_class=noise_class, period=period, limit=limit, excess=level - limit
    )


def to_energy_array(levels: FloatArray) -> FloatArray:
    """edge.units.to_energy element-wise: the array form of the energy-mean rule."""
    return np.power(10.0, levels / 10.0)


def energy_to_level_array(energy: FloatArray) -> FloatArray:
    """edge.units.energy_to_level element-wise (NaN where `energy` is NaN, -inf where it is 0).

    With `to_energy_array`, group energy means are `energy_to_level_array(sums / counts)`.
    """
    return 10.0 * np.log10(energy)
