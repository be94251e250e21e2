"""Officers' requests for a hotspot analysis of a given window, answered asynchronously.

The API records a request (`request_run`, on the officer's connection); whatever runs the hotspot
job calls `serve_pending` on a connection that may write the results: it claims the oldest
pending request, runs `hotspots.job.run_once` over exactly that window and records the run
(or the error). `/v1/hotspots?from=..&to=..` then finds that run (the newest whose window holds
the range).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from hotspots.job import JobSettings, run_once

log = logging.getLogger("envpatrol.hotspots.run_requests")

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


def serve_pending(conn: Connection, job: JobSettings, limit: int = 10) -> list[RunRequest]:
    """Run up to `limit` pending requests, oldest first (autocommit connection); each one's
    final state. A failed analysis marks its request failed and goes on with the next."""
    served = []
    for _ in range(limit):
        row = conn.execute(_CLAIM).fetchone()
        if row is None:
            break
        claimed = _request(row)
        try:
            summary = run_once(
                conn,
                dataclasses.replace(job, window=claimed.window_end - claimed.window_start),
                now=claimed.window_end,
            )
        except Exception as exc:
            # The request records why (the log has the traceback); the next one still runs.
            log.exception("requested hotspot run %d failed", claimed.id)
            conn.execute(
                "UPDATE hotspot_run_request SET status = 'failed', finished_at = now(),"
                " error = %s WHERE id = %s",
                (f"{type(exc).__name__}: {exc}", claimed.id),
            )
        else:
            conn.execute(
                "UPDATE hotspot_run_request SET status = 'done', finished_at = now(),"
                " run_id = %s WHERE id = %s",
                (summary.run_id, claimed.id),
            )
        final = one(conn, claimed.id)
        assert final is not None
        served.append(final)
    return served
