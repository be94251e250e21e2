"""GeoJSON (RFC 7946) for H3 cells: polygons and feature collections carrying a `meta` member."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

import h3
from pydantic import BaseModel

P = TypeVar("P", bound=BaseModel)
M = TypeVar("M", bound=BaseModel)

Position = tuple[float, float]  # longitude, latitude


class Polygon(BaseModel):
    type: Literal["Polygon"] = "Polygon"
    coordinates: list[list[Position]]


class Feature(BaseModel, Generic[P]):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: Polygon
    properties: P


class FeatureCollection(BaseModel, Generic[M, P]):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    meta: M  # a foreign member (RFC 7946, section 6.1)
    features: list[Feature[P]]


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
