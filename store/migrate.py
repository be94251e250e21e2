"""Versioned schema migrations, with TimescaleDB used when the server has it.

Migrations are the files `NNNN_name.sql` in `store/migrations`, applied in order, each in its
own transaction and recorded in `schema_migrations`. A migration may have a backend-specific
companion, `NNNN_name.plain.sql` or `NNNN_name.timescale.sql`, applied right after it; that is
the only place Timescale-only SQL lives.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import psycopg

log = logging.getLogger("envpatrol.store.migrate")

Backend = Literal["timescale", "plain"]
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x656E7670  # advisory lock: one migrator at a time


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    plain: str
    timescale: str


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


def detect_backend(conn: psycopg.Connection[tuple[object, ...]]) -> Backend:
    """TimescaleDB when the extension exists or can be created here, else plain PostgreSQL."""
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if row:
        return "timescale"
    available_row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if not available_row:
        return "plain"
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        log.warning(
            "TimescaleDB is installed but cannot be enabled (%s); using plain PostgreSQL", exc
        )
        return "plain"
    return "timescale"


def current_backend(conn: psycopg.Connection[tuple[object, ...]]) -> Backend | None:
    try:
        with conn.transaction():
            row = conn.execute("SELECT value FROM meta WHERE key = 'backend'").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return None if row is None else row[0]  # type: ignore[return-value]


def migrate(
    conn: psycopg.Connection[tuple[object, ...]], h3_resolution: int = 10, upto: int | None = None
) -> Backend:
    """Bring the schema up to date (or up to version `upto`); returns the backend in use. Safe to
    run concurrently."""
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(), backend text NOT NULL)"
        )
        backend = current_backend(conn) or detect_backend(conn)
        done = {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations")}  # type: ignore[call-overload]
        for m in available():
            if m.version in done or (upto is not None and m.version > upto):
                continue
            sql = m.sql.replace(
                "/*READING_PARTITIONING*/",
                "PARTITION BY RANGE (time)" if backend == "plain" else "",
            )
            extra = m.plain if backend == "plain" else m.timescale
            with conn.transaction():
                conn.execute(sql)  # type: ignore[arg-type]
                if extra:
                    conn.execute(extra)  # type: ignore[arg-type]
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, backend) VALUES (%s, %s, %s)",
                    (m.version, m.name, backend),
                )
                if m.version == 1:
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('backend', %s), ('h3_resolution', %s)",
                        (backend, str(h3_resolution)),
                    )
            log.info("applied migration %04d_%s (%s)", m.version, m.name, backend)
        return backend
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
