"""Database connections: one per request, opened only once its parameters are checked.

Reader connections are kept for the next request (at most `pool_size` idle, each at most
`POOL_MAX_AGE_S` old): opening one costs more than most of the API's statements (authentication
plus planning against cold catalog caches over dozens of partitions). A kept connection is handed
out again only if it is idle and answers an empty statement. JIT compilation is off: the API's
statements are short and selective, and JIT cost more than it saved (docs/performance.md). Plans are
always made for the parameters at hand: psycopg prepares a statement run five times on a
connection, and a kept connection runs the same statements many times; PostgreSQL's generic plan
for a hotspot's newest passes (cells as an array parameter) was far slower than a custom one
(docs/performance.md).

Reads go through the read-only role (`[database] url`, normally `envpatrol_reader`, and the
session itself is read-only). Writes to the officer-owned tables (grids, cases, API keys) go
through a second connection as the admin role (`[database] admin_url`, normally
`envpatrol_officer`), opened only by the routes that need an admin key.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from typing import Annotated, Any, cast

import psycopg
from fastapi import Depends, Request

from api.settings import ApiSettings

Connection = psycopg.Connection[Any]

POOL_MAX_AGE_S = 600.0


class Database:
    """Where and how the API connects: as a reader, in UTC, with a statement time limit."""

    def __init__(self, settings: ApiSettings) -> None:
        self.url = settings.database_url
        self.admin_url = settings.writer_url
        self.connect_timeout_s = settings.connect_timeout_s
        timeout_ms = max(1, round(settings.statement_timeout_s * 1000))
        common = (
            f"-c statement_timeout={timeout_ms} -c TimeZone=UTC -c jit=off"
            " -c plan_cache_mode=force_custom_plan"
        )
        self.options = f"-c default_transaction_read_only=on {common}"
        self.admin_options = common
        self.pool_size = settings.pool_size
        self._idle: list[Connection] = []
        # when each connection acquire() opened was made (weak: closed ones just go away)
        self._born: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def connect(self) -> Connection:
        """A new reader connection (the caller closes it)."""
        return psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=self.connect_timeout_s,
            options=self.options,
            application_name="envpatrol-api",
        )

    def acquire(self) -> Connection:
        """A reader connection: a kept one that still answers, else a new one."""
        while True:
            with self._lock:
                if not self._idle:
                    break
                conn = self._idle.pop()
            if time.monotonic() - self._born.get(conn, 0.0) < POOL_MAX_AGE_S and _usable(conn):
                return conn
            conn.close()
        conn = self.connect()
        self._born[conn] = time.monotonic()
        return conn

    def release(self, conn: Connection) -> None:
        """Keep `conn` for a later request if it is reusable and there is room, else close it."""
        if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            if len(self._idle) < self.pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def close_idle(self) -> None:
        """Close every kept connection (on shutdown)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def connect_admin(self) -> Connection:
        """A connection that may write the officer-owned tables; callers open transactions."""
        return psycopg.connect(
            self.admin_url,
            autocommit=True,
            connect_timeout=self.connect_timeout_s,
            options=self.admin_options,
            application_name="envpatrol-api-admin",
        )


class Session:
    """A request's connection, opened on first use and closed when the request ends.

    Opening lazily means a request with bad parameters is refused (4xx) before, and without,
    touching the database.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._connection: Connection | None = None
        self._admin: Connection | None = None

    @property
    def database(self) -> Database:
        return self._database

    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self._database.acquire()
        return self._connection

    def admin(self) -> Connection:
        """The admin role's connection, for writes an admin key allowed."""
        if self._admin is None:
            self._admin = self._database.connect_admin()
        return self._admin

    def close(self) -> None:
        if self._connection is not None:
            self._database.release(self._connection)
        if self._admin is not None:
            self._admin.close()
        self._connection = None
        self._admin = None


def _usable(conn: Connection) -> bool:
    if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return False
    try:
        conn.execute("")
    except psycopg.Error:
        return False
    return True


def session(request: Request) -> Iterator[Session]:
    current = Session(cast(Database, request.app.state.database))
    try:
        yield current
    finally:
        current.close()


DbSession = Annotated[Session, Depends(session)]
