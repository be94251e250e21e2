"""Versioned schema migrations on the backend the settings choose: TimescaleDB or plain PostgreSQL.

Migrations are the files `NNNN_name.sql` in `store/migrations`, applied in order, each in its
own transaction and recorded in `schema_migrations`. A migration may have a backend-specific
companion, `NNNN_name.plain.sql` or `NNNN_name.timescale.sql`, applied right after it; that is
the only place Timescale-only SQL lives.

The backend is chosen once, at the first migration, and recorded in `meta.backend`
(docs/storage.md, "Two backends, one schema"): `[database] backend` is "auto" (TimescaleDB when
the server can run it, else plain), "timescale" (refuse to start without it) or "plain" (never
try it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal, get_args

import psycopg

from edge.errors import EnvpatrolError

__all__ = [
    "BACKEND_CHOICES",
    "Backend",
    "BackendChoice",
    "BackendError",
    "Decision",
    "Migration",
    "ServerFacts",
    "available",
    "choose_backend",
    "current_backend",
    "decide",
    "enable_timescale",
    "migrate",
    "server_facts",
]

log = logging.getLogger("envpatrol.store.migrate")

Backend = Literal["timescale", "plain"]
BackendChoice = Literal["auto", "timescale", "plain"]
BACKEND_CHOICES: tuple[BackendChoice, ...] = get_args(BackendChoice)
Connect = Callable[[], psycopg.Connection[Any]]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x656E7670  # advisory lock: one migrator at a time
_LABEL: dict[Backend, str] = {"timescale": "TimescaleDB", "plain": "plain PostgreSQL"}


class BackendError(EnvpatrolError, RuntimeError):
    """The configured backend cannot be used with this server or this database."""

    def __init__(self, problem: str) -> None:
        super().__init__("database.backend", problem)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    plain: str
    timescale: str


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What the server says about TimescaleDB, read from catalogs without loading it."""

    enabled: bool  # the extension exists in this database
    available: bool  # its files are installed on the server (pg_available_extensions)
    preloaded: bool  # its loader runs in every session (shared_preload_libraries)


@dataclass(frozen=True, slots=True)
class Decision:
    """The backend to use; None: try CREATE EXTENSION first. `warning`: say it loudly."""

    backend: Backend | None
    warning: str = ""


def available() -> list[Migration]:
    folder = resources.files("store.migrations")
    files = {
        p.name: p.read_text(encoding="utf-8") for p in folder.iterdir() if p.name.endswith(".sql")
    }
    out = []
    for name, sql in sorted(files.items()):
        m = _NAME.match(name)
        if not m:
            continue
        stem = name.removesuffix(".sql")
        out.append(
            Migration(
                int(m.group(1)),
                m.group(2),
                sql,
                files.get(f"{stem}.plain.sql", ""),
                files.get(f"{stem}.timescale.sql", ""),
            )
        )
    return out


def decide(choice: BackendChoice, recorded: Backend | None, facts: ServerFacts) -> Decision:
    """The backend for `choice` on a database that recorded `recorded` (None: not migrated yet),
    on a server described by `facts`. Raises BackendError when the choice cannot be met."""
    if recorded is not None:
        if choice not in ("auto", recorded):
            raise BackendError(
                f"this database was built on {_LABEL[recorded]} (meta.backend);"
                f' "{choice}" cannot change that'
            )
        return Decision(recorded)
    if choice == "plain":
        return Decision("plain")
    if facts.enabled:
        return Decision("timescale")
    if not facts.available:
        if choice == "timescale":
            raise BackendError("the TimescaleDB extension is not installed on this server")
        return Decision("plain")
    if not facts.preloaded:
        # Without the preload, CREATE EXTENSION ends the session (FATAL), so it is not tried.
        reason = "TimescaleDB is installed on this server but not in shared_preload_libraries"
        if choice == "timescale":
            raise BackendError(f"{reason}; add it there and restart PostgreSQL")
        return Decision(
            "plain",
            f"{reason}: this database is set up on plain PostgreSQL for good"
            ' (set [database] backend = "timescale" to refuse instead, "plain" to silence this)',
        )
    return Decision(None)


