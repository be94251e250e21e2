"""Routes from files: a GPX track or route, a GeoJSON LineString, or an NMEA log of a real drive.

Parsers are pure (text or bytes in, waypoints out) and raise RouteError naming the file and the
problem. Points closer than `min_spacing_m` to the previous kept point are dropped: a 1 Hz log of
a vehicle waiting at lights is one waypoint, not sixty.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from edge.epoch import EpochAssembler
from edge.errors import EnvpatrolError
from edge.nmea import NmeaFramer
from firmware_sim.geo import haversine_m
from firmware_sim.route import Route


class RouteError(EnvpatrolError, ValueError):
    """A route file that cannot be used: which file, what is wrong."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"route {source}", problem)


def thin(points: list[tuple[float, float]], min_spacing_m: float) -> list[tuple[float, float]]:
    kept: list[tuple[float, float]] = []
    for lat, lon in points:
        if not kept or haversine_m(*kept[-1], lat, lon) >= min_spacing_m:
            kept.append((lat, lon))
    return kept


def _checked(points: list[tuple[float, float]], source: str) -> list[tuple[float, float]]:
    for lat, lon in points:
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise RouteError(source, f"point ({lat}, {lon}) is not on Earth")
    if len(points) < 2:
        raise RouteError(source, f"needs at least two distinct points, found {len(points)}")
    return points


def parse_gpx(text: str, source: str = "<gpx>") -> list[tuple[float, float]]:
    """Track points (trkpt), else route points (rtept), in file order."""
    try:
        # The file is one the developer chose for a simulation, not input from a network.
        root = ET.fromstring(text)  # noqa: S314
    except ET.ParseError as exc:
        raise RouteError(source, f"not valid XML: {exc}") from exc
    points: list[tuple[float, float]] = []
    for tag in ("trkpt", "rtept"):
        for element in root.iter():
            if element.tag.rsplit("}", 1)[-1] != tag:
                continue
            try:
                points.append((float(element.attrib["lat"]), float(element.attrib["lon"])))
            except (KeyError, ValueError) as exc:
                raise RouteError(source, f"a {tag} lacks a numeric lat or lon") from exc
        if points:
            break
    return _checked(points, source)


def _linestring(doc: Any, source: str) -> list[Any]:
    if not isinstance(doc, dict):
        raise RouteError(source, "GeoJSON must be an object")
    kind = doc.get("type")
    if kind == "LineString":
        coords = doc.get("coordinates")
        if not isinstance(coords, list):
            raise RouteError(source, "LineString.coordinates must be a list")
        return coords
    if kind == "Feature":
        return _linestring(doc.get("geometry"), source)
    if kind == "FeatureCollection":
        for feature in doc.get("features") or []:
            geometry = feature.get("geometry") if isinstance(feature, dict) else None
            if isinstance(geometry, dict) and geometry.get("type") == "LineString":
                return _linestring(geometry, source)
        raise RouteError(source, "the FeatureCollection has no LineString feature")
    raise RouteError(source, f"expected a LineString, Feature or FeatureCollection, got {kind!r}")


def parse_geojson(text: str, source: str = "<geojson>") -> list[tuple[float, float]]:
    """A LineString's positions; GeoJSON writes [lon, lat]."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise RouteError(source, f"not valid JSON: {exc}") from exc
    points: list[tuple[float, float]] = []
    for i, position in enumerate(_linestring(doc, source)):
        if (
            not isinstance(position, list)
            or len(position) < 2
            or not all(isinstance(v, int | float) for v in position[:2])
        ):
            raise RouteError(source, f"coordinates[{i}] is not a [lon, lat] position")
        points.append((float(position[1]), float(position[0])))
    return _checked(points, source)


def parse_nmea(data: bytes, source: str = "<nmea>") -> list[tuple[float, float]]:
    """The valid fixes of an NMEA log (RMC/GGA from any talker); bad sentences are skipped."""
    framer, assembler = NmeaFramer(), EpochAssembler()
    points: list[tuple[float, float]] = []
    for sentence in framer.feed(data + b"\n"):
        fix = assembler.update(sentence)
        if fix is not None and fix.valid:
            points.append((fix.lat, fix.lon))
    if not points:
        raise RouteError(source, "no valid fix in the log")
    return _checked(points, source)


def load_route(
    path: str | Path,
    kind: str | None = None,
    *,
    name: str | None = None,
    closed: bool = False,
    min_spacing_m: float = 5.0,
) -> Route:
    """A route from a .gpx, .geojson/.json or .nmea/.log/.txt file (or `kind` to say which)."""
    p = Path(path)
    kind = kind or {".gpx": "gpx", ".geojson": "geojson", ".json": "geojson"}.get(
        p.suffix.lower(), "nmea"
    )
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise RouteError(str(p), f"cannot read: {exc.strerror}") from exc
    if kind == "gpx":
        points = parse_gpx(raw.decode("utf-8", "replace"), str(p))
    elif kind == "geojson":
        points = parse_geojson(raw.decode("utf-8", "replace"), str(p))
    elif kind == "nmea":
        points = parse_nmea(raw, str(p))
    else:
        raise RouteError(str(p), f"unknown route format {kind!r} (gpx, geojson, nmea)")
    points = _checked(thin(points, min_spacing_m), str(p))
    if closed and haversine_m(*points[0], *points[-1]) < min_spacing_m:
        points.pop()
    return Route(name or p.stem, points, closed=closed)
