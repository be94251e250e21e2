"""The partition of cells into areas and their halos (hotspots.analysis.areas)."""

from __future__ import annotations

import h3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotspots.analysis.areas import AreaError, Partition, halo_rings, plan, rings_around
from hotspots.analysis.synthetic import SHUANGJING, offset

CELL_RES = 10
CENTRE = h3.str_to_int(h3.latlng_to_cell(*SHUANGJING, CELL_RES))
# Every cell within 12 rings of the centre (~2 km across at resolution 10): the pool the
# properties draw from.
POOL = sorted(rings_around([CENTRE], 12))

cell_sets = st.lists(st.sampled_from(POOL), min_size=1, max_size=120, unique=True)


def square(east: float, north: float, size: float) -> dict[str, object]:
    corners = [
        offset(SHUANGJING, east, north),
        offset(SHUANGJING, east + size, north),
        offset(SHUANGJING, east + size, north + size),
        offset(SHUANGJING, east, north + size),
    ]
    ring = [[lon, lat] for lat, lon in corners]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


GRIDS = {
    "1": square(-600.0, -600.0, 700.0),
    "2": square(0.0, -300.0, 700.0),  # overlaps grid 1: the first key keeps shared cells
}


@settings(max_examples=60, deadline=None)
@given(cell_sets, st.integers(min_value=6, max_value=9), st.integers(min_value=0, max_value=3),
       st.booleans())  # fmt: skip
def test_every_cell_is_in_exactly_one_area(
    cells: list[int], resolution: int, rings: int, with_grids: bool
) -> None:
    partition = Partition(resolution, CELL_RES, GRIDS if with_grids else None)
    areas = plan(cells, partition, rings)
    owned = np.concatenate([a.own for a in areas])
    assert sorted(owned.tolist()) == sorted(cells)
    assert [a.key for a in areas] == sorted(a.key for a in areas)
    for area in areas:
        assert not set(area.own.tolist()) & set(area.halo.tolist())


@settings(max_examples=60, deadline=None)
@given(cell_sets, st.integers(min_value=7, max_value=9), st.integers(min_value=0, max_value=3))
def test_the_halo_holds_every_present_neighbour_across_the_boundary(
    cells: list[int], resolution: int, rings: int
) -> None:
    partition = Partition(resolution, CELL_RES)
    present = set(cells)
    for area in plan(cells, partition, rings):
        own = set(area.own.tolist())
        expected = {
            c
            for c in present - own
            if any(h3.grid_distance(h3.int_to_str(c), h3.int_to_str(o)) <= rings for o in own)
        }
        assert set(area.halo.tolist()) == expected
        assert all(partition.area_of(c) != area.key for c in expected)


@settings(max_examples=40, deadline=None)
@given(cell_sets, cell_sets)
def test_a_cells_area_does_not_depend_on_the_other_cells(first: list[int], more: list[int]) -> None:
    partition = Partition(8, CELL_RES, GRIDS)
    alone = partition.areas_of(first)
    together = partition.areas_of(first + more)
    assert all(together[c] == key for c, key in alone.items())


def test_grids_take_their_cells_first_and_the_first_key_keeps_an_overlap() -> None:
    partition = Partition(7, CELL_RES, GRIDS)
    inside_1 = h3.str_to_int(h3.latlng_to_cell(*offset(SHUANGJING, -300.0, -300.0), CELL_RES))
    shared = h3.str_to_int(h3.latlng_to_cell(*offset(SHUANGJING, 50.0, -50.0), CELL_RES))
    only_2 = h3.str_to_int(h3.latlng_to_cell(*offset(SHUANGJING, 600.0, 300.0), CELL_RES))
    outside = h3.str_to_int(h3.latlng_to_cell(*offset(SHUANGJING, 3000.0, 3000.0), CELL_RES))
    assert partition.area_of(inside_1) == "grid:1"
    assert partition.area_of(shared) == "grid:1"
    assert partition.area_of(only_2) == "grid:2"
    parent = h3.cell_to_parent(h3.int_to_str(outside), 7)
    assert partition.area_of(outside) == f"h3:{parent}"


def test_halo_rings_reach_the_distance() -> None:
    assert halo_rings(10, 0.0) == 0
    # neighbouring resolution-10 centres are ~131 m apart
    assert halo_rings(10, 130.0) == 1
    assert halo_rings(10, 140.0) == 2
    assert halo_rings(10, 400.0) == 4
    assert halo_rings(11, 400.0) > halo_rings(10, 400.0)


def test_bad_partitions_are_refused_with_the_setting_named() -> None:
    with pytest.raises(AreaError, match="finer than the cells"):
        Partition(11, 10)
    with pytest.raises(AreaError, match="grid 9"):
        Partition(7, 10, {"9": {"type": "Polygon", "coordinates": "nonsense"}})
    with pytest.raises(AreaError, match="halo_m"):
        halo_rings(10, -1.0)
