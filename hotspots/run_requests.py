"""Officers' requests for a hotspot analysis of a given window, answered asynchronously.

The API records a request (`request_run`, on the officer's connection) and reads requests back
(`one`, `recent`). Whatever runs the hotspot job serves them (hotspots.job.serve_pending) on a
connection that may write the results: it claims the oldest pending request (`claim`), runs the
analysis over exactly that window and records the run (`finish`) or the error (`fail`).
`/v1/hotspots?from=..&to=..` then finds that run (the newest whose window holds the range).
This module only reads and writes `hotspot_run_request`, so the web process imports it without
the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

__all__ = ["RunRequest", "claim", "fail", "finish", "one", "recent", "request_run"]

Connection = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class RunRequest:
    id: int
    requested_at: datetime
    requested_by: str
    window_start: datetime
    window_end: datetime
    status: str  # pending, running, done, failed
    run_id: int | None
    finished_at: datetime | None
    error: str | None


_COLUMNS = (
    "id, requested_at, requested_by, window_start, window_end, status, run_id, finished_at, error"
)


def _request(row: Any) -> RunRequest:
    return RunRequest(*row)


def request_run(conn: Connection, start: datetime, end: datetime, actor: str) -> RunRequest:
    row = conn.execute(
        f"INSERT INTO hotspot_run_request (requested_by, window_start, window_end)"
        f" VALUES (%s, %s, %s) RETURNING {_COLUMNS}",
        (actor, start, end),
    ).fetchone()
    assert row is not None
    return _request(row)


def one(conn: Connection, request_id: int) -> RunRequest | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM hotspot_run_request WHERE id = %s", (request_id,)
    ).fetchone()
    return None if row is None else _request(row)


def recent(conn: Connection, limit: int = 20) -> list[RunRequest]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM hotspot_run_request ORDER BY id DESC LIMIT %s", (limit,)
    ).fetchall()
    return [_request(r) for r in rows]


_CLAIM = f"""
UPDATE hotspot_run_request SET status = 'running'
WHERE id = (SELECT id FROM hotspot_run_request WHERE status = 'pending'
            ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING {_COLUMNS}
"""


def claim(conn: Connection) -> RunRequest | None:
    """The oldest pending request, now running; None without one. A request another server
    is claiming at the same moment is skipped, so no two run the same request."""
    row = conn.execute(_CLAIM).fetchone()
    return None if row is None else _request(row)


def finish(conn: Connection, request_id: int, run_id: int) -> None:
    conn.execute(
        "UPDATE hotspot_run_request SET status = 'done', finished_at = now(),"
        " run_id = %s WHERE id = %s",
        (run_id, request_id),
    )


def fail(conn: Connection, request_id: int, error: str) -> None:
    conn.execute(
        "UPDATE hotspot_run_request SET status = 'failed', finished_at = now(),"
        " error = %s WHERE id = %s",
        (error, request_id),
    )
