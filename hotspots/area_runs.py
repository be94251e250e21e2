"""A run of the hotspot analysis area by area: in worker processes, and incremental.

The window's passes are cut into areas (hotspots.analysis.areas: management grids where the
operator has drawn them, else H3 parents at `AreaSettings.resolution`), each analysed with its
halo of neighbouring cells in a pool of `workers` processes (hotspots.analysis.by_area), and the
areas' hotspots merged into one list. An area's result depends only on the passes of its own and
halo cells, so the list is the same whatever the number of workers.

**Incremental.** `AreaRunner` keeps the previous run's area results. The next run over a window
of the same length (same settings, same grids) re-analyses only the areas whose own or halo
cells have passes that may differ between the two windows, and carries the rest over:
- passes that left the window: start in [previous start, new start);
- passes that joined it, or changed: start in [previous end - settle, new end), and the cells
  the previous run's passes of [previous end - settle, previous end) were in (the ingest rebuilds
  a vehicle's recent passes when late readings arrive, and may put them in other cells); passes
  older than `settle` at the previous run are taken as final.
Every `full_every`-th run re-analyses everything, which also takes in readings that arrived more
than `settle` late (a box offline for hours). A new runner (a restarted job) starts with a full
run; so does a run whose window, settings or grids differ.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import resource
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from multiprocessing.reduction import ForkingPickler
from types import MappingProxyType, TracebackType
from typing import Any

import numpy as np
import psycopg

from hotspots.analysis.areas import (
    Area,
    AreaError,
    Partition,
    halo,
    halo_rings,
    plan,
    rings_around,
)
from hotspots.analysis.by_area import AreaResult, Figures, analyse_area, area_table, merge
from hotspots.analysis.detect import Hotspot
from hotspots.analysis.passes import PassTable
from hotspots.analysis.settings import AnalysisSettings
from hotspots.pass_reader import read_passes
from hotspots.run_writer import settings_json

__all__ = ["AreaRun", "AreaRunner", "AreaSettings", "read_grids"]

log = logging.getLogger("envpatrol.hotspots.areas")

Connection = psycopg.Connection[Any]

# The cells whose passes may differ between the previous window and the new one.
_CHANGED_CELLS = """
SELECT DISTINCT cell FROM pass
WHERE resolution = %(resolution)s
  AND ((start_time >= %(left_from)s AND start_time < %(left_to)s)
    OR (start_time >= %(joined_from)s AND start_time < %(joined_to)s))
"""
# The cells of the passes that may still change at a run: the next run re-analyses them even if
# the ingest has replaced those passes by passes in other cells.
_RECENT_CELLS = """
SELECT DISTINCT cell FROM pass
WHERE resolution = %(resolution)s AND start_time >= %(from)s AND start_time < %(to)s
"""
_GRIDS = "SELECT id, geometry, updated_at FROM management_grid ORDER BY id"


@dataclass(frozen=True, slots=True)
class AreaSettings:
    """`[hotspots]` settings of the analysis by area (docs/hotspots.md, "Areas")."""

    # Off by default: per-area false-discovery control raises the false hotspots of a quiet
    # city (docs/hotspots.md, "Areas"); a deployment too large for one run turns it on.
    enabled: bool = False
    resolution: int = 7  # H3 parents where no management grid covers a cell (~5 km2)
    halo_m: float = 400.0  # neighbours within this distance take part in an area's analysis
    workers: int = 1  # analysis processes; 1: in the job's own process
    # passes older than this at a run are final: a live vehicle's readings arrive within
    # seconds, its open pass grows for minutes; later deliveries wait for the next full run
    settle: timedelta = timedelta(minutes=10)
    full_every: int = 24  # every n-th run of a runner re-analyses every area

    def __post_init__(self) -> None:
        if not 0 <= self.resolution <= 15:
            raise AreaError("hotspots.area_resolution", f"must be 0..15, got {self.resolution}")
        if self.halo_m < 0:
            raise AreaError("hotspots.halo_m", f"must be at least 0, got {self.halo_m}")
        if self.workers < 1:
            raise AreaError("hotspots.workers", f"must be at least 1, got {self.workers}")
        if self.settle < timedelta(0):
            raise AreaError("hotspots.settle_min", f"must be at least 0, got {self.settle}")
        if self.full_every < 1:
            raise AreaError("hotspots.full_every", f"must be at least 1, got {self.full_every}")

    def recorded(self) -> dict[str, Any]:
        """The settings that shape the results, as the run records them (not the workers)."""
        out = asdict(self)
        del out["workers"]
        out["settle"] = self.settle.total_seconds()
        return out


@dataclass(frozen=True, slots=True)
class AreaRun:
    """One run's merged hotspots and the figures the run writer needs."""

    hotspots: list[Hotspot]
    passes: int
    vehicles: int
    figures: Figures
    areas: int  # areas with passes in their own cells
    analysed: int  # of them analysed in this run (the rest carried over)
    incremental: bool
    cpu_s: float = 0.0  # CPU time of this run's area analyses, wherever they ran
    peak_mb: float = 0.0  # the largest peak memory of a process that analysed an area


