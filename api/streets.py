"""The street layer: an operator's GeoJSON street file, shown under the hotspots and used to
name the street a hotspot is on.

The map must show streets even where no tile server is reachable (a sub-district's intranet, a
phone in a dead spot), so the API serves a street file of the operator's own: a GeoJSON
FeatureCollection of LineString / MultiLineString features in WGS-84, each with a `name` (and,
optionally, `name:zh` / `name:en`). A hotspot's street is the named street nearest its centre
within `MAX_STREET_M`. Lookups use a grid of buckets about 200 m wide, so a city's streets
answer a list of hundreds of hotspots in milliseconds.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import EnvpatrolError

MAX_STREET_M = 60.0
_BUCKET_DEG = 0.002  # about 220 m of latitude
_M_PER_DEG = 111_320.0


NO_STREETS: dict[str, Any] = {"type": "FeatureCollection", "features": []}


class StreetFileError(EnvpatrolError, ValueError):
    """A street file that is not a FeatureCollection of named lines in WGS-84."""


@dataclass(frozen=True, slots=True)
class Street:
    name: str
    names: Mapping[str, str]  # language -> name, from name:zh / name:en
    coordinates: tuple[tuple[tuple[float, float], ...], ...]  # lines of (lon, lat)


@dataclass
class StreetLayer:
    """The streets of a file, with their GeoJSON for the map and an index by position."""

    streets: list[Street]
    geojson: dict[str, Any]
    _buckets: dict[tuple[int, int], list[tuple[int, float, float, float, float]]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        buckets: dict[tuple[int, int], list[tuple[int, float, float, float, float]]]
        buckets = defaultdict(list)
        for i, street in enumerate(self.streets):
            for line in street.coordinates:
                for (lon1, lat1), (lon2, lat2) in itertools.pairwise(line):
                    for key in _keys_between(lat1, lon1, lat2, lon2):
                        buckets[key].append((i, lat1, lon1, lat2, lon2))
        self._buckets = dict(buckets)

    def street_at(self, lat: float, lon: float, max_m: float = MAX_STREET_M) -> Street | None:
        """The street nearest (lat, lon) within max_m, or None."""
        best: tuple[float, int] | None = None
        row, col = _key(lat, lon)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                for i, lat1, lon1, lat2, lon2 in self._buckets.get((row + dr, col + dc), ()):
                    d = _segment_m(lat, lon, lat1, lon1, lat2, lon2)
                    if d <= max_m and (best is None or d < best[0]):
                        best = (d, i)
        return None if best is None else self.streets[best[1]]


def _key(lat: float, lon: float) -> tuple[int, int]:
    return (math.floor(lat / _BUCKET_DEG), math.floor(lon / _BUCKET_DEG))


def _keys_between(lat1: float, lon1: float, lat2: float, lon2: float) -> Iterator[tuple[int, int]]:
    r1, c1 = _key(lat1, lon1)
    r2, c2 = _key(lat2, lon2)
    for r in range(min(r1, r2), max(r1, r2) + 1):
        for c in range(min(c1, c2), max(c1, c2) + 1):
            yield (r, c)


def _segment_m(lat: float, lon: float, lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Distance in metres from a point to a segment, on a local plane (streets are short)."""
    kx = _M_PER_DEG * math.cos(math.radians(lat))
    ax, ay = (lon1 - lon) * kx, (lat1 - lat) * _M_PER_DEG
    bx, by = (lon2 - lon) * kx, (lat2 - lat) * _M_PER_DEG
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    f = 0.0 if length2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length2))
    return math.hypot(ax + f * dx, ay + f * dy)


def _position(value: Any, where: str) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) < 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value[:2])
    ):
        raise StreetFileError(where, "a position must be [lon, lat]")
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise StreetFileError(where, f"[{lon}, {lat}] is not a WGS-84 position")
    return lon, lat


def _line(value: Any, where: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, list) or len(value) < 2:
        raise StreetFileError(where, "a line needs at least two positions")
    return tuple(_position(p, f"{where}[{i}]") for i, p in enumerate(value))


def parse_streets(doc: Any) -> StreetLayer:
    """A StreetLayer from a parsed GeoJSON document; StreetFileError naming the first fault."""
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise StreetFileError("streets", "must be a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list):
        raise StreetFileError("features", "must be a list")
    streets: list[Street] = []
    kept: list[dict[str, Any]] = []
    for i, feature in enumerate(features):
        where = f"features[{i}]"
        if not isinstance(feature, dict) or not isinstance(feature.get("geometry"), dict):
            raise StreetFileError(where, "must be a Feature with a geometry")
        geometry = feature["geometry"]
        kind, coords = geometry.get("type"), geometry.get("coordinates")
        if kind == "LineString":
            lines: Sequence[Any] = [coords]
        elif kind == "MultiLineString" and isinstance(coords, list):
            lines = coords
        else:
            raise StreetFileError(f"{where}.geometry", "must be a LineString or MultiLineString")
        parsed = tuple(_line(line, f"{where}.geometry.coordinates") for line in lines)
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            raise StreetFileError(f"{where}.properties", "must be an object")
        names = {
            lang: str(props[key])
            for lang, key in (("zh", "name:zh"), ("en", "name:en"))
            if isinstance(props.get(key), str) and props[key].strip()
        }
        name = props.get("name")
        label = name.strip() if isinstance(name, str) and name.strip() else None
        label = label or names.get("zh") or names.get("en")
        kept.append(
            {
                "type": "Feature",
                "geometry": geometry,
                "properties": {"name": label, **{f"name:{k}": v for k, v in names.items()}},
            }
        )
        if label is not None:
            streets.append(Street(label, names, parsed))
    return StreetLayer(streets, {"type": "FeatureCollection", "features": kept})


def load_streets(path: str) -> StreetLayer:
    """The street file at `path` (StreetFileError if unreadable or malformed)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StreetFileError(path, f"cannot be read as GeoJSON: {exc}") from exc
    return parse_streets(doc)
