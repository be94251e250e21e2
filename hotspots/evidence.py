"""The evidence behind one stored hotspot: its passes, its cells' figures, its history.

The job stores each hotspot's figures (hotspots.results); the passes behind them are read at
request time from the ingest's pass statistics (`pass_stat`), over the run's window and
resolution: the pass values as measured, before the run shifted them back by each channel's
sensor lag (`AnalysisSettings.pass_lag`) and took the background off, so a hotspot's level (the
median of its lag-corrected peak-cell passes) can differ from the median shown here. History is the same place in other runs: hotspots of the same
pollutant and time-of-day stratum sharing at least one cell.
"""

from __future__ import annotations

import statistics
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import h3
import psycopg
from psycopg import sql

from hotspots.results import StoredHotspot, StoredRun
from store.pass_columns import stat_columns

Connection = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class EvidencePass:
    vehicle: str
    cell: str
    start: datetime
    end: datetime
    value: float  # the pass mean (energy mean for noise)
    n: int  # values averaged
    strata: tuple[str, ...]  # the time-of-day strata its start falls in (local time)


@dataclass(frozen=True, slots=True)
class CellSummary:
    cell: str
    label: str
    lat: float
    lon: float
    passes: int
    median: float | None  # median pass value


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    run_id: int
    rank: int
    finished_at: datetime
    window_start: datetime
    window_end: datetime
    label: str
    level: float
    enhancement: float
    excess: float
    passes: int
    persistence: float


_PASSES = """
SELECT vehicle, cell, start_time, end_time, coalesce(energy_mean, mean), n
FROM pass_stat
WHERE resolution = %(resolution)s AND channel = %(channel)s AND cell = ANY(%(cells)s)
  AND start_time >= %(start)s AND start_time < %(end)s AND n > 0
ORDER BY start_time, vehicle
"""


def strata_of(moment: datetime, run: StoredRun) -> tuple[str, ...]:
    """The run's time-of-day strata (from its stored settings) that hold `moment`."""
    zone = zoneinfo.ZoneInfo(str(run.settings.get("timezone", "UTC")))
    local = moment.astimezone(zone)
    minute = local.hour * 60 + local.minute
    names = []
    # each stratum is stored as [name, start, end, start, end, ...] (minutes of the local day)
    for name, *bounds in run.settings.get("strata", [["all_day", 0, 1440]]):
        windows = zip(bounds[0::2], bounds[1::2], strict=True)
        if any(
            start <= minute < end if start <= end else (minute >= start or minute < end)
            for start, end in windows
        ):
            names.append(str(name))
    return tuple(names)


def passes(conn: Connection, run: StoredRun, spot: StoredHotspot) -> list[EvidencePass]:
    """The passes through the hotspot's cells in the run's window, in time order."""
    rows = conn.execute(
        _PASSES,
        {
            "resolution": run.resolution,
            "channel": spot.pollutant,
            "cells": [h3.str_to_int(c) for c, _ in spot.cells],
            "start": run.window_start,
            "end": run.window_end,
        },
    ).fetchall()
    return [
        EvidencePass(
            vehicle=str(r[0]),
            cell=h3.int_to_str(int(r[1])),
            start=r[2],
            end=r[3],
            value=float(r[4]),
            n=int(r[5]),
            strata=strata_of(r[2], run),
        )
        for r in rows
        if r[4] is not None
    ]


_NEWEST_EXACT = """
SELECT x.vehicle, x.cell, x.start_time, x.end_time, x.value, x.n
FROM unnest(%(cells)s::bigint[]) AS c(cell)
CROSS JOIN LATERAL (
    SELECT p.vehicle, p.cell, p.start_time, p.end_time, {value} AS value, {n} AS n
    FROM pass p
    WHERE p.resolution = %(resolution)s AND p.cell = c.cell
      AND p.start_time >= %(start)s AND p.start_time < %(end)s AND {counted}
    ORDER BY p.start_time DESC, p.vehicle DESC
    LIMIT %(limit)s
) AS x
ORDER BY x.start_time DESC, x.vehicle DESC
LIMIT %(limit)s
"""

_NEWEST_FAST = """
WITH newest AS (
    -- the start times of the newest passes, from the cells' index alone
    SELECT x.start_time
    FROM unnest(%(cells)s::bigint[]) AS c(cell)
    CROSS JOIN LATERAL (
        SELECT p.start_time FROM pass p
        WHERE p.resolution = %(resolution)s AND p.cell = c.cell
          AND p.start_time >= %(start)s AND p.start_time < %(end)s
        ORDER BY p.start_time DESC
        LIMIT %(scan)s
    ) AS x
    ORDER BY x.start_time DESC
    LIMIT %(scan)s
)
SELECT p.vehicle, p.cell, p.start_time, p.end_time, {value}, {n}
FROM pass p
WHERE p.resolution = %(resolution)s AND p.cell = ANY(%(cells)s::bigint[])
  AND p.start_time >= (SELECT min(start_time) FROM newest) AND p.start_time < %(end)s
  AND {counted}
ORDER BY p.start_time DESC, p.vehicle DESC
LIMIT %(limit)s
"""


