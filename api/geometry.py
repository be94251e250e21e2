"""Polygons of management grids and which one holds a point, in plain Python.

The database has no PostGIS (checked with pg_available_extensions), and a sub-district has tens
of grids, not millions, so the test runs here: a bounding-box check, then ray casting with the
even-odd rule over every ring (holes included). The crossing test is half-open (an edge counts
when one end is strictly above the point's latitude and the other is not, and it crosses
strictly east of the point), so a point on an edge shared by two grids that tile an area falls in
exactly one of them.

Coordinates are GeoJSON positions, (longitude, latitude) in WGS-84 degrees, treated as planar:
right for polygons a few kilometres across away from the poles and the 180th meridian.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge.errors import EnvpatrolError

Position = tuple[float, float]
Ring = Sequence[Position]

MAX_POSITIONS = 100_000  # per uploaded geometry


class GeometryError(EnvpatrolError, ValueError):
    """A geometry that cannot be a grid; `subject` says which part (e.g. 'coordinates[0][3]')."""


def ring_contains(ring: Ring, lon: float, lat: float) -> bool:
    """Even-odd crossing test of one closed or open ring.

    Each edge's crossing is computed from its lower end, whichever way the ring runs, so a point
    on an edge gets the same answer for either orientation or starting vertex."""
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        (xi, yi), (xj, yj) = sorted((ring[i], ring[j]), key=lambda p: (p[1], p[0]))
        if (yi > lat) != (yj > lat):
            crossing = xi + (lat - yi) * (xj - xi) / (yj - yi)
            if lon < crossing:
                inside = not inside
        j = i
    return inside


@dataclass(frozen=True, slots=True)
class PolygonArea:
    """A Polygon or MultiPolygon as lists of rings, with its bounding box."""

    polygons: tuple[tuple[tuple[Position, ...], ...], ...]
    west: float
    south: float
    east: float
    north: float

    def contains(self, lon: float, lat: float) -> bool:
        if not (self.west <= lon <= self.east and self.south <= lat <= self.north):
            return False
        for rings in self.polygons:
            inside = False
            for ring in rings:  # even-odd over the outer ring and its holes
                if ring_contains(ring, lon, lat):
                    inside = not inside
            if inside:
                return True
        return False

    def geojson(self) -> dict[str, Any]:
        if len(self.polygons) == 1:
            return {"type": "Polygon", "coordinates": _lists(self.polygons[0])}
        return {"type": "MultiPolygon", "coordinates": [_lists(p) for p in self.polygons]}

    def centroid(self) -> Position:
        """The area-weighted centroid of the outer rings, for placing a label."""
        total = cx = cy = 0.0
        for rings in self.polygons:
            ring = rings[0]
            for (x1, y1), (x2, y2) in itertools.pairwise(ring):
                cross = x1 * y2 - x2 * y1
                total += cross
                cx += (x1 + x2) * cross
                cy += (y1 + y2) * cross
        if total == 0:
            return (self.west + self.east) / 2, (self.south + self.north) / 2
        return cx / (3 * total), cy / (3 * total)


def _lists(rings: tuple[tuple[Position, ...], ...]) -> list[list[list[float]]]:
    return [[[x, y] for x, y in ring] for ring in rings]


def _position(raw: Any, where: str) -> Position:
    if not isinstance(raw, list | tuple) or len(raw) < 2:
        raise GeometryError(where, "a position is [longitude, latitude]")
    lon, lat = raw[0], raw[1]
    for value in (lon, lat):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise GeometryError(where, "longitude and latitude must be numbers")
        if not math.isfinite(value):
            raise GeometryError(where, "longitude and latitude must be finite")
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise GeometryError(where, f"[{lon}, {lat}] is not a WGS-84 longitude, latitude")
    return float(lon), float(lat)


def _ring(raw: Any, where: str) -> tuple[Position, ...]:
    if not isinstance(raw, list | tuple):
        raise GeometryError(where, "a ring is a list of positions")
    ring = tuple(_position(p, f"{where}[{i}]") for i, p in enumerate(raw))
    if len(ring) < 4:
        raise GeometryError(where, "a ring needs at least 4 positions (the last repeats the first)")
    if ring[0] != ring[-1]:
        raise GeometryError(where, "a ring must be closed: its last position repeats the first")
    if len(set(ring)) < 3:
        raise GeometryError(where, "a ring needs at least 3 distinct positions")
    return ring


def _polygon(raw: Any, where: str) -> tuple[tuple[Position, ...], ...]:
    if not isinstance(raw, list | tuple) or not raw:
        raise GeometryError(where, "a polygon is a non-empty list of rings")
    return tuple(_ring(r, f"{where}[{i}]") for i, r in enumerate(raw))


def parse_area(geometry: Any) -> PolygonArea:
    """A GeoJSON Polygon or MultiPolygon, checked; GeometryError names what is wrong."""
    if not isinstance(geometry, dict):
        raise GeometryError("geometry", "must be a GeoJSON Polygon or MultiPolygon object")
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    polygons: tuple[tuple[tuple[Position, ...], ...], ...]
    if kind == "Polygon":
        polygons = (_polygon(coordinates, "coordinates"),)
    elif kind == "MultiPolygon":
        if not isinstance(coordinates, list | tuple) or not coordinates:
            raise GeometryError("coordinates", "a MultiPolygon is a non-empty list of polygons")
        polygons = tuple(_polygon(p, f"coordinates[{i}]") for i, p in enumerate(coordinates))
    else:
        raise GeometryError("type", f"must be Polygon or MultiPolygon, got {kind!r}")
    positions = [p for rings in polygons for ring in rings for p in ring]
    if len(positions) > MAX_POSITIONS:
        raise GeometryError("coordinates", f"more than {MAX_POSITIONS} positions")
    lons = [p[0] for p in positions]
    lats = [p[1] for p in positions]
    return PolygonArea(polygons, min(lons), min(lats), max(lons), max(lats))
