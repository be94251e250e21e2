"""WGS-84 to GCJ-02 (and BD-09), for drawing on Chinese base maps only.

GNSS gives WGS-84 and everything envpatrol stores is WGS-84. Chinese web maps (AMap, Tencent)
draw in GCJ-02, an offset datum defined by a published obfuscation formula, and Baidu in BD-09,
a further rotation of GCJ-02. Near Shuangjing the GCJ-02 shift is about 544 m: a hotspot drawn
without converting lands several blocks away. Convert for display only, never store the result,
and convert a clicked point back before querying. Outside China the datums coincide.

The same formula lives in the dashboard (api/dashboard/static/datum.js); the unit tests check
both against the reference figures.
"""

from __future__ import annotations

import math

# Krasovsky 1940 ellipsoid, which the GCJ-02 formula is written for.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0

LonLat = tuple[float, float]


def outside_china(lon: float, lat: float) -> bool:
    """The rough box outside which GCJ-02 equals WGS-84 (as the published formula uses it)."""
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _shift_lat(x: float, y: float) -> float:
    out = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    out += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    out += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    out += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return out


def _shift_lon(x: float, y: float) -> float:
    out = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    out += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    out += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    out += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return out


def wgs84_to_gcj02(lon: float, lat: float) -> LonLat:
    if outside_china(lon, lat):
        return lon, lat
    dlat = _shift_lat(lon - 105.0, lat - 35.0)
    dlon = _shift_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = 1.0 - _EE * math.sin(radlat) ** 2
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * math.cos(radlat) * math.pi)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: float, lat: float, iterations: int = 6) -> LonLat:
    """The inverse by fixed-point iteration (the shift varies slowly): millimetres, not the
    metres of the usual one-step approximation."""
    wlon, wlat = lon, lat
    for _ in range(iterations):
        glon, glat = wgs84_to_gcj02(wlon, wlat)
        wlon += lon - glon
        wlat += lat - glat
    return wlon, wlat


def gcj02_to_bd09(lon: float, lat: float) -> LonLat:
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def wgs84_to_bd09(lon: float, lat: float) -> LonLat:
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))
