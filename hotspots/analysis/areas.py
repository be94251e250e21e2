"""The city cut into areas the analysis runs on one at a time, each with a halo of neighbours.

An **area** is a management grid (a `management_grid` polygon: the cells whose centre lies in it,
the first grid by key where polygons overlap) or, for cells outside every grid and for operators
without grids, the H3 parent cell at a coarse resolution (`Partition.resolution`). Every cell
belongs to exactly one area (`Partition.areas_of`), whichever other cells are present, so a
cell's area never depends on the data.

Each area is analysed with its **halo**: the present cells within `rings` of its own cells that
belong to other areas. Their passes take part in the area's backgrounds, tests, clusters and
peak splitting, so a source on the boundary is seen whole from either side; only the hotspots
whose peak cell is the area's own are kept (hotspots.analysis.by_area), so it is listed once.
Pure: no database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h3
import numpy as np

from edge.errors import EnvpatrolError
from hotspots.analysis.grouping import IntArray

__all__ = ["Area", "AreaError", "Partition", "halo", "halo_rings", "plan", "rings_around"]


class AreaError(EnvpatrolError, ValueError):
    """A partition that cannot be built as asked; `subject` names the setting or grid."""


@dataclass(frozen=True, slots=True)
class Area:
    """One area of a run: its key, its own present cells and its halo's (sorted H3 integers)."""

    key: str
    own: IntArray
    halo: IntArray

    @property
    def cells(self) -> IntArray:
        """Own and halo cells together, sorted: the passes the area is analysed on."""
        return np.union1d(self.own, self.halo)


class Partition:
    """Cells to areas: management grids first, then the H3 parent at `resolution`.

    `grids` maps a grid's key to its GeoJSON Polygon or MultiPolygon (WGS-84); its cells are
    those at `cell_resolution` whose centre lies inside. Keys are "grid:<key>" and "h3:<parent>",
    so the two kinds never collide and the order of areas is the order of their keys.
    """

    def __init__(
        self,
        resolution: int,
        cell_resolution: int,
        grids: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if not 0 <= resolution <= 15:
            raise AreaError("areas.resolution", f"must be 0..15, got {resolution}")
        if not resolution <= cell_resolution <= 15:
            raise AreaError(
                "areas.resolution",
                f"{resolution} is finer than the cells' resolution {cell_resolution}",
            )
        self.resolution = resolution
        self.cell_resolution = cell_resolution
        self._grid_of: dict[int, str] = {}
        for key in sorted(grids or {}):
            geometry = dict((grids or {})[key])
            try:
                shape = h3.geo_to_h3shape(geometry)
                cells = h3.h3shape_to_cells(shape, cell_resolution)
            except Exception as exc:  # h3 raises several types for bad shapes
                raise AreaError(f"grid {key}", f"not a usable polygon: {exc}") from exc
            for cell in cells:
                # The first grid in key order keeps a cell that overlapping polygons share.
                self._grid_of.setdefault(h3.str_to_int(cell), f"grid:{key}")

    @property
    def grids(self) -> int:
        """How many cells the management grids cover."""
        return len(self._grid_of)

    def area_of(self, cell: int) -> str:
        grid = self._grid_of.get(cell)
        if grid is not None:
            return grid
        return f"h3:{h3.cell_to_parent(h3.int_to_str(cell), self.resolution)}"

    def areas_of(self, cells: Iterable[int]) -> dict[int, str]:
        """The area key of each distinct cell."""
        return {int(c): self.area_of(int(c)) for c in {int(c) for c in cells}}


def halo_rings(cell_resolution: int, halo_m: float) -> int:
    """Rings of cells that reach `halo_m` metres: the distance between neighbouring cell
    centres is sqrt(3) times the mean edge length."""
    if halo_m < 0:
        raise AreaError("areas.halo_m", f"must be at least 0, got {halo_m}")
    spacing = float(math.sqrt(3.0) * h3.average_hexagon_edge_length(cell_resolution, unit="m"))
    rings: int = math.ceil(halo_m / spacing)
    return rings


def rings_around(cells: Iterable[int], rings: int) -> set[int]:
    """Every cell within `rings` of any of `cells`, the cells included (whether they have
    passes or not: the distance is the grid's)."""
    seen = {int(c) for c in cells}
    frontier = set(seen)
    for _ in range(rings):
        grown: set[int] = set()
        for cell in frontier:
            grown.update(h3.str_to_int(n) for n in h3.grid_ring(h3.int_to_str(cell), 1))
        frontier = grown - seen
        seen |= frontier
    return seen


def halo(own: Iterable[int], present: set[int] | frozenset[int], rings: int) -> IntArray:
    """The present cells within `rings` of the `own` cells that are not own, sorted."""
    mine = {int(c) for c in own}
    near = (rings_around(mine, rings) - mine) & present
    return np.array(sorted(near), dtype=np.int64)


def plan(
    cells: Iterable[int],
    partition: Partition,
    rings: int,
    only: Sequence[str] | None = None,
) -> list[Area]:
    """The areas of the present `cells` (all of them, or those keyed in `only`), in key order,
    each with its halo among the present cells."""
    present = {int(c) for c in cells}
    by_area: dict[str, list[int]] = {}
    for cell, key in partition.areas_of(present).items():
        by_area.setdefault(key, []).append(cell)
    keys = sorted(by_area) if only is None else sorted(set(only) & set(by_area))
    return [
        Area(
            key=key,
            own=np.array(sorted(by_area[key]), dtype=np.int64),
            halo=halo(by_area[key], present, rings),
        )
        for key in keys
    ]
