"""The analysis one area at a time (hotspots.analysis.areas), and the areas' results merged.

`area_table` takes an area's passes (its own cells and its halo's) out of a window's table in a
form that does not depend on what else was read with it: the vehicles renumbered among those
present, channels without any value left out. An area's result is then a function of its own
passes and its halo's only, which is what lets a run carry an unchanged area's result over from
the previous run (hotspots.area_runs) and gives the same hotspots whatever the number of worker
processes.

`analyse_area` runs `detect_places` over the area's table and keeps the hotspots whose peak
cell is the area's own, with the evidence figures of their cells. `merge` puts the areas
together: where two areas' hotspots of one pollutant and stratum share cells (each peaked in its
own area, reaching across the boundary), the stronger keeps the shared cells; then
`detect.listed` keeps each place once across strata and orders the list as `detect` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import h3
import numpy as np

from hotspots.analysis.areas import Area, Partition, plan
from hotspots.analysis.detect import Hotspot, detect_places, listed
from hotspots.analysis.labels import RANK
from hotspots.analysis.passes import PassTable
from hotspots.analysis.settings import AnalysisSettings

__all__ = ["AreaResult", "analyse_area", "area_table", "cell_figures", "detect_by_area", "merge"]

# (pollutant, cell) -> (passes with a value, their median value as measured)
Figures = dict[tuple[str, int], tuple[int, float | None]]


@dataclass(frozen=True, slots=True)
class AreaResult:
    """What one area adds to a run: its hotspots, their cells' figures, and its own passes
    (those in its own cells) and their vehicles, for the run's totals."""

    key: str
    hotspots: tuple[Hotspot, ...]
    figures: Figures
    passes: int
    vehicles: frozenset[str]
    cpu_s: float = 0.0  # CPU time of its analysis, and the peak memory of the process it ran in
    peak_mb: float = 0.0


def area_table(table: PassTable, cells: np.ndarray) -> PassTable:  # type: ignore[type-arg]
    """The passes of `table` in `cells`, vehicles renumbered among those present (in the
    table's order) and channels without a value left out."""
    sub = table.subset(np.isin(table.cell, cells))
    present = np.zeros(len(sub.vehicles), dtype=bool)
    present[sub.vehicle] = True
    renumber = np.cumsum(present) - 1
    kept = [p for p, count in sub.counts.items() if bool(np.any(count > 0))]
    return PassTable(
        vehicles=tuple(v for v, here in zip(sub.vehicles, present, strict=True) if here),
        vehicle=renumber[sub.vehicle].astype(np.int64),
        cell=sub.cell,
        start=sub.start,
        end=sub.end,
        values={p: sub.values[p] for p in kept if p in sub.values},
        counts={p: sub.counts[p] for p in kept if p in sub.values},
    )


def cell_figures(table: PassTable, hotspots: Iterable[Hotspot]) -> Figures:
    """(pollutant, cell) -> (passes with a value, their median value as measured), for every
    cell of the hotspots: the evidence the API shows without reading the passes again."""
    wanted: dict[str, set[int]] = {}
    for spot in hotspots:
        wanted.setdefault(spot.pollutant, set()).update(h3.str_to_int(c) for c in spot.cells)
    out: Figures = {}
    for pollutant, cells in wanted.items():
        values = table.values.get(pollutant)
        if values is None:
            continue
        chosen = np.isin(table.cell, np.fromiter(cells, dtype=np.int64)) & ~np.isnan(values)
        order = np.argsort(table.cell[chosen], kind="stable")
        cell_of, value_of = table.cell[chosen][order], values[chosen][order]
        if len(cell_of) == 0:
            continue
        starts = np.flatnonzero(np.r_[True, np.diff(cell_of) != 0])
        ends = np.r_[starts[1:], len(cell_of)]
        for begin, end in zip(starts, ends, strict=True):
            out[(pollutant, int(cell_of[begin]))] = (
                int(end - begin),
                float(np.median(value_of[begin:end])),
            )
    return out


def analyse_area(area: Area, table: PassTable, settings: AnalysisSettings) -> AreaResult:
    """One area's hotspots (peak cell its own) from the passes of its own and halo cells."""
    own = set(area.own.tolist())
    places = [
        spot for spot in detect_places(table, settings) if h3.str_to_int(spot.peak_cell) in own
    ]
    mine = np.isin(table.cell, area.own)
    return AreaResult(
        key=area.key,
        hotspots=tuple(places),
        figures=cell_figures(table, places),
        passes=int(mine.sum()),
        vehicles=frozenset(table.vehicles[int(v)] for v in np.unique(table.vehicle[mine])),
    )


def _strength(spot: Hotspot) -> tuple[int, float, str]:
    return (-RANK[spot.label], -spot.excess, spot.peak_cell)


def merge(results: Sequence[AreaResult], settings: AnalysisSettings) -> list[Hotspot]:
    """The run's list from its areas' results (in any order: the result is the same)."""
    spots = sorted((s for r in results for s in r.hotspots), key=_strength)
    taken: dict[tuple[str, str], set[str]] = {}
    kept: list[Hotspot] = []
    for spot in spots:
        place = (spot.pollutant, spot.stratum)
        claimed = taken.setdefault(place, set())
        if spot.peak_cell in claimed:
            continue  # a stronger hotspot of another area holds this one's peak
        overlap = claimed.intersection(spot.cells)
        trimmed = _without(spot, overlap) if overlap else spot
        claimed.update(trimmed.cells)
        kept.append(trimmed)
    return listed(kept, settings)


def _without(spot: Hotspot, cells: set[str]) -> Hotspot:
    """The hotspot without `cells` (held by a stronger neighbour): cells, labels and geometry."""
    pairs = [(c, label) for c, label in zip(spot.cells, spot.cell_labels, strict=True)
             if c not in cells]  # fmt: skip
    return replace(
        spot,
        cells=tuple(c for c, _ in pairs),
        cell_labels=tuple(label for _, label in pairs),
        geometry=dict(h3.cells_to_geo([c for c, _ in pairs])),
    )


def detect_by_area(
    table: PassTable, settings: AnalysisSettings, partition: Partition, rings: int
) -> list[Hotspot]:
    """`detect` area by area in this process: the in-memory form of a full run by area, for
    the evaluation harness and tests."""
    areas = plan(np.unique(table.cell).tolist(), partition, rings)
    return merge([analyse_area(a, area_table(table, a.cells), settings) for a in areas], settings)
