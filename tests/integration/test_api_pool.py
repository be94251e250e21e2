"""The API's kept reader connections: reused, checked before reuse, bounded, closed at shutdown."""

from __future__ import annotations

from typing import Any

import psycopg

from api.database import Database, Session
from api.settings import ApiSettings


def _pid(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def test_a_released_connection_serves_the_next_request(database_url: str) -> None:
    database = Database(ApiSettings(database_url=database_url))
    first = Session(database)
    pid = _pid(first.connection())
    first.close()
    second = Session(database)
    assert _pid(second.connection()) == pid
    settings = second.connection().execute("SHOW default_transaction_read_only").fetchone()
    assert settings == ("on",)
    second.close()
    database.close_idle()


def test_a_connection_the_server_ended_is_replaced(database_url: str, db: Any) -> None:
    database = Database(ApiSettings(database_url=database_url))
    first = Session(database)
    pid = _pid(first.connection())
    first.close()
    db.execute("SELECT pg_terminate_backend(%s)", (pid,))
    second = Session(database)
    assert _pid(second.connection()) != pid
    second.close()
    database.close_idle()


def test_a_connection_left_in_a_transaction_is_not_kept(database_url: str) -> None:
    database = Database(ApiSettings(database_url=database_url))
    session = Session(database)
    conn = session.connection()
    pid = _pid(conn)
    conn.execute("BEGIN")
    session.close()
    assert conn.closed
    again = Session(database)
    assert _pid(again.connection()) != pid
    again.close()
    database.close_idle()


def test_no_more_than_pool_size_are_kept(database_url: str) -> None:
    database = Database(ApiSettings(database_url=database_url, pool_size=1))
    sessions = [Session(database) for _ in range(3)]
    conns = [s.connection() for s in sessions]
    for s in sessions:
        s.close()
    assert sum(not c.closed for c in conns) == 1
    database.close_idle()
    assert all(c.closed for c in conns)
