"""One channel's statistics per stored pass (`pass`, see docs/storage.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import h3
from psycopg import sql

from store.analysis_meta import read_analysis
from store.channels import channel_spec
from store.conditions import MAX_PAGE, Condition, Conn, QueryError, TimeRange, VehicleFilter
from store.pass_columns import stat_columns

__all__ = ["StoredPassStats", "pass_statistics"]


@dataclass(frozen=True, slots=True)
class StoredPassStats:
    """One vehicle's pass through one cell and one channel's statistics in it (see docs/storage.md)."""

    vehicle: str
    cell: str  # H3 index
    start: datetime
    end: datetime
    readings: int  # track points in the pass
    n: int  # values of the channel that count
    mean: float
    min: float
    max: float
    energy_mean: float | None  # logarithmic channels (noise)


def pass_statistics(
    conn: Conn,
    channel: str,
    time: TimeRange,
    vehicle: VehicleFilter | None = None,
    limit: int = MAX_PAGE,
) -> list[StoredPassStats]:
    """Passes with a countable value of `channel` that start in `time`, at the stored resolution,
    oldest first."""
    spec = channel_spec(channel)
    if not 1 <= limit <= MAX_PAGE:
        raise QueryError("limit", f"must be 1..{MAX_PAGE}, got {limit}")
    where = Condition.all(
        [time.condition("start_time")] + ([vehicle.condition()] if vehicle else [])
    )
    stat = stat_columns(spec.name)
    query = sql.SQL(
        "SELECT vehicle, cell, start_time, end_time, readings, {stat}"
        " FROM pass WHERE resolution = %(resolution)s AND {counted} AND {where}"
        " ORDER BY start_time, vehicle LIMIT %(limit)s"
    ).format(stat=stat.select(), counted=stat.counted(), where=where.sql)
    params = {**where.params, "resolution": read_analysis(conn).resolution, "limit": limit}
    rows = conn.execute(query, params).fetchall()
    return [
        StoredPassStats(
            vehicle=str(vehicle),
            cell=h3.int_to_str(int(cell)),
            start=start,
            end=end,
            readings=int(readings),
            n=int(n),
            mean=float(mean),
            min=float(low),
            max=float(high),
            energy_mean=None if energy is None else float(energy),
        )
        for vehicle, cell, start, end, readings, n, mean, low, high, energy in rows
    ]
