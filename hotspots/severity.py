"""Severity: one scale on which hotspots of different pollutants are ranked.

An officer's list mixes pollutants, so it needs an order that compares them; alphabetical order
put a CO hotspot in the "excellent" band first. Severity is what the place adds to the national
index where it is, in index points (docs/hotspots.md, "Severity"):

- pollutants with IAQI breakpoints (HJ 633: PM2.5, PM10, NO2, O3, SO2, CO): IAQI(level) -
  IAQI(level - excess), the points of the index the hotspot's excess over its surroundings
  accounts for, on the real-time basis;
- noise: 10 points per dB of the level above the GB 3096 class limit that the excess accounts
  for (min(excess, level - limit)); 5 dB over the limit weighs as one 50-point IAQI category;
- channels without a national standard (CO2, HCHO, TVOC, odor, cooking fume, pollen): no
  severity; they are listed after the others, by excess in units of delta (the detection step).

All of it is indicative, as the bands are: mobile readings are not compliance measurements.
"""

from __future__ import annotations

import math

from hotspots.analysis.standards import NOISE_LIMITS, REALTIME_BASIS, iaqi

NOISE_POINTS_PER_DB = 10.0


def severity(
    pollutant: str,
    level: float,
    excess: float,
    noise_class: str = "2",
    period: str = "day",
) -> float | None:
    """Index points the hotspot adds (see the module's text); None without a standard."""
    if not (math.isfinite(level) and math.isfinite(excess)):
        return None
    if pollutant == "noise":
        day, night = NOISE_LIMITS[noise_class]
        over = level - (night if period == "night" else day)
        return NOISE_POINTS_PER_DB * max(0.0, min(excess, over))
    if pollutant not in REALTIME_BASIS:
        return None
    top = max(level, 0.0)
    below = max(top - max(excess, 0.0), 0.0)
    high = iaqi(pollutant, top)
    low = iaqi(pollutant, below)
    if high is None:  # beyond the last breakpoint: the index's top, 500
        high = 500
    if low is None:
        low = 500
    return float(max(0, high - low))


def order_key(points: float | None, excess: float, delta: float) -> tuple[float, ...]:
    """Sort key, most severe first: those with a severity by it, then the rest by excess/delta."""
    relative = excess / delta if delta > 0 and math.isfinite(excess) else 0.0
    if points is None:
        return (1.0, -relative)
    return (0.0, -points, -relative)
