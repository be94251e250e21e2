"""Read-only database connections: one per request, opened only once its parameters are checked."""

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
        self.connect_timeout_s = settings.connect_timeout_s
        timeout_ms = max(1, round(settings.statement_timeout_s * 1000))
        self.options = (
            f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms} -c TimeZone=UTC"
        )

    def connect(self) -> Connection:
        return psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=self.connect_timeout_s,
            options=self.options,
            application_name="envpatrol-api",
        )


class Session:
    """A request's connection, opened on first use and closed when the request ends.

    Opening lazily means a request with bad parameters is refused (4xx) before, and without,
    touching the database.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._connection: Connection | None = None

    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self._database.connect()
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def session(request: Request) -> Iterator[Session]:
    current = Session(cast(Database, request.app.state.database))
    try:
        yield current
    finally:
        current.close()


DbSession = Annotated[Session, Depends(session)]
