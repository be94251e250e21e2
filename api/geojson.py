"""GeoJSON (RFC 7946): the one FeatureCollection of the API, and polygons of H3 cells.

Every route that answers with a FeatureCollection uses `FeatureCollection`, subclassed under the
route's own name (its schema name in the OpenAPI document) with its `meta` and feature models;
the readings export, streamed a feature at a time, takes its envelope from `stream_collection`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, Literal, TypeVar

import h3
from pydantic import BaseModel

P = TypeVar("P", bound=BaseModel)
M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=BaseModel)

Position = tuple[float, float]  # longitude, latitude


class Polygon(BaseModel):
    type: Literal["Polygon"] = "Polygon"
    coordinates: list[list[Position]]


class Feature(BaseModel, Generic[P]):
    """A cell's feature: its H3 index as the id, its polygon, its properties."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: Polygon
    properties: P


class FeatureCollection(BaseModel, Generic[M, F]):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    meta: M  # a foreign member (RFC 7946, section 6.1)
    features: list[F]


def stream_collection(chunks: Iterable[Sequence[bytes]]) -> Iterator[bytes]:
    """A FeatureCollection without `meta`, from chunks of encoded features: one piece of bytes
    for the opening, one per non-empty chunk, one for the closing. The opening is yielded before
    the first chunk is asked for, so a response starts before its first page is read."""
    yield b'{"type":"FeatureCollection","features":['
    first = True
    for chunk in chunks:
        if chunk:
            yield (b"" if first else b",") + b",".join(chunk)
            first = False
    yield b"]}"


def cell_polygon(cell: str) -> Polygon:
    """The cell's boundary as a closed, counterclockwise ring in (longitude, latitude) order.

    Cells straddling the 180th meridian are not split; no patrolled city has one.
    """
    ring: list[Position] = [(lon, lat) for lat, lon in h3.cell_to_boundary(cell)]
    if _signed_area(ring) < 0:
        ring.reverse()
    ring.append(ring[0])
    return Polygon(coordinates=[ring])


def _signed_area(ring: list[Position]) -> float:
    """Twice the signed area (shoelace formula); positive when counterclockwise."""
    total = 0.0
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        total += x1 * y2 - x2 * y1
    return total
