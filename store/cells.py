"""Per-cell statistics of one channel, from the hourly rollups (`cell_rollup`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import h3
from psycopg import sql
from psycopg.rows import dict_row

from edge.units import ChannelSpec, energy_sum_mean
from store.analysis_meta import read_analysis
from store.channels import channel_spec
from store.conditions import Conn, QueryError, TimeRange

__all__ = ["CellStats", "CellsResult", "cell_statistics"]


@dataclass(frozen=True, slots=True)
class CellStats:
    cell: str  # H3 index
    n: int
    mean: float
    std: float | None  # sample standard deviation; None for a single value
    min: float
    max: float
    energy_mean: float | None  # edge.units.energy_mean, for logarithmic channels only
    hours: int  # hourly buckets with data
    first_hour: datetime
    last_hour: datetime  # start of the last bucket with data


@dataclass(frozen=True, slots=True)
class CellsResult:
    channel: str
    resolution: int
    time: TimeRange  # the whole hours the statistics cover
    cells: list[CellStats]


def cell_statistics(
    conn: Conn, channel: str, time: TimeRange, resolution: int | None = None
) -> CellsResult:
    """Per-cell statistics of one channel from the hourly rollups.

    Granularity is the hour: the rollups keep hourly sums, so the range is widened to whole UTC
    hours (the hour holding `start` through the hour holding the instant before `end`) and the
    result says which hours it covers. Only readings with a valid fix and an unflagged value are
    in the rollups. `resolution` defaults to the one readings are stored at.
    """
    spec = channel_spec(channel)
    if resolution is None:
        resolution = read_analysis(conn).resolution
    elif not 0 <= resolution <= 15:
        raise QueryError("resolution", f"H3 resolutions are 0..15, got {resolution}")
    hours = time.whole_hours()
    where = hours.condition("bucket")
    query = sql.SQL(
        "SELECT cell, sum(n)::bigint AS n, sum(sum) AS total, sum(sumsq) AS total_sq,"
        " min(min) AS low, max(max) AS high, sum(energy_sum) AS energy,"
        " count(*) AS hours, min(bucket) AS first_hour, max(bucket) AS last_hour"
        " FROM cell_rollup"
        " WHERE resolution = %(resolution)s AND channel = %(channel)s AND {where}"
        " GROUP BY cell HAVING sum(n) > 0 ORDER BY cell"
    ).format(where=where.sql)
    params = {**where.params, "resolution": resolution, "channel": spec.name}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    return CellsResult(spec.name, resolution, hours, [_cell_stats(row, spec) for row in rows])


def _cell_stats(row: dict[str, Any], spec: ChannelSpec) -> CellStats:
    n = int(row["n"])
    mean = row["total"] / n
    std = None
    if n > 1:
        variance = (row["total_sq"] - n * mean * mean) / (n - 1)
        std = math.sqrt(max(variance, 0.0))  # rounding can take a constant cell below zero
    energy_mean = None
    if spec.energy_mean and row["energy"] is not None and row["energy"] > 0:
        energy_mean = energy_sum_mean(row["energy"], n)
    return CellStats(
        cell=h3.int_to_str(row["cell"]),
        n=n,
        mean=mean,
        std=std,
        min=row["low"],
        max=row["high"],
        energy_mean=energy_mean,
        hours=row["hours"],
        first_hour=row["first_hour"],
        last_hour=row["last_hour"],
    )
