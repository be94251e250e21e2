"""How long the hotspot job takes end to end on one month of a 10-vehicle sub-district fleet.

The fleet-month of bench/hotspots_scale.py (synthetic passes, H3 resolution 11, six pollutants)
is stored in a scratch database through the ingest's pass store (`pass` and `pass_stat`, as the
ingest keeps them), then the job's steps are timed: reading the window's passes from PostgreSQL,
`detect`, writing the run with its hotspots and cells; and one whole `run_once`. The scratch
database is created on the machine's PostgreSQL (ENVPATROL_TEST_DATABASE_URL or the default
admin URL of tests/services.py) and dropped afterwards.

    .venv/bin/python -m bench.hotspot_job_scale [--days 30] [--vehicles 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from api.analysis.detect import detect
from api.analysis.settings import AnalysisSettings
from api.analysis.synthetic import as_stored, generate
from api.hotspot_job import JobSettings, read_passes, run_once, write_run
from bench.hotspots_scale import scenario
from ingest import pass_store
from tests.services import admin_database_url, scratch_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--vehicles", type=int, default=10)
    args = parser.parse_args()
    table = generate(scenario(args.days, args.vehicles))
    resolution = 11
    with (
        scratch_database(admin_database_url(), h3_resolution=resolution) as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            pass_store.store(cur, resolution, as_stored(table))
        stored_s = time.perf_counter() - started
        end = datetime.fromtimestamp(float(table.end.max()), UTC) + timedelta(hours=1)
        window = timedelta(days=args.days + 1)
        settings = dataclasses.replace(AnalysisSettings(), resolution=resolution)
        detect(table.subset(np.arange(min(len(table), 1000))), settings)  # import esda

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
                settings=settings,
                table=read,
                hotspots=spots,
            )
        t3 = time.perf_counter()
        summary = run_once(conn, JobSettings(window=window), now=end)
        cells = conn.execute(
            "SELECT count(*) FROM hotspot_cell WHERE run_id = %s", (summary.run_id,)
        ).fetchone()
    print(f"passes:          {len(table):,} ({len(table.values)} pollutants each)")
    print(f"vehicles x days: {args.vehicles} x {args.days}, H3 resolution {resolution}")
    print(f"store (ingest):  {stored_s:.1f} s (not part of the job)")
    print(f"read passes:     {t1 - t0:.2f} s")
    print(f"detect:          {t2 - t1:.2f} s")
    print(f"write results:   {t3 - t2:.2f} s ({len(spots)} hotspots)")
    print(f"run_once total:  {summary.seconds:.2f} s ({summary.hotspots} hotspots, cells {cells})")


if __name__ == "__main__":
    main()
