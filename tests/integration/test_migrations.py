"""Migrations that change stored data, from the schema before them, on the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from store.migrate import migrate
from store.pass_columns import STAT_COLUMN_NAMES
from tests.services import with_database

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


@pytest.fixture
def empty(admin_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to a new database without any migration applied."""
    name = f"envpatrol_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        with psycopg.connect(with_database(admin_url, name)) as conn:
            yield conn
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


ROLES = ("envpatrol_reader", "envpatrol_writer", "envpatrol_officer")


def readers_of(conn: psycopg.Connection[Any], relation: str) -> set[str]:
    return {
        role
        for role in ROLES
        if conn.execute(
            "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)"
            " AND has_table_privilege(%s, %s, 'SELECT')",
            (role, role, relation),
        ).fetchone()
        == (True,)
    }


def test_pass_statistics_move_from_jsonb_into_columns(empty: psycopg.Connection[Any]) -> None:
    migrate(empty, upto=40)
    readers = readers_of(empty, "pass_stat")
    assert "envpatrol_officer" in readers  # the roles exist on the test server (0002, 0020)
    empty.execute(
        "INSERT INTO pass (resolution, vehicle, start_time, first_seq, end_time, last_seq, cell,"
        " readings, stats) VALUES (10, 'car-a', %s, 1, %s, 3, 622370465541292031, 3, %s),"
        " (10, 'car-b', %s, 7, %s, 7, 622370465541292031, 1, '{}')",
        (
            T0,
            T0 + timedelta(seconds=20),
            '{"pm25": [3, 20.5, 10, 31.25, null], "noise": [2, 60.5, 55, 66, 63.3]}',
            T0,
            T0,
        ),
    )
    migrate(empty)
    assert empty.execute(
        "SELECT vehicle, channel, n, mean, min, max, energy_mean FROM pass_stat ORDER BY 1, 2"
    ).fetchall() == [
        ("car-a", "noise", 2, 60.5, 55.0, 66.0, 63.3),
        ("car-a", "pm25", 3, 20.5, 10.0, 31.25, None),
    ]
    assert empty.execute(
        "SELECT pm25_n, pm25_mean, noise_n, noise_energy, pm10_n, pm10_mean FROM pass"
        " ORDER BY vehicle"
    ).fetchall() == [(3, 20.5, 2, 63.3, 0, None), (0, None, 0, None, 0, None)]
    columns = {
        str(row[0])
        for row in empty.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'pass'"
        )
    }
    assert "stats" not in columns
    assert set(STAT_COLUMN_NAMES) <= columns
    assert readers_of(empty, "pass_stat") == readers  # the new view keeps the old one's grants
