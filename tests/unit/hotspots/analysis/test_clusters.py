from __future__ import annotations

import h3
import numpy as np

from hotspots.analysis.clusters import cluster, components

A = h3.latlng_to_cell(39.893, 116.462, 11)


def test_adjacent_cells_merge_and_distant_ones_do_not() -> None:
    ring = h3.grid_ring(A, 1)
    far = h3.latlng_to_cell(39.90, 116.47, 11)
    cells = np.array([h3.str_to_int(c) for c in (ring[0], far, A, ring[3])], dtype=np.int64)
    groups = components(cells)
    assert sorted(len(g) for g in groups) == [1, 3]
    # ring[0] and ring[3] are opposite: only connected through A.
    assert not h3.are_neighbor_cells(ring[0], ring[3])
    assert sorted(len(g) for g in components(cells[[0, 3]])) == [1, 1]


def test_peak_centre_and_geometry() -> None:
    b = h3.grid_ring(A, 1)[0]
    cells = np.array([h3.str_to_int(A), h3.str_to_int(b)], dtype=np.int64)
    strength = np.array([2, 3], dtype=np.int64)
    excess = np.array([30.0, 10.0])
    shape = cluster(cells, [0, 1], strength, excess)
    assert shape.peak_row == 1  # the persistent cell wins over a higher candidate
    lat_a, lon_a = h3.cell_to_latlng(A)
    lat_b, lon_b = h3.cell_to_latlng(b)
    assert shape.lat == (30 * lat_a + 10 * lat_b) / 40
    assert shape.lon == (30 * lon_a + 10 * lon_b) / 40
    assert shape.geometry["type"] == "Polygon"


def test_cells_one_cell_apart_join_with_two_rings() -> None:
    # The flanks of a source whose own cell was not labelled: two rings join them.
    ring = h3.grid_ring(A, 1)
    cells = np.array([h3.str_to_int(ring[0]), h3.str_to_int(ring[3])], dtype=np.int64)
    assert sorted(len(g) for g in components(cells, 1)) == [1, 1]
    assert [len(g) for g in components(cells, 2)] == [2]
    three_apart = h3.str_to_int(h3.grid_ring(A, 3)[0])
    assert len(components(np.array([h3.str_to_int(A), three_apart]), 2)) == 2
