"""Migrations on the real PostgreSQL: those that change stored data, from the schema before them,
and the choice of backend (`[database] backend`), including a session the server ends."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from store import migrate as migrate_module
from store.migrate import BackendError, ServerFacts, enable_timescale, migrate
from store.pass_columns import STAT_COLUMN_NAMES
from tests.services import with_database

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


@pytest.fixture
def empty(admin_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to a new database without any migration applied."""
    name = f"envpatrol_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        with psycopg.connect(with_database(admin_url, name), autocommit=True) as conn:
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


def backend_of(conn: psycopg.Connection[Any]) -> object:
    row = conn.execute("SELECT value FROM meta WHERE key = 'backend'").fetchone()
    return None if row is None else row[0]


def no_session() -> psycopg.Connection[Any]:
    raise AssertionError("CREATE EXTENSION was tried")


def test_plain_never_tries_timescale(empty: psycopg.Connection[Any]) -> None:
    assert migrate(empty, backend="plain", connect=no_session) == "plain"
    assert backend_of(empty) == "plain"


def test_timescale_is_refused_in_one_line_on_a_server_without_it(
    empty: psycopg.Connection[Any],
) -> None:
    facts = migrate_module.server_facts(empty)
    if facts.available:
        pytest.skip("this PostgreSQL server has TimescaleDB")
    with pytest.raises(BackendError) as raised:
        migrate(empty, backend="timescale", connect=no_session)
    assert str(raised.value) == (
        "database.backend: the TimescaleDB extension is not installed on this server"
    )
    assert empty.execute("SELECT count(*) FROM schema_migrations").fetchone() == (0,)
    assert migrate(empty, backend="auto", connect=no_session) == "plain"


def test_a_migrated_database_refuses_the_other_backend(empty: psycopg.Connection[Any]) -> None:
    migrate(empty, backend="plain")
    with pytest.raises(BackendError, match="built on plain PostgreSQL"):
        migrate(empty, backend="timescale", connect=no_session)
    assert migrate(empty, backend="auto", connect=no_session) == "plain"


Connect = Callable[[], psycopg.Connection[Any]]


@pytest.fixture
def ending_sessions(empty: psycopg.Connection[Any]) -> Connect:
    """New sessions on `empty`'s database that the server ends (FATAL) when they run CREATE
    EXTENSION, as TimescaleDB does when it is installed but not preloaded."""
    superuser = empty.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if superuser.fetchone() != (True,):
        pytest.skip("event triggers need a superuser")
    empty.execute(
        "CREATE FUNCTION end_session() RETURNS event_trigger LANGUAGE plpgsql AS"
        " $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); END $$"
    )
    empty.execute(
        "CREATE EVENT TRIGGER end_session_on_create_extension ON ddl_command_start"
        " WHEN TAG IN ('CREATE EXTENSION') EXECUTE FUNCTION end_session()"
    )
    return lambda: psycopg.connect(empty.info.dsn, autocommit=True)


def test_a_session_ended_by_create_extension_leaves_the_caller_connected(
    empty: psycopg.Connection[Any], ending_sessions: Connect
) -> None:
    failure = enable_timescale(ending_sessions)
    assert "terminating connection" in failure
    assert "\n" not in failure
    assert empty.execute("SELECT 1").fetchone() == (1,)


# These two simulate one fact, a server that says TimescaleDB is installed and preloaded; the
# session that then tries CREATE EXTENSION is really ended by the server.
READY = ServerFacts(enabled=False, available=True, preloaded=True)


def test_auto_warns_and_migrates_plain_on_the_same_connection_when_the_session_ends(
    empty: psycopg.Connection[Any],
    ending_sessions: Connect,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(migrate_module, "server_facts", lambda _conn: READY)
    with caplog.at_level(logging.WARNING, logger="envpatrol.store.migrate"):
        assert migrate(empty, connect=ending_sessions) == "plain"
    assert "CREATE EXTENSION timescaledb failed: terminating connection" in caplog.text
    assert backend_of(empty) == "plain"
    assert empty.execute("SELECT to_regclass('reading_default')::text").fetchone() == (
        "reading_default",
    )


def test_timescale_refuses_in_one_line_when_the_session_ends(
    empty: psycopg.Connection[Any], ending_sessions: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrate_module, "server_facts", lambda _conn: READY)
    with pytest.raises(BackendError) as raised:
        migrate(empty, backend="timescale", connect=ending_sessions)
    assert str(raised.value).startswith(
        "database.backend: CREATE EXTENSION timescaledb failed: terminating connection"
    )
    assert "\n" not in str(raised.value)
    assert empty.execute("SELECT count(*) FROM schema_migrations").fetchone() == (0,)