@dataclass(slots=True)
class _Carried:
    signature: str
    window_start: datetime
    window_end: datetime
    runs: int  # runs since the last full one
    cells: dict[str, frozenset[int]] = field(default_factory=dict)  # own present cells
    results: dict[str, AreaResult] = field(default_factory=dict)
    recent: frozenset[int] = frozenset()  # cells of passes within `settle` of the window's end


def _read_only(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


def _proxy(
    proxy: MappingProxyType[Any, Any],
) -> tuple[Callable[[dict[Any, Any]], MappingProxyType[Any, Any]], tuple[dict[Any, Any]]]:
    return _read_only, (dict(proxy),)


# The settings' defaults and the reasons' texts are read-only mappings, which pickle cannot copy;
# only the pool's own pickler learns to (in the job's process and, on import, in each worker).
ForkingPickler.register(MappingProxyType, _proxy)


def read_grids(conn: Connection) -> tuple[dict[str, dict[str, Any]], str]:
    """The management grids' polygons by id, and a signature that changes with any of them."""
    rows = conn.execute(_GRIDS).fetchall()
    grids = {str(row[0]): dict(row[1]) for row in rows}
    signature = json.dumps([[str(row[0]), row[2].isoformat()] for row in rows])
    return grids, signature


def _analyse(task: tuple[Area, PassTable, AnalysisSettings]) -> AreaResult:
    area, table, settings = task
    started = time.process_time()
    result = analyse_area(area, table, settings)
    return dataclasses.replace(
        result,
        cpu_s=time.process_time() - started,
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


class AreaRunner:
    """The worker pool and the previous run's area results, kept across a job's runs."""

    def __init__(self, settings: AreaSettings) -> None:
        self.settings = settings
        self._pool: Executor | None = None
        self._carried: _Carried | None = None
        self._partition: tuple[str, int, Partition] | None = None
        self._analysed: set[str] = set()  # areas the latest run analysed

    def __enter__(self) -> AreaRunner:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close(wait=kind is None)

    def close(self, wait: bool = True) -> None:
        """Stop the workers; after a failure, without waiting on work that may never end."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None

    def run(
        self,
        conn: Connection,
        *,
        resolution: int,
        window_start: datetime,
        window_end: datetime,
        analysis: AnalysisSettings,
        carry: bool = True,
    ) -> AreaRun:
        """The hotspots of [window_start, window_end). With `carry`, the run may reuse the
        previous carried run's areas and is itself kept for the next one."""
        grids, grid_signature = read_grids(conn)
        partition = self._partition_for(grids, grid_signature, resolution)
        rings = halo_rings(resolution, self.settings.halo_m)
        signature = json.dumps(
            {
                "resolution": resolution,
                "analysis": settings_json(analysis),
                "areas": self.settings.recorded(),
                "grids": grid_signature,
                "window": (window_end - window_start).total_seconds(),
            },
            sort_keys=True,
            default=str,
        )
        recent = (
            frozenset(
                int(row[0])
                for row in conn.execute(
                    _RECENT_CELLS,
                    {
                        "resolution": resolution,
                        "from": window_end - self.settings.settle,
                        "to": window_end,
                    },
                )
            )
            if carry
            else frozenset()
        )
        before = self._carried if carry else None
        self._analysed = set()
        if (
            before is None
            or before.signature != signature
            or window_end < before.window_end
            or window_start < before.window_start
            or before.runs + 1 >= self.settings.full_every
        ):
            carried = self._full(
                conn, partition, rings, resolution, window_start, window_end, analysis
            )
            carried.signature = signature
            incremental = False
            analysed = len(carried.results)
        else:
            carried, analysed = self._incremental(
                conn, before, partition, rings, resolution, window_start, window_end, analysis
            )
            incremental = True
        fresh = [r for r in carried.results.values() if r.key in self._analysed]
        if carry:
            carried.recent = recent
            self._carried = carried
        results = [carried.results[k] for k in sorted(carried.results)]
        vehicles: set[str] = set()
        figures: Figures = {}
        for result in results:
            vehicles |= result.vehicles
            figures.update(result.figures)
        return AreaRun(
            hotspots=merge(results, analysis),
            passes=sum(r.passes for r in results),
            vehicles=len(vehicles),
            figures=figures,
            areas=len(results),
            analysed=analysed,
            incremental=incremental,
            cpu_s=sum(r.cpu_s for r in fresh),
            peak_mb=max((r.peak_mb for r in fresh), default=0.0),
        )

    def _partition_for(
        self, grids: Mapping[str, Mapping[str, Any]], signature: str, resolution: int
    ) -> Partition:
        if self._partition is not None and self._partition[:2] == (signature, resolution):
            return self._partition[2]
        partition = Partition(self.settings.resolution, resolution, grids)
        self._partition = (signature, resolution, partition)
        return partition

    def _full(
        self,
        conn: Connection,
        partition: Partition,
        rings: int,
        resolution: int,
        window_start: datetime,
        window_end: datetime,
        analysis: AnalysisSettings,
    ) -> _Carried:
        table = read_passes(conn, resolution, window_start, window_end, analysis.pollutants())
        areas = plan(np.unique(table.cell).tolist(), partition, rings)
        results = self._analyse_all(areas, table, analysis)
        return _Carried(
            signature="",
            window_start=window_start,
            window_end=window_end,
            runs=0,
            cells={a.key: frozenset(a.own.tolist()) for a in areas},
            results={r.key: r for r in results if r.passes},
        )

    def _incremental(
        self,
        conn: Connection,
        before: _Carried,
        partition: Partition,
        rings: int,
        resolution: int,
        window_start: datetime,
        window_end: datetime,
        analysis: AnalysisSettings,
    ) -> tuple[_Carried, int]:
        changed = {
            int(row[0])
            for row in conn.execute(
                _CHANGED_CELLS,
                {
                    "resolution": resolution,
                    "left_from": before.window_start,
                    "left_to": window_start,
                    "joined_from": before.window_end - self.settings.settle,
                    "joined_to": window_end,
                },
            )
        }
        changed |= before.recent
        known: set[int] = set().union(*before.cells.values()) if before.cells else set()
        candidates = known | changed
        # Every area with a changed cell among its own or its halo's.
        dirty = sorted(set(partition.areas_of(rings_around(changed, rings)).values()))
        by_key: dict[str, set[int]] = {}
        for cell, key in partition.areas_of(changed).items():
            by_key.setdefault(key, set()).add(cell)
        wanted: dict[str, tuple[set[int], np.ndarray]] = {}  # type: ignore[type-arg]
        to_read: set[int] = set()
        for key in dirty:
            own = set(before.cells.get(key, frozenset())) | by_key.get(key, set())
            if not own:
                continue
            around = halo(own, candidates, rings)
            wanted[key] = (own, around)
            to_read |= own
            to_read.update(around.tolist())
        table = (
            read_passes(
                conn,
                resolution,
                window_start,
                window_end,
                analysis.pollutants(),
                cells=sorted(to_read),
            )
            if to_read
            else None
        )
        present = set(np.unique(table.cell).tolist()) if table is not None else set()
        areas = []
        for key, (own, _) in wanted.items():
            mine = own & present
            if mine:
                areas.append(
                    Area(key, np.array(sorted(mine), dtype=np.int64), halo(mine, present, rings))
                )
        results = self._analyse_all(areas, table, analysis) if table is not None else []
        cells = {k: v for k, v in before.cells.items() if k not in wanted}
        kept = {k: v for k, v in before.results.items() if k not in wanted}
        for area in areas:
            cells[area.key] = frozenset(area.own.tolist())
        for result in results:
            if result.passes:
                kept[result.key] = result
        log.info("areas: %d re-analysed, %d carried over", len(results), len(kept) - len(results))
        carried = _Carried(
            signature=before.signature,
            window_start=window_start,
            window_end=window_end,
            runs=before.runs + 1,
            cells=cells,
            results=kept,
        )
        return carried, len(results)

    def _analyse_all(
        self, areas: Sequence[Area], table: PassTable, analysis: AnalysisSettings
    ) -> list[AreaResult]:
        """Each area's result, in the order of `areas`, in the pool when there is one."""
        tasks = ((a, area_table(table, a.cells), analysis) for a in areas)
        started = time.perf_counter()
        if self.settings.workers == 1 or len(areas) <= 1:
            results = [_analyse(task) for task in tasks]
        else:
            results = list(self._executor().map(_analyse, _largest_first(tasks), chunksize=1))
            results.sort(key=lambda r: r.key)
        log.debug("%d areas analysed in %.2f s", len(areas), time.perf_counter() - started)
        self._analysed = {r.key for r in results}
        return results

    def _executor(self) -> Executor:
        if self._pool is None:
            # forkserver: the job's process holds database connections and may run threads;
            # its workers start from a clean process that imports only the analysis.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["hotspots.area_runs"])
            self._pool = ProcessPoolExecutor(self.settings.workers, mp_context=context)
        return self._pool


def _largest_first(
    tasks: Iterable[tuple[Area, PassTable, AnalysisSettings]],
) -> list[tuple[Area, PassTable, AnalysisSettings]]:
    """The biggest areas start first, so the pool does not wait on one at the end."""
    return sorted(tasks, key=lambda t: (-len(t[1]), t[0].key))