def server_facts(conn: psycopg.Connection[Any]) -> ServerFacts:
    # The loader defines timescaledb.disable_load when shared_preload_libraries loads it; only
    # then is it a real setting in pg_settings (a SET placeholder is not listed there), and
    # unlike `SHOW shared_preload_libraries` any role may read it.
    row = conn.execute(
        "SELECT"
        " EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'timescaledb'),"
        " EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'timescaledb'),"
        " EXISTS (SELECT FROM pg_catalog.pg_settings WHERE name = 'timescaledb.disable_load')"
    ).fetchone()
    assert row is not None
    return ServerFacts(bool(row[0]), bool(row[1]), bool(row[2]))


def enable_timescale(connect: Connect) -> str:
    """CREATE EXTENSION timescaledb on a session of its own; "" on success, else why not (one
    line). Whatever happens to that session (an error, the server ending it), the caller's
    connection is untouched; and TimescaleDB wants CREATE EXTENSION as a session's first
    command."""
    try:
        with connect() as session:
            session.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return lines[0] if lines else type(exc).__name__
    return ""


def _same_server(conn: psycopg.Connection[Any]) -> Connect:
    """Another session like `conn`'s: its parameters (`dsn` leaves the password out)."""

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(conn.info.dsn, password=conn.info.password or None, autocommit=True)

    return connect


def choose_backend(
    conn: psycopg.Connection[Any], choice: BackendChoice, connect: Connect | None = None
) -> Backend:
    """The backend of the database on `conn` under `choice`, enabling TimescaleDB on a new
    session from `connect` (default: one like `conn`'s) when it is to be tried."""
    decision = decide(choice, current_backend(conn), server_facts(conn))
    if decision.warning:
        log.warning("%s", decision.warning)
    if decision.backend is not None:
        return decision.backend
    failure = enable_timescale(connect or _same_server(conn))
    if not failure and server_facts(conn).enabled:
        return "timescale"
    reason = f"CREATE EXTENSION timescaledb failed: {failure or 'not created'}"
    if choice == "timescale":
        raise BackendError(reason)
    log.warning("%s; this database is set up on plain PostgreSQL for good", reason)
    return "plain"


def current_backend(conn: psycopg.Connection[tuple[object, ...]]) -> Backend | None:
    try:
        with conn.transaction():
            row = conn.execute("SELECT value FROM meta WHERE key = 'backend'").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return None if row is None else row[0]  # type: ignore[return-value]


def migrate(
    conn: psycopg.Connection[tuple[object, ...]],
    h3_resolution: int = 10,
    upto: int | None = None,
    backend: BackendChoice = "auto",
    connect: Connect | None = None,
) -> Backend:
    """Bring the schema up to date (or up to version `upto`) on the backend `backend` chooses;
    returns the backend in use. Raises BackendError when the choice cannot be met. Safe to run
    concurrently. `connect` opens the session that tries CREATE EXTENSION (default: one like
    `conn`'s)."""
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(), backend text NOT NULL)"
        )
        chosen = choose_backend(conn, backend, connect)
        done = {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations")}  # type: ignore[call-overload]
        for m in available():
            if m.version in done or (upto is not None and m.version > upto):
                continue
            sql = m.sql.replace(
                "/*READING_PARTITIONING*/",
                "PARTITION BY RANGE (time)" if chosen == "plain" else "",
            )
            extra = m.plain if chosen == "plain" else m.timescale
            with conn.transaction():
                conn.execute(sql)  # type: ignore[arg-type]
                if extra:
                    conn.execute(extra)  # type: ignore[arg-type]
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, backend) VALUES (%s, %s, %s)",
                    (m.version, m.name, chosen),
                )
                if m.version == 1:
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('backend', %s), ('h3_resolution', %s)",
                        (chosen, str(h3_resolution)),
                    )
            log.info("applied migration %04d_%s (%s)", m.version, m.name, chosen)
        return chosen
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
