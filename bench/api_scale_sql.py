"""Store-level timings next to the HTTP ones: the statements the routes run today where they are
slow at fleet scale, beside the statements that would replace them, on the read-only role.

- Hotspots: `hotspots.results.hotspots` (the job's stored results, what /v1/hotspots is being
  moved to; today it computes them per request over the readings, timed over HTTP).
- A cell's pass history: `api.cell_passes.cell_passes` (passes recomputed from the cell's
  readings, what /v1/cells/{cell} ran at first) against the same passes read from the `pass`
  table the ingest keeps (`api.cell_passes.stored_cell_passes`, what it runs now).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import h3
import psycopg

from api import cell_passes
from bench.api_scale_http import percentile
from hotspots import results as hotspot_results
from store.channels import channel_spec
from store.conditions import BBox, TimeRange, VehicleFilter
from store.readings import ReadingFilters, readings_page

# The proposed source of /v1/vehicles/{id}/track: only the three columns the lines need, by the
# (vehicle, time) index, instead of whole readings page by page (store.readings.readings_page).
TRACK_FIXES = """
SELECT time, lat, lon FROM reading
WHERE vehicle = %(vehicle)s AND time >= %(time_start)s AND time < %(time_end)s
  AND fix_valid AND lat IS NOT NULL AND lon IS NOT NULL
ORDER BY time, seq
LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class SqlTiming:
    name: str
    samples_ms: list[float]
    rows: int

    def line(self) -> str:
        p50 = percentile(self.samples_ms, 0.5)
        p95 = percentile(self.samples_ms, 0.95)
        return f"| {self.name} | {p50:.1f} | {p95:.1f} | {max(self.samples_ms):.1f} | {len(self.samples_ms)} | {self.rows:,} |"


def timed(name: str, call: Callable[[], int], repeat: int, slow_ms: float = 10_000.0) -> SqlTiming:
    samples: list[float] = []
    rows = 0
    for _ in range(repeat + 1):  # the first call warms the caches and is not counted
        begin = time.perf_counter()
        rows = call()
        elapsed = (time.perf_counter() - begin) * 1000
        samples.append(elapsed)
        if elapsed > slow_ms:
            return SqlTiming(name + " (one call, too slow to repeat)", [elapsed], rows)
    return SqlTiming(name, samples[1:], rows)


def busiest_cell(conn: psycopg.Connection[Any], channel: str) -> str | None:
    row = conn.execute(
        "SELECT cell FROM cell_rollup WHERE channel = %s GROUP BY cell ORDER BY sum(n) DESC"
        " LIMIT 1",
        (channel,),
    ).fetchone()
    return None if row is None else str(h3.int_to_str(row[0]))


def store_timings(
    reader_url: str, start: datetime, end: datetime, bbox: str, repeat: int
) -> list[SqlTiming]:
    month = TimeRange(start, end)
    box = BBox.parse(bbox)
    out: list[SqlTiming] = []
    with psycopg.connect(reader_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        cell = busiest_cell(conn, "pm10")

        def stored_hotspots() -> int:
            _, found = hotspot_results.hotspots(
                conn, hotspot_results.HotspotFilter(pollutant="pm10", bbox=box)
            )
            return len(found)

        out.append(timed("hotspots, stored results (hotspots.results)", stored_hotspots, repeat))
        if cell is not None:
            spec = channel_spec("pm10")

            def from_readings() -> int:
                return len(cell_passes.cell_passes(conn, spec, cell, month, 120.0))

            def from_passes() -> int:
                # what the route runs: the newest max_passes + 1 stored passes of the cell
                return len(cell_passes.stored_cell_passes(conn, spec, cell, month, 1001))

            out.append(
                timed("cell pass history from readings (today)", from_readings, min(repeat, 5))
            )
            out.append(timed("cell pass history, newest 1001 stored passes", from_passes, repeat))

        day = TimeRange(end - timedelta(days=1), end)

        def track_pages() -> int:
            # what the route does: whole readings, pages of max_points + 1 (5001)
            filters = ReadingFilters(time=day, vehicle=VehicleFilter("patrol-01"))
            return len(readings_page(conn, filters, 5001).readings)

        def track_fixes() -> int:
            params = {"vehicle": "patrol-01", "time_start": day.start, "time_end": day.end}
            return len(conn.execute(TRACK_FIXES, {**params, "limit": 5001}).fetchall())

        out.append(timed("one day's track, whole readings (today)", track_pages, repeat))
        out.append(timed("one day's track, time/lat/lon only", track_fixes, repeat))
    return out


def sql_table(timings: list[SqlTiming]) -> str:
    head = "| statement | p50 ms | p95 ms | max ms | n | rows |\n|---|---|---|---|---|---|"
    return "\n".join([head, *(t.line() for t in timings)])
