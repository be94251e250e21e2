"""The hotspot job for a short simulated patrol: `python -m demo.job` (database:
ENVPATROL_DATABASE_URL).

`envpatrol demo` (and the end-to-end test) drive simulated vehicles for a few simulated hours at
hundreds of times real speed, so two things differ from the production job (`envpatrol
analyse`): each run ends at the newest stored pass rather than at the database's clock (the
simulated clock runs ahead of it), and a cell qualifies after fewer passes on a single day
(`SHORT_PATROL`), since a demo has no four days of patrols. It runs the production scheduler
(hotspots.job.run_periodically) every `--interval-s` wall seconds and also answers officers'
run requests.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg

from hotspots.analysis.settings import AnalysisSettings
from hotspots.job import JobSettings, RunSummary, run_once, run_periodically, serve_pending

SHORT_PATROL = dataclasses.replace(
    AnalysisSettings(),
    candidate_min_passes=4,
    candidate_min_days=1,
    # one afternoon of driving: no day to leave out, no second day to confirm on
    few_days=1,
    confirmed_min_passes=8,
)
SHORT_JOB = JobSettings(window=timedelta(days=2), keep_runs=50, analysis=SHORT_PATROL)


def after_newest_pass(conn: psycopg.Connection[Any]) -> datetime | None:
    """Where a demo run's window ends: just after the newest stored pass; None before any."""
    row = conn.execute("SELECT max(end_time) FROM pass").fetchone()
    if row is None or row[0] is None:
        return None
    newest: datetime = row[0]
    return newest + timedelta(seconds=1)


def run_to_newest(conn: psycopg.Connection[Any], job: JobSettings = SHORT_JOB) -> RunSummary | None:
    """One run over the window ending just after the newest stored pass; None before any."""
    end = after_newest_pass(conn)
    return None if end is None else run_once(conn, job, now=end)


def loop(
    connect: Callable[[], psycopg.Connection[Any]],
    stop: threading.Event,
    interval_s: float,
    job: JobSettings = SHORT_JOB,
) -> int:
    """Run, and serve requests, every `interval_s` until `stop`; the number of runs made."""
    every = dataclasses.replace(job, interval=timedelta(seconds=interval_s))
    return run_periodically(
        connect,
        every,
        stop,
        end=after_newest_pass,
        between=lambda conn: serve_pending(conn, job),
        poll_s=interval_s,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ENVPATROL_DATABASE_URL"),
        help="default: ENVPATROL_DATABASE_URL",
    )
    parser.add_argument("--interval-s", type=float, default=5.0)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("give --database-url or set ENVPATROL_DATABASE_URL")
    if args.interval_s <= 0:
        parser.error("--interval-s must be positive")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from edge.cli import stop_on_signals

    stop = stop_on_signals()
    loop(lambda: psycopg.connect(args.database_url, autocommit=True), stop, args.interval_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
