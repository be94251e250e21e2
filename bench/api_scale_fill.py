"""Filling the benchmark database: migrations, a fleet-month of readings by binary COPY into the
daily partitions, then rollups and passes by the store's own rebuild SQL and code, the vehicle
table, and one run of the hotspot job."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql

from bench.api_scale_data import COPY_HEADER, COPY_TRAILER, Fleet, FleetSpec, copy_rows
from edge.quality import STATS_EXCLUDED_FLAGS
from hotspots import job as hotspot_job
from ingest import pass_store
from ingest.writer import rollup_sql
from store.analysis_meta import read_analysis
from store.migrate import current_backend, migrate
from store.reading_columns import COLUMNS


@dataclass(frozen=True, slots=True)
class FillReport:
    readings: int
    rollups: int
    passes: int
    hotspot_run: int
    hotspots: int
    seconds: dict[str, float]
    database_bytes: int


def database_url(admin_url: str, name: str, user: str | None = None) -> str:
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = name
    if user is not None:
        info["user"] = user
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


def fill_marker(admin_url: str, name: str) -> dict[str, Any] | None:
    """The fill's description stored as the database comment, or None: no such database or not
    completely filled."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
    if row is None or not row[0]:
        return None
    marker: dict[str, Any] = json.loads(row[0])
    return marker


def recreate(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


Connection = psycopg.Connection[Any]


def copy_readings(conn: Connection, spec: FleetSpec, log: Any = print) -> None:
    """Every vehicle-day by binary COPY into its daily partition (made by the store's
    envpatrol_ensure_partition), one transaction per day."""
    fleet = Fleet(spec)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
    begin = time.perf_counter()
    for day in range(spec.days):
        date = spec.day_start(day).date()
        conn.execute("SELECT envpatrol_ensure_partition(%s)", (date,))
        part = sql.Identifier(f"reading_p{date:%Y%m%d}")
        with conn.cursor() as cur:
            statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(part, columns)
            with cur.copy(statement) as copy:
                copy.write(COPY_HEADER)
                for v in range(spec.vehicles):
                    copy.write(copy_rows(fleet.vehicle_day(v, day)))
                copy.write(COPY_TRAILER)
        conn.commit()
        done = (day + 1) * spec.vehicles * spec.ticks_per_day
        log(f"day {day + 1}/{spec.days}: {done:,} readings, {time.perf_counter() - begin:.0f} s")


def build_rollups(conn: Connection, spec: FleetSpec) -> int:
    """The rebuild's rollup statement (ingest.rebuild), one daily partition at a time: buckets
    are hours, so the sums equal those over the whole table at once."""
    conn.execute("SET work_mem = '256MB'")
    rollups = 0
    resolution = read_analysis(conn).resolution
    with conn.cursor() as cur:
        for day in range(spec.days):
            part = f"reading_p{spec.day_start(day):%Y%m%d}"
            cur.execute(
                "INSERT INTO cell_rollup"  # type: ignore[arg-type]
                " (resolution, cell, bucket, channel, n, sum, sumsq, min, max, energy_sum)"
                + rollup_sql(part),
                {"resolution": resolution, "stats_excluded": list(STATS_EXCLUDED_FLAGS)},
            )
            rollups += cur.rowcount
    conn.commit()
    return rollups


def build_passes(conn: Connection) -> int:
    """Every pass, by the rebuild's own code (ingest.pass_store.rebuild_all)."""
    analysis = read_analysis(conn)
    with conn.transaction():
        passes = pass_store.rebuild_all(conn, analysis.resolution, analysis.pass_gap)
    conn.commit()
    return passes


def locate_vehicles(conn: Connection, spec: FleetSpec) -> None:
    """The vehicle table as the writer leaves it: each vehicle's newest reading."""
    conn.execute(
        "INSERT INTO vehicle (vehicle, first_seen, last_seen, last_seq, last_time, last_lat,"
        " last_lon, state, status_at)"
        " SELECT DISTINCT ON (vehicle) vehicle, %(start)s, time, seq, time, lat, lon,"
        " 'online', time FROM reading ORDER BY vehicle, time DESC, seq DESC",
        {"start": spec.start},
    )
    conn.commit()


def fill(admin_url: str, name: str, spec: FleetSpec, log: Any = print) -> FillReport:
    """Recreate database `name` and fill it; marks it filled (database comment) at the end."""
    recreate(admin_url, name)
    seconds: dict[str, float] = {}

    def step(label: str, begin: float) -> None:
        seconds[label] = time.perf_counter() - begin
        log(f"{label}: {seconds[label]:.0f} s")

    with psycopg.connect(database_url(admin_url, name)) as conn:
        migrate(conn, spec.resolution)
        if current_backend(conn) != "plain":
            raise RuntimeError("the fill writes daily partitions: plain PostgreSQL only")
        conn.autocommit = False
        conn.execute("SET synchronous_commit = off")
        begin = time.perf_counter()
        copy_readings(conn, spec, log)
        step("readings", begin)
        begin = time.perf_counter()
        rollups = build_rollups(conn, spec)
        step("rollups", begin)
        begin = time.perf_counter()
        passes = build_passes(conn)
        step("passes", begin)
        locate_vehicles(conn, spec)
        conn.autocommit = True
        begin = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        step("vacuum_analyze", begin)
        conn.autocommit = False
        begin = time.perf_counter()
        job = hotspot_job.JobSettings(window=timedelta(days=spec.days))
        summary = hotspot_job.run_once(conn, job, now=spec.day_start(spec.days))
        conn.commit()
        step("hotspot_job", begin)
        conn.autocommit = True
        size_row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        size = int(size_row[0]) if size_row else 0
    report = FillReport(
        readings=spec.readings,
        rollups=rollups,
        passes=passes,
        hotspot_run=summary.run_id,
        hotspots=summary.hotspots,
        seconds={k: round(v, 1) for k, v in seconds.items()},
        database_bytes=size,
    )
    marker = {"spec": {**asdict(spec), "start": spec.start.isoformat()}, "fill": asdict(report)}
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(json.dumps(marker))
            )
        )
    return report
