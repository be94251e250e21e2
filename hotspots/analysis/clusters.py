"""Clusters of adjacent labelled cells, merged into one hotspot with a geometry and a peak cell.

Cells within `rings` H3 rings of each other belong to the same cluster (connected components);
with rings = 1 that is cells sharing an edge. The detector joins across one cell (rings = 2,
`AnalysisSettings.cluster_rings`): in a time stratum with few passes, a source's own cell can
miss the pass count its flanks reach, and the two flanks are one place, not two. A cluster
takes the strongest label among its cells (persistent > candidate > episodic); its peak cell is
the cell with the highest median excess among the cells of that label; its position is the
excess-weighted mean of the cell centres (what localises a source between two cells); its
geometry is the union of the cell polygons (GeoJSON, WGS-84, from h3.cells_to_geo).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import h3
import numpy as np

from hotspots.analysis.grouping import FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class Cluster:
    rows: tuple[int, ...]  # rows of the cell table
    peak_row: int
    lat: float
    lon: float
    geometry: dict[str, Any]


def components(cells: IntArray, rings: int = 1) -> list[list[int]]:
    """Positions in `cells` grouped by adjacency within `rings` rings (1: sharing an edge),
    each group sorted, groups by first cell."""
    index = {int(c): i for i, c in enumerate(cells)}
    seen = np.zeros(len(cells), dtype=bool)
    groups: list[list[int]] = []
    for start in np.argsort(cells, kind="stable"):
        if seen[start]:
            continue
        seen[start] = True
        stack = [int(start)]
        group: list[int] = []
        while stack:
            i = stack.pop()
            group.append(i)
            for n in h3.grid_disk(h3.int_to_str(int(cells[i])), rings):
                j = index.get(h3.str_to_int(n))
                if j is not None and not seen[j]:
                    seen[j] = True
                    stack.append(j)
        groups.append(sorted(group, key=lambda k: int(cells[k])))
    return groups


def cluster(
    cells: IntArray, rows: Sequence[int], strength: IntArray, excess: FloatArray
) -> Cluster:
    """One cluster of table rows: peak (strongest label, then highest excess), centre, shape."""
    rows_arr = np.asarray(rows, dtype=np.int64)
    top = strength[rows_arr].max()
    best = rows_arr[strength[rows_arr] == top]
    peak = int(best[np.argmax(excess[best])])
    centres = np.array([h3.cell_to_latlng(h3.int_to_str(int(cells[r]))) for r in rows_arr])
    weights = np.clip(np.nan_to_num(excess[rows_arr]), 0.0, None)
    if weights.sum() <= 0:
        weights = np.ones(len(rows_arr))
    lat, lon = (centres * weights[:, None]).sum(axis=0) / weights.sum()
    geometry = h3.cells_to_geo([h3.int_to_str(int(cells[r])) for r in rows_arr])
    return Cluster(
        rows=tuple(int(r) for r in rows_arr),
        peak_row=peak,
        lat=float(lat),
        lon=float(lon),
        geometry=dict(geometry),
    )
