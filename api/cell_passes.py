"""One cell's passes of one channel, for the detail of a cell (`/v1/cells/{cell}`).

By default they are the passes the ingest stores (`pass`, at the analysis pass gap), read newest
first through the cell's index, so the detail of the busiest cell of a fleet-month costs one range
scan. Asked for another gap, they are segmented from the cell's stored readings at request time.
Hotspots and their evidence use the stored passes (hotspots.evidence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import h3
from psycopg import sql

from edge.quality import STATS_EXCLUDED_FLAGS
from edge.units import ChannelSpec, energy_mean
from store.conditions import Conn, TimeRange
from store.pass_columns import stat_columns


@dataclass(frozen=True, slots=True)
class CellPass:
    vehicle: str
    start: datetime
    end: datetime
    mean: float


def _mean(values: list[float], energy: bool) -> float:
    if energy:
        return energy_mean(values)
    return sum(values) / len(values)


def passes(
    rows: Sequence[tuple[str, datetime, float]], pass_gap_s: float, energy: bool = False
) -> list[CellPass]:
    """Passes from (vehicle, time, value) rows of one cell, sorted by vehicle and time."""
    out: list[CellPass] = []
    gap = timedelta(seconds=pass_gap_s)
    current: list[tuple[str, datetime, float]] = []

    def close() -> None:
        if current:
            values = [v for _, _, v in current]
            out.append(
                CellPass(current[0][0], current[0][1], current[-1][1], _mean(values, energy))
            )

    for row in rows:
        if current and (row[0] != current[-1][0] or row[1] - current[-1][1] > gap):
            close()
            current = []
        current.append(row)
    close()
    return out


_CELL_READINGS = """
SELECT vehicle, time, {value} AS value FROM reading
WHERE cell = %(cell)s AND {time}
  AND fix_valid AND {value} IS NOT NULL
  AND NOT (channel_flags ? %(channel)s)
  AND NOT (flags && %(excluded_flags)s::text[])
ORDER BY vehicle, time, seq
"""


_STORED = """
SELECT vehicle, start_time, end_time, {value} FROM pass
WHERE resolution = %(resolution)s AND cell = %(cell)s AND {time} AND {counted}
ORDER BY start_time DESC, vehicle DESC
LIMIT %(limit)s
"""


def stored_cell_passes(
    conn: Conn, spec: ChannelSpec, cell: str, time: TimeRange, limit: int
) -> list[CellPass]:
    """The newest `limit` stored passes of the cell (starting in the time range) that have a
    countable value of the channel, newest first."""
    where = time.condition("start_time")
    stat = stat_columns(spec.name)
    query = sql.SQL(_STORED).format(value=stat.value(), counted=stat.counted(), time=where.sql)
    params = {
        **where.params,
        "resolution": h3.get_resolution(cell),
        "cell": h3.str_to_int(cell),
        "limit": limit,
    }
    return [
        CellPass(str(vehicle), start, end, float(value))
        for vehicle, start, end, value in conn.execute(query, params)
        if value is not None
    ]


def cell_passes(
    conn: Conn, spec: ChannelSpec, cell: str, time: TimeRange, pass_gap_s: float
) -> list[CellPass]:
    """The cell's passes in the time range, from readings that may count (as for hotspots)."""
    where = time.condition("time")
    query = sql.SQL(_CELL_READINGS).format(value=sql.Identifier(spec.name), time=where.sql)
    params = {
        **where.params,
        "cell": h3.str_to_int(cell),
        "channel": spec.name,
        "excluded_flags": list(STATS_EXCLUDED_FLAGS),
    }
    rows = conn.execute(query, params).fetchall()
    return passes(rows, pass_gap_s, spec.energy_mean)