def newest_passes(
    conn: Connection, run: StoredRun, spot: StoredHotspot, limit: int
) -> list[EvidencePass]:
    """The newest `limit` passes through the hotspot's cells in the run's window, in time
    order, however many passes the month holds. First the cut-off time of the newest
    2 x `limit` passes comes from each cell's index alone (backward scans), and only the passes
    from it on are read; if fewer than `limit` of those have a value of the pollutant, each
    cell's newest `limit` passes with a value are read instead."""
    if limit <= 0:
        return []
    params = {
        "resolution": run.resolution,
        "cells": [h3.str_to_int(c) for c, _ in spot.cells],
        "start": run.window_start,
        "end": run.window_end,
        "limit": limit,
        "scan": 2 * limit,
    }
    stat = stat_columns(spot.pollutant)
    fast, exact = (
        sql.SQL(query).format(value=stat.value("p"), n=stat.count("p"), counted=stat.counted("p"))
        for query in (_NEWEST_FAST, _NEWEST_EXACT)
    )
    rows = conn.execute(fast, params).fetchall()
    if len(rows) < limit:
        rows = conn.execute(exact, params).fetchall()
    return [
        EvidencePass(
            vehicle=str(vehicle),
            cell=h3.int_to_str(int(cell)),
            start=start,
            end=end,
            value=float(value),
            n=int(n),
            strata=strata_of(start, run),
        )
        for vehicle, cell, start, end, value, n in reversed(rows)
        if value is not None
    ]


def stored_cell_summaries(conn: Connection, spot: StoredHotspot) -> list[CellSummary] | None:
    """The cells' figures as the job stored them (migration 0039); None for older runs."""
    rows = conn.execute(
        "SELECT cell, label, passes, median FROM hotspot_cell"
        " WHERE run_id = %s AND rank = %s ORDER BY cell",
        (spot.run_id, spot.rank),
    ).fetchall()
    if not rows or any(r[2] is None for r in rows):
        return None
    out = []
    for cell, label, passes, median in rows:
        name = h3.int_to_str(int(cell))
        lat, lon = h3.cell_to_latlng(name)
        out.append(CellSummary(name, str(label), lat, lon, int(passes), median))
    return out


def cell_summaries(spot: StoredHotspot, found: Sequence[EvidencePass]) -> list[CellSummary]:
    """Each cell of the hotspot with its label, centre, passes and median pass value."""
    out = []
    for cell, label in spot.cells:
        values = [p.value for p in found if p.cell == cell]
        lat, lon = h3.cell_to_latlng(cell)
        out.append(
            CellSummary(
                cell=cell,
                label=label,
                lat=lat,
                lon=lon,
                passes=len(values),
                median=statistics.median(values) if values else None,
            )
        )
    return out


_HISTORY = """
SELECT h.run_id, h.rank, r.finished_at, r.window_start, r.window_end, h.label, h.level,
       h.enhancement, h.excess, h.passes, h.persistence
FROM hotspot h JOIN hotspot_run r ON r.id = h.run_id
WHERE h.run_id <> %(run)s AND r.finished_at <= %(finished)s
  AND h.pollutant = %(pollutant)s AND h.stratum = %(stratum)s
  AND EXISTS (SELECT 1 FROM hotspot_cell c
              WHERE c.run_id = h.run_id AND c.rank = h.rank AND c.cell = ANY(%(cells)s))
ORDER BY r.finished_at DESC, h.run_id DESC, h.rank
LIMIT %(limit)s
"""


def history(
    conn: Connection, run: StoredRun, spot: StoredHotspot, limit: int = 50
) -> list[HistoryEntry]:
    """The same place in earlier runs, newest first."""
    rows = conn.execute(
        _HISTORY,
        {
            "run": run.id,
            "finished": run.finished_at,
            "pollutant": spot.pollutant,
            "stratum": spot.stratum,
            "cells": [h3.str_to_int(c) for c, _ in spot.cells],
            "limit": limit,
        },
    ).fetchall()
    return [
        HistoryEntry(
            run_id=int(r[0]),
            rank=int(r[1]),
            finished_at=r[2],
            window_start=r[3],
            window_end=r[4],
            label=str(r[5]),
            level=float(r[6]),
            enhancement=float(r[7]),
            excess=float(r[8]),
            passes=int(r[9]),
            persistence=float(r[10]),
        )
        for r in rows
    ]


_NEW_SINCE = """
SELECT h.run_id, h.rank FROM hotspot h
WHERE h.run_id = %(run)s AND NOT EXISTS (
    SELECT 1 FROM hotspot p JOIN hotspot_cell pc ON pc.run_id = p.run_id AND pc.rank = p.rank
    JOIN hotspot_cell hc ON hc.run_id = h.run_id AND hc.rank = h.rank AND hc.cell = pc.cell
    WHERE p.run_id = %(previous)s AND p.pollutant = h.pollutant AND p.stratum = h.stratum)
ORDER BY h.rank
"""


def new_ranks(conn: Connection, run_id: int, previous_id: int | None) -> list[int]:
    """Ranks of the hotspots of `run_id` with no hotspot of the same pollutant and stratum on
    any of their cells in run `previous_id` (all of them when there is no previous run)."""
    rows = conn.execute(_NEW_SINCE, {"run": run_id, "previous": previous_id or -1}).fetchall()
    return [int(r[1]) for r in rows]
