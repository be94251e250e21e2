"""Scratch databases: a new, migrated database made for one test or benchmark, dropped after.

They are made on an administrator's connection to a PostgreSQL server: the one named by
ENVPATROL_TEST_DATABASE_URL, else the machine's own on 127.0.0.1:5432 when it answers, else what
the caller's `start` hands back (the test suite and the benchmarks start an embedded server).
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from edge.errors import EnvpatrolError
from store.migrate import migrate

__all__ = [
    "ADMIN_URL_VARIABLE",
    "MACHINE_ADMIN_URL",
    "NoServerError",
    "admin_database_url",
    "answers",
    "scratch_database",
    "scratch_template",
    "with_database",
]

ADMIN_URL_VARIABLE = "ENVPATROL_TEST_DATABASE_URL"
MACHINE_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_MACHINE_ADDRESS = ("127.0.0.1", 5432)


class NoServerError(EnvpatrolError, RuntimeError):
    """No PostgreSQL to make scratch databases on, and no way to start one was given."""

    def __init__(self) -> None:
        super().__init__(
            "scratch database",
            f"no PostgreSQL; set {ADMIN_URL_VARIABLE} or start one on "
            f"{_MACHINE_ADDRESS[0]}:{_MACHINE_ADDRESS[1]}",
        )


def answers(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port (within a second)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def admin_database_url(start: Callable[[], str] | None = None) -> str:
    """An administrator's URL of the server to make scratch databases on (see the module's
    docstring); `start` is called only when neither the variable nor the machine has one."""
    url = os.environ.get(ADMIN_URL_VARIABLE)
    if url:
        return url
    if answers(*_MACHINE_ADDRESS):
        return MACHINE_ADMIN_URL
    if start is None:
        raise NoServerError
    return start()


def with_database(url: str, name: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextlib.contextmanager
def scratch_database(
    admin_url: str, h3_resolution: int = 10, template: str | None = None
) -> Iterator[str]:
    """A new database on `admin_url`'s server, migrated with `h3_resolution` (or a copy of
    `template`, a database `scratch_template` made); its URL. Dropped on leaving, connections
    and all."""
    name = f"envpatrol_test_{uuid.uuid4().hex[:12]}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(create)
    url = with_database(admin_url, name)
    try:
        if template is None:
            with psycopg.connect(url) as conn:
                migrate(conn, h3_resolution=h3_resolution)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def scratch_template(admin_url: str, h3_resolution: int = 10) -> Iterator[str | None]:
    """A migrated database that `scratch_database(..., template=name)` copies instead of
    migrating each new one (a copy takes a fraction of the migrations' time); dropped on
    leaving. None where the server offers TimescaleDB: its background workers connect to every
    database with the extension, and PostgreSQL copies no database that has a connection."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        offered = admin.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
    if offered is not None:
        yield None
        return
    with scratch_database(admin_url, h3_resolution) as url:
        yield urlsplit(url).path.lstrip("/")
