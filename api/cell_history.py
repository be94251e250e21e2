"""One cell's hourly series of one channel, from the hourly rollups the ingest keeps."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import h3
from psycopg.rows import dict_row

from edge.units import ChannelSpec, energy_sum_mean
from store.conditions import Conn, TimeRange


@dataclass(frozen=True, slots=True)
class HourStats:
    hour: datetime
    n: int
    total: float
    total_sq: float
    min: float
    max: float
    energy_sum: float | None  # sum of 10^(L/10) for logarithmic channels

    @property
    def mean(self) -> float:
        return self.total / self.n

    @property
    def energy_mean(self) -> float | None:
        if self.energy_sum is None or self.energy_sum <= 0:
            return None
        return energy_sum_mean(self.energy_sum, self.n)


@dataclass(frozen=True, slots=True)
class Summary:
    n: int
    mean: float
    std: float | None
    min: float
    max: float
    energy_mean: float | None


def summarise(series: list[HourStats], energy: bool) -> Summary | None:
    """The whole range's statistics from its hours (sums add up; means do not)."""
    if not series:
        return None
    n = sum(h.n for h in series)
    total = sum(h.total for h in series)
    mean = total / n
    std = None
    if n > 1:
        variance = (sum(h.total_sq for h in series) - n * mean * mean) / (n - 1)
        std = math.sqrt(max(variance, 0.0))
    energy_mean = None
    if energy:
        energy_sum = sum(h.energy_sum or 0.0 for h in series)
        energy_mean = energy_sum_mean(energy_sum, n) if energy_sum > 0 else None
    return Summary(
        n, mean, std, min(h.min for h in series), max(h.max for h in series), energy_mean
    )


def hourly(conn: Conn, cell: str, spec: ChannelSpec, time: TimeRange) -> list[HourStats]:
    """Hourly buckets with data, oldest first; `time` is widened to whole hours."""
    hours = time.whole_hours()
    where = hours.condition("bucket")
    query = (
        "SELECT bucket, n, sum, sumsq, min, max, energy_sum FROM cell_rollup"
        " WHERE resolution = %(resolution)s AND cell = %(cell)s AND channel = %(channel)s"
        f" AND {where.text()} AND n > 0 ORDER BY bucket"
    )
    params = {
        **where.params,
        "resolution": h3.get_resolution(cell),
        "cell": h3.str_to_int(cell),
        "channel": spec.name,
    }
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()  # type: ignore[call-overload]
    return [
        HourStats(
            row["bucket"],
            row["n"],
            row["sum"],
            row["sumsq"],
            row["min"],
            row["max"],
            row["energy_sum"] if spec.energy_mean else None,
        )
        for row in rows
    ]
