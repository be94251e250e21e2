"""Absolute floors of a hotspot's enhancement, per channel (pure data, no database).

In each channel's canonical unit (edge.units). A cell is never a hotspot for less than this,
however quiet the rest of the area is. The hotspot method gives PM2.5 10 ug/m3, NO2 10 ug/m3 and
noise 3 dB (docs/hotspots.md); the others follow the same order of magnitude relative to typical
urban levels and sensor resolution. Temperature and humidity have none: they are not pollutants.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

HOTSPOT_FLOORS: Mapping[str, float] = MappingProxyType(
    {
        "pm25": 10.0,
        "pm10": 20.0,
        "no2": 10.0,
        "noise": 3.0,
        "cooking_fume": 0.2,
        "odor": 2.0,
        "co": 0.3,
        "so2": 5.0,
        "o3": 10.0,
        "hcho": 5.0,
        "tvoc": 50.0,
        "co2": 30.0,
        "pollen": 20.0,
    }
)
