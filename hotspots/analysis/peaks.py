"""Split a cluster of labelled cells at its saddles: one hotspot per source, not per cluster.

`clusters.components` joins labelled cells up to `cluster_rings` apart, so two sources of one
pollutant a few hundred metres apart on one street end up in one cluster, and its centre lies
between them, near neither. This module finds the cluster's peaks and keeps a peak on its own
only when the dip between it and a higher peak is too deep for noise:

- the terrain: the cluster's cells, and every cell with passes in the stratum that lies between
  two of them (within rings - 1 of both, for the default two rings: a common neighbour). Cells
  sharing an edge are linked. Two cells that are further apart, up to `rings`, with no cell with
  passes between them are linked directly: a missing cell does not separate a source's flanks;
- the merge tree: cells are added in descending median excess (union-find). A cell with no added
  neighbour starts a peak; a cell that joins several components is their saddle, where every
  component but the one with the highest peak ends. Such a peak stands on its own when its
  prominence (peak excess - saddle excess) is at least `PEAK_Z` standard errors of that
  difference, at least `MIN_PROMINENCE_DELTA` x delta and at least `MIN_PROMINENCE_SHARE` of
  its own excess; otherwise it belongs to the higher one;
- the standard error of a cell's median excess is sqrt(pi / 2) x s / sqrt(passes), with s the
  larger of the stratum's robust spread (`CellTable.sigma`) and the cell's own (1.4826 x MAD of
  its passes): passes through a source's cell spread more than an ordinary street's (where in the
  cell the vehicle was, GPS error), and a split must not rest on a spread the cell does not have;
- each cell drains by steepest ascent to a local maximum, which is a standing peak or belongs to
  one; a piece is the cluster's labelled cells that drain to one standing peak.

A line source or a single source's smeared plume has no dip deeper than noise, so it stays one
piece; noise in a flat field never makes a prominence of several standard errors plus half a
delta.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import h3
import numpy as np

from hotspots.analysis.cellstats import CellTable
from hotspots.analysis.grouping import FloatArray, IntArray, dense_labels, group_median
from hotspots.analysis.significance import MAD_TO_SIGMA, MEDIAN_SE_FACTOR

__all__ = [
    "MIN_PROMINENCE_DELTA",
    "MIN_PROMINENCE_SHARE",
    "PEAK_Z",
    "Terrain",
    "cell_spread",
    "drain",
    "split",
    "standing_peaks",
    "terrain",
]

# A separate source must rise this many standard errors above its saddle ...
PEAK_Z = 3.0
# ... and by at least this share of delta (a dip too small to matter in the field is one place)
MIN_PROMINENCE_DELTA = 0.5
# ... and of its own excess: one source's profile has shallow dips of its own (an intersection
# cell that also holds passes on the cross street, two humps of a lag the correction missed),
# two sources a dip towards the ordinary street between them. Rayleigh's criterion for two
# resolved peaks is a dip of a fifth to a quarter.
MIN_PROMINENCE_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class Terrain:
    """The cells of one cluster and those between them, with their links (a graph)."""

    cells: IntArray  # H3 index of each node
    rows: IntArray  # row of each node in the CellTable
    labelled: tuple[bool, ...]  # whether each node is one of the cluster's labelled cells
    links: tuple[tuple[int, ...], ...]  # the nodes linked to each node

    def __len__(self) -> int:
        return len(self.cells)


def cell_spread(cells: IntArray, pass_cell: IntArray, pass_value: FloatArray) -> FloatArray:
    """Robust spread (1.4826 x MAD) of the passes of each given cell; 0 without passes."""
    at = np.isin(pass_cell, cells)
    keys, label = dense_labels(pass_cell[at])
    values = pass_value[at]
    k = len(keys)
    out = np.zeros(len(cells))
    if k == 0:
        return out
    mid = group_median(label, values, k)
    mad = group_median(label, np.abs(values - mid[label]), k)
    pos = np.searchsorted(keys, cells)
    found = (pos < k) & (keys[np.minimum(pos, k - 1)] == cells)
    out[found] = MAD_TO_SIGMA * np.nan_to_num(mad[pos[found]])
    return out


def terrain(table: CellTable, rows: Sequence[int], rings: int) -> Terrain:
    """The graph of one cluster (table rows of its labelled cells) over the stratum's cells."""
    row_of = {int(c): i for i, c in enumerate(table.cell)}
    members = [int(table.cell[r]) for r in rows]
    member_set = set(members)
    between: set[int] = set()
    for a in members:
        for b in _near(a, rings):
            if b in member_set and b > a:
                d = h3.grid_distance(h3.int_to_str(a), h3.int_to_str(b))
                if d >= 2:
                    between.update(c for c in _lens(a, b, d) if c in row_of and c not in member_set)
    cells = sorted(member_set | between)
    index = {c: i for i, c in enumerate(cells)}
    links: list[set[int]] = [set() for _ in cells]
    for i, a in enumerate(cells):
        for b in _near(a, rings):
            j = index.get(b)
            if j is None or j <= i:
                continue
            d = h3.grid_distance(h3.int_to_str(a), h3.int_to_str(b))
            if d == 1 or not any(c in row_of for c in _lens(a, b, d)):
                links[i].add(j)
                links[j].add(i)
    return Terrain(
        cells=np.array(cells, dtype=np.int64),
        rows=np.array([row_of[c] for c in cells], dtype=np.int64),
        labelled=tuple(c in member_set for c in cells),
        links=tuple(tuple(sorted(s)) for s in links),
    )


