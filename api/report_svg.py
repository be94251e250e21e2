"""The inventory report's map as a self-contained SVG: cells patrolled, vehicle tracks, management
grids and hotspots, drawn on the server so the printed or saved report needs no tiles or scripts.

Pure: plain data in, SVG text out. The projection is equirectangular with the longitude scaled by
cos(latitude) at the centre, which is true to a few parts per thousand over a district.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

import h3

Position = tuple[float, float]  # longitude, latitude

LABEL_COLOURS = {"persistent": "#c0392b", "candidate": "#e67e22", "episodic": "#8e44ad"}


@dataclass(frozen=True, slots=True)
class MapHotspot:
    number: int  # as in the report's ranked list
    label: str
    geometry: dict[str, Any]  # GeoJSON Polygon / MultiPolygon
    lon: float
    lat: float


@dataclass(frozen=True, slots=True)
class MapLayers:
    cells: Sequence[tuple[str, int]] = ()  # H3 cell, passes
    tracks: Sequence[Sequence[Position]] = ()
    grids: Sequence[tuple[str, Sequence[Sequence[Position]]]] = ()  # name, outer rings
    hotspots: Sequence[MapHotspot] = ()
    extra_bounds: Sequence[Position] = field(default_factory=tuple)


def _rings(geometry: dict[str, Any]) -> list[list[Position]]:
    coords = geometry.get("coordinates", [])
    if geometry.get("type") == "Polygon":
        polygons = [coords]
    elif geometry.get("type") == "MultiPolygon":
        polygons = coords
    else:
        return []
    return [[(float(p[0]), float(p[1])) for p in ring] for polygon in polygons for ring in polygon]


def _cell_ring(cell: str) -> list[Position]:
    return [(lon, lat) for lat, lon in h3.cell_to_boundary(cell)]


class Projection:
    def __init__(self, points: Iterable[Position], width: float, height: float, pad: float) -> None:
        pts = list(points) or [(0.0, 0.0)]
        west = min(p[0] for p in pts)
        east = max(p[0] for p in pts)
        south = min(p[1] for p in pts)
        north = max(p[1] for p in pts)
        self.kx = math.cos(math.radians((south + north) / 2))
        span_x = max((east - west) * self.kx, 1e-6)
        span_y = max(north - south, 1e-6)
        self.scale = min((width - 2 * pad) / span_x, (height - 2 * pad) / span_y)
        self.x0 = pad + ((width - 2 * pad) - span_x * self.scale) / 2 - west * self.kx * self.scale
        self.y0 = pad + ((height - 2 * pad) - span_y * self.scale) / 2 + north * self.scale

    def __call__(self, p: Position) -> tuple[float, float]:
        return self.x0 + p[0] * self.kx * self.scale, self.y0 - p[1] * self.scale


def _path(project: Projection, ring: Sequence[Position], close: bool = True) -> str:
    if not ring:
        return ""
    parts = [f"{x:.1f},{y:.1f}" for x, y in map(project, ring)]
    return "M" + " L".join(parts) + (" Z" if close else "")


def _extent(
    layers: MapLayers, cell_rings: list[list[Position]], hotspot_rings: list[list[Position]]
) -> list[Position]:
    """Every point the map must show."""
    points: list[Position] = list(layers.extra_bounds)
    for ring in (*cell_rings, *hotspot_rings, *layers.tracks):
        points.extend(ring)
    for _, outlines in layers.grids:
        for outline in outlines:
            points.extend(outline)
    return points


def render_map(layers: MapLayers, width: int = 800, height: int = 560) -> str:
    """The map as an <svg> element (with a scale bar), or a note when there is nothing to draw."""
    cell_rings = [(_cell_ring(c), n) for c, n in layers.cells]
    hotspot_rings = [(h, _rings(h.geometry)) for h in layers.hotspots]
    points = _extent(layers, [r for r, _ in cell_rings], [r for _, rs in hotspot_rings for r in rs])
    if not points:
        return '<p class="empty">No patrol data in this period and area.</p>'
    project = Projection(points, width, height, 16)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" class="map" role="img" '
        'aria-label="Map of patrolled cells, tracks, grids and hotspots">',
        f'<rect width="{width}" height="{height}" fill="#fbfbf8"/>',
    ]
    most = max((n for _, n in cell_rings), default=1) or 1
    out.append('<g class="cells" stroke="#d5d8dc" stroke-width="0.5">')
    for ring, n in cell_rings:
        shade = 0.12 + 0.5 * math.sqrt(n / most)
        out.append(f'<path d="{_path(project, ring)}" fill="#5d6d7e" fill-opacity="{shade:.2f}"/>')
    out.append("</g>")
    out.append('<g class="tracks" fill="none" stroke="#2e86c1" stroke-width="1" opacity="0.7">')
    for track in layers.tracks:
        if len(track) > 1:
            out.append(f'<path d="{_path(project, track, close=False)}"/>')
    out.append("</g>")
    out.append(
        '<g class="grids" fill="none" stroke="#1e8449" stroke-width="1.5" stroke-dasharray="6 3">'
    )
    for name, outlines in layers.grids:
        for outline in outlines:
            out.append(f'<path d="{_path(project, outline)}"><title>{escape(name)}</title></path>')
    out.append("</g>")
    out.append('<g class="hotspots" stroke="#1b1b1b" stroke-width="1">')
    for spot, rings in hotspot_rings:
        colour = LABEL_COLOURS.get(spot.label, "#7f8c8d")
        d = " ".join(_path(project, ring) for ring in rings)
        out.append(f'<path d="{d}" fill="{colour}" fill-opacity="0.75" fill-rule="evenodd"/>')
    anchors = [project((spot.lon, spot.lat)) for spot in layers.hotspots]
    placed = place_labels(anchors, [str(spot.number) for spot in layers.hotspots], width, height)
    for spot, (ax, ay), (x, y) in zip(layers.hotspots, anchors, placed, strict=True):
        if math.hypot(x - ax, y - ay) > LABEL_OFFSET + 1:
            out.append(
                f'<line x1="{ax:.1f}" y1="{ay:.1f}" x2="{x:.1f}" y2="{y + 4:.1f}" '
                'stroke="#555" stroke-width="0.8"/>'
            )
        out.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="12" font-family="sans-serif" '
            f'text-anchor="middle" stroke="#fff" stroke-width="3" paint-order="stroke" '
            f'fill="#000">{spot.number}</text>'
        )
    out.append("</g>")
    out.append(_scale_bar(project, width, height))
    out.append("</svg>")
    return "".join(out)


LABEL_OFFSET = 8.0  # px above the hotspot's centre, where a label goes when it fits
_CHAR_W, _LABEL_H = 7.5, 13.0


def place_labels(
    anchors: Sequence[tuple[float, float]], texts: Sequence[str], width: float, height: float
) -> list[tuple[float, float]]:
    """Where each label's baseline centre goes so that no two labels overlap: above its point
    if free, else the first free spot on rings of growing radius around it (joined to the point
    by a leader line), inside the map. Greedy, in the order given (the list's rank)."""
    boxes: list[tuple[float, float, float, float]] = []
    out = []
    for (ax, ay), text in zip(anchors, texts, strict=True):
        w = _CHAR_W * len(text) + 4
        candidates = [(ax, ay - LABEL_OFFSET)]
        for radius in (16.0, 24.0, 34.0, 46.0, 60.0, 80.0):
            for k in range(12):
                angle = math.pi * 2 * k / 12 - math.pi / 2
                candidates.append((ax + radius * math.cos(angle), ay + radius * math.sin(angle)))
        chosen = candidates[0]
        for x, y in candidates:
            box = (x - w / 2, y - _LABEL_H + 2, x + w / 2, y + 3)
            inside = box[0] >= 0 and box[2] <= width and box[1] >= 0 and box[3] <= height
            if inside and not any(_overlap(box, other) for other in boxes):
                chosen = (x, y)
                break
        x, y = chosen
        boxes.append((x - w / 2, y - _LABEL_H + 2, x + w / 2, y + 3))
        out.append(chosen)
    return out


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _scale_bar(project: Projection, width: int, height: int) -> str:
    metres_per_px = 111_320.0 / project.scale
    target = metres_per_px * width / 5
    nice = 10 ** math.floor(math.log10(target))
    for step in (5, 2, 1):
        if step * nice <= target:
            nice *= step
            break
    px = nice / metres_per_px
    text = f"{nice / 1000:g} km" if nice >= 1000 else f"{nice:g} m"
    y = height - 14
    return (
        f'<g class="scale"><path d="M20,{y} h{px:.1f}" stroke="#000" stroke-width="2"/>'
        f'<text x="20" y="{y - 4}" font-size="11" font-family="sans-serif">{text}</text></g>'
    )
