"""How long the hotspot job takes end to end on one month of a 10-vehicle sub-district fleet.

The fleet-month of bench/hotspots_scale.py (synthetic passes, H3 resolution 11, six pollutants)
is stored in a scratch database through the ingest's pass store (`pass` and `pass_stat`, as the
ingest keeps them), then the job's steps are timed: reading the window's passes from PostgreSQL,
`detect`, writing the run with its hotspots and cells; and one whole `run_once`. The scratch
database is created on the machine's PostgreSQL (ENVPATROL_TEST_DATABASE_URL or the default
admin URL of store/scratch.py, else an embedded one) and dropped afterwards.

    .venv/bin/python -m bench.hotspot_job_scale [--days 30] [--vehicles 10]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from bench.hotspots_scale import synthetic_world
from demo.embedded import EmbeddedDatabase
from hotspots.analysis.detect import detect
from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.synthetic import as_stored, generate
from hotspots.job import JobSettings, run_once
from hotspots.pass_reader import read_passes, table_from_rows
from hotspots.run_writer import write_run
from ingest import pass_store
from store.scratch import admin_database_url, scratch_database

# The job's earlier read, for comparison in the same run (--with-pivot): one row per channel from
# the pass_stat view (a row per channel of every pass) grouped back into a row per pass.
_PIVOT_READ = """
SELECT s.vehicle, min(s.cell), extract(epoch FROM s.start_time)::float8,
       extract(epoch FROM min(s.end_time))::float8{pivot}
FROM pass_stat s
WHERE s.resolution = %(resolution)s AND s.start_time >= %(start)s AND s.start_time < %(end)s
GROUP BY s.vehicle, s.start_time, s.first_seq
ORDER BY s.vehicle, s.start_time, s.first_seq
"""
_PIVOT_COLUMN = (
    ", max(coalesce(s.energy_mean, s.mean)) FILTER (WHERE s.channel = %(c{i})s)"
    ", max(s.n) FILTER (WHERE s.channel = %(c{i})s)"
)


def pivot_read(
    conn: psycopg.Connection[Any], resolution: int, start: datetime, end: datetime,
    channels: Sequence[str],
) -> int:  # fmt: skip
    params: dict[str, object] = {"resolution": resolution, "start": start, "end": end}
    params.update({f"c{i}": c for i, c in enumerate(channels)})
    pivot = "".join(_PIVOT_COLUMN.format(i=i) for i in range(len(channels)))
    with conn.cursor(binary=True) as cur:
        rows = cur.execute(_PIVOT_READ.format(pivot=pivot), params).fetchall()  # type: ignore[arg-type]
    return len(table_from_rows(channels, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--vehicles", type=int, default=10)
    parser.add_argument(
        "--with-pivot", action="store_true", help="also time the earlier read (pass_stat pivot)"
    )
    args = parser.parse_args()
    table = generate(synthetic_world(args.days, args.vehicles))
    resolution = 11
    admin_url = admin_database_url(start=lambda: EmbeddedDatabase.start().url)
    with (
        scratch_database(admin_url, h3_resolution=resolution) as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            pass_store.store(cur, resolution, as_stored(table))
        stored_s = time.perf_counter() - started
        end = datetime.fromtimestamp(float(table.end.max()), UTC) + timedelta(hours=1)
        window = timedelta(days=args.days + 1)
        settings = AnalysisSettings()
        # warm the imports and caches
        detect(table.subset(np.arange(min(len(table), 1000))), settings)

        t0 = time.perf_counter()
        read = read_passes(conn, resolution, end - window, end, settings.pollutants())
        t1 = time.perf_counter()
        spots = detect(read, settings)
        t2 = time.perf_counter()
        with conn.transaction():
            write_run(
                conn,
                started=datetime.now(UTC),
                window_start=end - window,
                window_end=end,
                resolution=resolution,
                settings=settings,
                table=read,
                hotspots=spots,
            )
        t3 = time.perf_counter()
        summary = run_once(conn, JobSettings(window=window), now=end)
        pivot_s, pivot_rows = None, 0
        if args.with_pivot:
            t4 = time.perf_counter()
            pivot_rows = pivot_read(conn, resolution, end - window, end, list(read.values))
            pivot_s = time.perf_counter() - t4
        cells = conn.execute(
            "SELECT count(*) FROM hotspot_cell WHERE run_id = %s", (summary.run_id,)
        ).fetchone()
    print(f"passes:          {len(table):,} ({len(table.values)} pollutants each)")
    print(f"vehicles x days: {args.vehicles} x {args.days}, H3 resolution {resolution}")
    print(f"store (ingest):  {stored_s:.1f} s (not part of the job)")
    print(f"read passes:     {t1 - t0:.2f} s ({len(read):,} passes, binary COPY from pass)")
    if pivot_s is not None:
        print(f"earlier read:    {pivot_s:.2f} s ({pivot_rows:,} passes, pass_stat grouped back)")
    print(f"detect:          {t2 - t1:.2f} s")
    print(f"write results:   {t3 - t2:.2f} s ({len(spots)} hotspots)")
    print(f"run_once total:  {summary.seconds:.2f} s ({summary.hotspots} hotspots, cells {cells})")


if __name__ == "__main__":
    main()
