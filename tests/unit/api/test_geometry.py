"""Point in polygon for management grids: hand-checked cases and properties."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from api.geometry import GeometryError, parse_area, ring_contains

SQUARE = [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0], [0.0, 0.0]]
HOLE = [[0.5, 0.5], [1.5, 0.5], [1.5, 1.5], [0.5, 1.5], [0.5, 0.5]]


def polygon(*rings: list[list[Any]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def test_inside_outside_and_holes() -> None:
    area = parse_area(polygon(SQUARE, HOLE))
    assert area.contains(0.25, 0.25)
    assert not area.contains(1.0, 1.0)  # in the hole
    assert not area.contains(3.0, 1.0)
    assert not area.contains(-0.1, 1.0)
    assert (area.west, area.south, area.east, area.north) == (0.0, 0.0, 2.0, 2.0)


def test_concave_polygon() -> None:
    # A "U": the notch between the arms is outside.
    u = [[0, 0], [3, 0], [3, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3], [0, 0]]
    area = parse_area(polygon([[float(x), float(y)] for x, y in u]))
    assert area.contains(0.5, 2.5)
    assert area.contains(2.5, 2.5)
    assert not area.contains(1.5, 2.0)
    assert area.contains(1.5, 0.5)


def test_multipolygon() -> None:
    far = [[[10.0, 10.0], [11.0, 10.0], [11.0, 11.0], [10.0, 10.0]]]
    area = parse_area({"type": "MultiPolygon", "coordinates": [[SQUARE], far]})
    assert area.contains(1.0, 1.0)
    assert area.contains(10.8, 10.2)
    assert not area.contains(5.0, 5.0)
    assert area.geojson()["type"] == "MultiPolygon"


@pytest.mark.parametrize(
    ("geometry", "where"),
    [
        ({"type": "Point", "coordinates": [0, 0]}, "type"),
        (polygon([[0, 0], [1, 0], [0, 0]]), "coordinates[0]"),
        (polygon([[0, 0], [1, 0], [1, 1], [0, 1]]), "coordinates[0]"),
        (polygon([[0, 0], [1, 0], [1, 1], [200, 1], [0, 0]]), "coordinates[0][3]"),
        (polygon([[0, 0], [1, 0], [1, "x"], [0, 0]]), "coordinates[0][2]"),
        (polygon([[0, 0], [1, 0], [1, float("nan")], [0, 0]]), "coordinates[0][2]"),
        ({"type": "Polygon", "coordinates": []}, "coordinates"),
        ({"type": "MultiPolygon", "coordinates": []}, "coordinates"),
        ("not an object", "geometry"),
    ],
)
def test_bad_geometries_name_the_part(geometry: Any, where: str) -> None:
    with pytest.raises(GeometryError) as raised:
        parse_area(geometry)
    assert raised.value.subject == where


def test_centroid_of_a_square() -> None:
    assert parse_area(polygon(SQUARE)).centroid() == pytest.approx((1.0, 1.0))


@given(
    cuts_x=st.lists(st.integers(1, 99), min_size=0, max_size=5, unique=True),
    cuts_y=st.lists(st.integers(1, 99), min_size=0, max_size=5, unique=True),
    px=st.one_of(st.floats(min_value=0, max_value=100, exclude_max=True), st.integers(0, 99)),
    py=st.one_of(st.floats(min_value=0, max_value=100, exclude_max=True), st.integers(0, 99)),
)
def test_grids_that_tile_an_area_hold_each_point_exactly_once(
    cuts_x: list[int], cuts_y: list[int], px: float, py: float
) -> None:
    """Rectangles over a 100 m-ish square near Shuangjing; integer draws land on shared edges."""

    def lon(v: float) -> float:
        return 116.45 + v / 10_000

    def lat(v: float) -> float:
        return 39.88 + v / 10_000

    xs = [lon(v) for v in (0, *sorted(cuts_x), 100)]
    ys = [lat(v) for v in (0, *sorted(cuts_y), 100)]
    cells = []
    for x0, x1 in itertools.pairwise(xs):
        for y0, y1 in itertools.pairwise(ys):
            ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
            cells.append(parse_area(polygon(ring)))
    x, y = lon(px), lat(py)
    assume(x < xs[-1] and y < ys[-1])  # 99.99999... can round onto the outer (open) edge
    holders = [c for c in cells if c.contains(x, y)]
    assert len(holders) == 1


@given(
    n=st.integers(3, 12),
    start=st.integers(0, 11),
    reverse=st.booleans(),
    px=st.floats(-2, 2),
    py=st.floats(-2, 2),
)
def test_orientation_and_starting_vertex_do_not_matter(
    n: int, start: int, reverse: bool, px: float, py: float
) -> None:
    ring = [(math.cos(2 * math.pi * k / n), math.sin(2 * math.pi * k / n)) for k in range(n)]
    other = ring[start % n :] + ring[: start % n]
    if reverse:
        other.reverse()
    assert ring_contains(ring, px, py) == ring_contains(other, px, py)
    assert ring_contains(ring, 0.0, 0.0)  # a regular polygon holds its centre
    assert not ring_contains(ring, 1.5, 0.3)