def _near(cell: int, rings: int) -> list[int]:
    return [h3.str_to_int(c) for c in h3.grid_disk(h3.int_to_str(cell), rings)]


def _lens(a: int, b: int, d: int) -> set[int]:
    """The cells between two cells d rings apart: within d - 1 rings of both."""
    return set(_near(a, d - 1)) & set(_near(b, d - 1)) - {a, b}


def standing_peaks(
    links: Sequence[Sequence[int]],
    excess: FloatArray,
    se: FloatArray,
    min_prominence: float,
    z: float = PEAK_Z,
    share: float = MIN_PROMINENCE_SHARE,
) -> dict[int, int]:
    """For every local maximum of the graph, the standing peak it belongs to (itself when it
    stands on its own). A peak stands when its prominence is at least z standard errors (of
    peak minus saddle), min_prominence, and `share` of its own excess. Ties in excess go to the
    lower node."""
    n = len(excess)
    order = np.lexsort((np.arange(n), -excess))
    parent = list(range(n))
    peak = list(range(n))  # highest node of each component, at its root
    added = np.zeros(n, dtype=bool)
    belongs: dict[int, int] = {}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    for v in (int(i) for i in order):
        added[v] = True
        roots = sorted({find(u) for u in links[v] if added[u]}, key=lambda r: rank[peak[r]])
        if not roots:
            continue
        top = roots[0]
        for r in roots[1:]:
            p = peak[r]
            prominence = float(excess[p] - excess[v])
            needed = max(
                z * float(np.hypot(se[p], se[v])), min_prominence, share * float(excess[p])
            )
            belongs[p] = p if prominence >= needed else peak[top]
            parent[r] = top
        parent[v] = top
    for root in {find(i) for i in range(n)}:
        belongs.setdefault(peak[root], peak[root])
    # A graph in pieces (it should not be) is one place: every other root joins the highest.
    roots = sorted({find(i) for i in range(n)}, key=lambda r: rank[peak[r]])
    for r in roots[1:]:
        belongs[peak[r]] = peak[roots[0]]
    out: dict[int, int] = {}
    for p in belongs:
        q = p
        while belongs[q] != q:
            q = belongs[q]
        out[p] = q
    return out


def drain(links: Sequence[Sequence[int]], excess: FloatArray) -> IntArray:
    """The local maximum each node reaches by always stepping to its highest higher neighbour."""
    n = len(excess)
    order = np.lexsort((np.arange(n), -excess))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    step = np.arange(n)
    for v in range(n):
        higher = [u for u in links[v] if rank[u] < rank[v]]
        if higher:
            step[v] = min(higher, key=lambda u: rank[u])
    top = step.copy()
    for v in (int(i) for i in order):  # highest first: a node's step is resolved before it
        top[v] = v if step[v] == v else top[step[v]]
    return top


def split(
    table: CellTable,
    groups: Sequence[Sequence[int]],
    pass_cell: IntArray,
    pass_value: FloatArray,
    rings: int,
) -> list[list[int]]:
    """The pieces (table rows, sorted) of each cluster of table rows, one per standing peak.

    pass_cell and pass_value are the stratum's passes (H3 cell, enhancement), for the spread of
    each cell's passes.
    """
    terrains = [terrain(table, rows, rings) if len(rows) > 1 else None for rows in groups]
    nodes = np.unique(
        np.concatenate([t.rows for t in terrains if t is not None] or [np.zeros(0, np.int64)])
    )
    spread = cell_spread(table.cell[nodes], pass_cell, pass_value)
    s = np.maximum(spread, table.sigma)
    se_of = dict(
        zip(
            nodes.tolist(),
            (MEDIAN_SE_FACTOR * s / np.sqrt(table.passes[nodes])).tolist(),
            strict=True,
        )
    )
    out: list[list[int]] = []
    for rows, land in zip(groups, terrains, strict=True):
        if land is None:
            out.append(sorted(int(r) for r in rows))
            continue
        excess = table.median_excess[land.rows]
        se = np.array([se_of[int(r)] for r in land.rows])
        belongs = standing_peaks(land.links, excess, se, MIN_PROMINENCE_DELTA * table.delta)
        top = drain(land.links, excess)
        pieces: dict[int, list[int]] = {}
        for i, labelled in enumerate(land.labelled):
            if labelled:
                pieces.setdefault(belongs[int(top[i])], []).append(int(land.rows[i]))
        out.extend(sorted(p) for _, p in sorted(pieces.items()))
    return out
