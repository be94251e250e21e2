"""Database connections: one per request, opened only once its parameters are checked.

Reads go through the read-only role (`[database] url`, normally `envpatrol_reader`, and the
session itself is read-only). Writes to the officer-owned tables (grids, cases, API keys) go
through a second connection as the admin role (`[database] admin_url`, normally
`envpatrol_officer`), opened only by the routes that need an admin key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, cast

import psycopg
from fastapi import Depends, Request

from api.settings import ApiSettings

Connection = psycopg.Connection[Any]


class Database:
    """Where and how the API connects: as a reader, in UTC, with a statement time limit."""

    def __init__(self, settings: ApiSettings) -> None:
        self.url = settings.database_url
        self.admin_url = settings.writer_url
        self.connect_timeout_s = settings.connect_timeout_s
        timeout_ms = max(1, round(settings.statement_timeout_s * 1000))
        common = f"-c statement_timeout={timeout_ms} -c TimeZone=UTC"
        self.options = f"-c default_transaction_read_only=on {common}"
        self.admin_options = common

    def connect(self) -> Connection:
        return psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=self.connect_timeout_s,
            options=self.options,
            application_name="envpatrol-api",
        )

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
            self._connection = self._database.connect()
        return self._connection

    def admin(self) -> Connection:
        """The admin role's connection, for writes an admin key allowed."""
        if self._admin is None:
            self._admin = self._database.connect_admin()
        return self._admin

    def close(self) -> None:
        for connection in (self._connection, self._admin):
            if connection is not None:
                connection.close()
        self._connection = None
        self._admin = None


def session(request: Request) -> Iterator[Session]:
    current = Session(cast(Database, request.app.state.database))
    try:
        yield current
    finally:
        current.close()


DbSession = Annotated[Session, Depends(session)]
