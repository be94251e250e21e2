"""The TimescaleDB path: hypertable, compression, policies and the continuous aggregate. Runs only
where the server has the extension; elsewhere the plain-PostgreSQL tests cover the store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from edge.wire import Position, Reading
from ingest.writer import Writer
from store.migrate import migrate

pytestmark = pytest.mark.integration


@pytest.fixture
def ts_conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    # Autocommit, as migrate() sets it: it cannot switch a connection inside a transaction.
    with psycopg.connect(database_url, autocommit=True) as conn:
        backend = conn.execute("SELECT value FROM meta WHERE key = 'backend'").fetchone()
        if backend != ("timescale",):
            available = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
            ).fetchone()
            pytest.skip(
                "TimescaleDB is not installed on this PostgreSQL server"
                if available is None
                else "TimescaleDB is installed but not in shared_preload_libraries"
            )
        yield conn


def test_hypertable_with_day_chunks_compression_and_policies(
    ts_conn: psycopg.Connection[Any],
) -> None:
    dims = ts_conn.execute(
        "SELECT column_name, time_interval FROM timescaledb_information.dimensions"
        " WHERE hypertable_name = 'reading'"
    ).fetchall()
    assert dims == [("time", timedelta(days=1))]
    segment = ts_conn.execute(
        "SELECT attname FROM timescaledb_information.compression_settings"
        " WHERE hypertable_name = 'reading' AND segmentby_column_index IS NOT NULL"
    ).fetchall()
    assert segment == [("vehicle",)]
    jobs = {
        (str(r[0]), str(r[1]))
        for r in ts_conn.execute(
            "SELECT hypertable_name, proc_name FROM timescaledb_information.jobs"
        )
    }
    assert ("reading", "policy_compression") in jobs
    # A continuous aggregate's refresh policy is listed under the aggregate's own name in current
    # TimescaleDB releases, under its materialization hypertable in older ones.
    materialization = ts_conn.execute(
        "SELECT materialization_hypertable_name FROM timescaledb_information.continuous_aggregates"
        " WHERE view_name = 'cell_hourly'"
    ).fetchone()
    assert materialization is not None
    refreshed = {name for name, proc in jobs if proc == "policy_refresh_continuous_aggregate"}
    assert refreshed & {"cell_hourly", str(materialization[0])}
    ts_conn.execute("SELECT envpatrol_set_policies(INTERVAL '14 days', INTERVAL '400 days')")
    retention = ts_conn.execute(
        "SELECT count(*) FROM timescaledb_information.jobs"
        " WHERE hypertable_name = 'reading' AND proc_name = 'policy_retention'"
    ).fetchone()
    assert retention == (1,)


def test_the_continuous_aggregate_answers_in_real_time(ts_conn: psycopg.Connection[Any]) -> None:
    materialized_only = ts_conn.execute(
        "SELECT materialized_only FROM timescaledb_information.continuous_aggregates"
        " WHERE view_name = 'cell_hourly'"
    ).fetchone()
    assert materialized_only == (False,)
    migrate(ts_conn)
    ts_conn.autocommit = False
    writer = Writer(ts_conn, 10, plain=False)
    writer.prepare()
    moment = datetime.now(UTC) - timedelta(minutes=5)
    position = Position(39.9, 116.4, True)
    writer.write(
        [
            Reading("car-t", 0, moment, "gnss", position, {"pm25": 10.0}, "p"),
            Reading("car-t", 1, moment, "gnss", position, {"pm25": 30.0}, "p",
                    channel_flags={"pm25": ("spike",)}),
        ],
        [],
        [],
    )  # fmt: skip
    ts_conn.commit()
    row = ts_conn.execute("SELECT sum(pm25_n), sum(pm25_sum) FROM cell_hourly").fetchone()
    assert row == (1, 10.0)
