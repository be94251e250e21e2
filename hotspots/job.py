"""The hotspot analysis as a job: stored passes of a time window in, one run of results out.

`run_once` reads the passes the ingest keeps (`pass`, at the H3 resolution stored in `meta`,
store.analysis_meta: the one source of it) for [end - window, end), with the values of the
analysed pollutants (hotspots.pass_reader), runs `hotspots.analysis.detect.detect` over them and
writes one run with its hotspots and their cells in a single transaction, then prunes old runs
(hotspots.run_writer). The API reads the newest run (hotspots.results) instead of computing
hotspots per request.

With `JobSettings.areas` enabled (off by default), the window is analysed area by area in a pool of
worker processes, and a periodic job's runs after the first re-analyse only the areas with new
passes, carrying the others over (hotspots.area_runs, docs/hotspots.md "Areas"); the run written
is complete either way.

`run_periodically` is the one scheduler: a run every `interval`, the officers' run requests
(hotspots.run_requests) served in between by `serve_pending`. Where a scheduled run's window
ends is the caller's choice (`RunEnd`): the database's clock for `envpatrol analyse`
(hotspots.cli), the newest stored pass for the demo, whose simulated clock runs ahead.

The stored passes are what the ingest built from the readings as they arrived: no per-channel
lag correction has been applied to them (the ingest stores raw values); `detect` shifts each
vehicle's pass values by the settings' lags (`AnalysisSettings.pass_lag`, docs/hotspots.md).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from edge.errors import EnvpatrolError
from hotspots import run_requests
from hotspots.analysis.detect import detect
from hotspots.analysis.settings import AnalysisSettings
from hotspots.area_runs import AreaRunner, AreaSettings
from hotspots.pass_reader import read_passes
from hotspots.run_requests import RunRequest
from hotspots.run_writer import prune, write_run
from store.analysis_meta import read_analysis
from store.failures import describe, is_unreachable

__all__ = [
    "JobError",
    "JobSettings",
    "RunEnd",
    "RunSummary",
    "database_clock",
    "run_once",
    "run_periodically",
    "serve_pending",
]

log = logging.getLogger("envpatrol.hotspots.job")

Connection = psycopg.Connection[Any]

# Where a scheduled run's window ends, read on the run's connection; None: nothing to analyse
# yet, so no run this time.
RunEnd = Callable[[Connection], datetime | None]


class JobError(EnvpatrolError, ValueError):
    """A job that cannot run as asked; `subject` names the setting."""


@dataclass(frozen=True, slots=True)
class JobSettings:
    window: timedelta = timedelta(days=30)  # passes analysed: those starting in the last window
    interval: timedelta = timedelta(hours=1)  # periodic mode: time between runs
    keep_runs: int = 24  # older runs are deleted after a successful run
    analysis: AnalysisSettings = dataclasses.field(default_factory=AnalysisSettings)
    areas: AreaSettings = dataclasses.field(default_factory=AreaSettings)

    def __post_init__(self) -> None:
        if self.window <= timedelta(0):
            raise JobError("window", f"must be positive, got {self.window}")
        if self.interval <= timedelta(0):
            raise JobError("interval", f"must be positive, got {self.interval}")
        if self.keep_runs < 1:
            raise JobError("keep_runs", f"must be at least 1, got {self.keep_runs}")


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: int
    window_start: datetime
    window_end: datetime
    resolution: int
    passes: int
    vehicles: int
    hotspots: int
    seconds: float
    areas: int = 0  # analysed by area: the areas with passes, and how many this run analysed
    analysed: int = 0
    incremental: bool = False
    cpu_s: float = 0.0  # by area: CPU time of the areas' analyses, in whichever process
    peak_mb: float = 0.0  # by area: the largest peak memory of a process analysing an area


def database_clock(conn: Connection) -> datetime:
    """The database's `now()`: the production job's window ends at it."""
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    moment: datetime = row[0]
    return moment


def run_once(
    conn: Connection,
    job: JobSettings,
    now: datetime | None = None,
    runner: AreaRunner | None = None,
    *,
    carry: bool = True,
) -> RunSummary:
    """One analysis of the window ending at `now` (default: the database's clock), committed.

    By area (job.areas.enabled), in `runner`'s pool, reusing its previous run's areas where
    nothing changed when `carry`; without a runner, a full run in a pool of its own."""
    if job.areas.enabled and runner is None:
        with AreaRunner(job.areas) as own:
            return run_once(conn, job, now, own, carry=carry)
    started = datetime.now(UTC)
    if now is None:
        now = database_clock(conn)
    window_start = now - job.window
    stored = read_analysis(conn)
    settings = job.analysis
    areas, analysed, incremental = 0, 0, False
    cpu_s, peak_mb = 0.0, 0.0
    if runner is not None and job.areas.enabled:
        by_area = runner.run(
            conn,
            resolution=stored.resolution,
            window_start=window_start,
            window_end=now,
            analysis=settings,
            carry=carry,
        )
        spots = by_area.hotspots
        passes, vehicles = by_area.passes, by_area.vehicles
        areas, analysed, incremental = by_area.areas, by_area.analysed, by_area.incremental
        cpu_s, peak_mb = by_area.cpu_s, by_area.peak_mb
        written: dict[str, Any] = {"totals": (passes, vehicles), "figures": by_area.figures}
        recorded: dict[str, Any] | None = job.areas.recorded()
    else:
        table = read_passes(conn, stored.resolution, window_start, now, settings.pollutants())
        spots = detect(table, settings)
        passes, vehicles = len(table), len(table.vehicles)
        written = {"table": table}
        recorded = None
    with conn.transaction():
        run_id = write_run(
            conn,
            started=started,
            window_start=window_start,
            window_end=now,
            resolution=stored.resolution,
            settings=settings,
            hotspots=spots,
            areas=recorded,
            **written,
        )
        pruned = prune(conn, job.keep_runs)
    seconds = (datetime.now(UTC) - started).total_seconds()
    log.info(
        "hotspot run %d: %d passes, %d hotspots in %.1f s (%d of %d areas analysed; "
        "%d old runs pruned)",
        run_id,
        passes,
        len(spots),
        seconds,
        analysed,
        areas,
        pruned,
    )
    return RunSummary(
        run_id=run_id,
        window_start=window_start,
        window_end=now,
        resolution=stored.resolution,
        passes=passes,
        vehicles=vehicles,
        hotspots=len(spots),
        seconds=seconds,
        areas=areas,
        analysed=analysed,
        incremental=incremental,
        cpu_s=cpu_s,
        peak_mb=peak_mb,
    )


def serve_pending(
    conn: Connection, job: JobSettings, limit: int = 10, runner: AreaRunner | None = None
) -> list[RunRequest]:
    """Run up to `limit` pending requests, oldest first (autocommit connection), each over
    exactly its window with the job's other settings; each one's final state. A failed analysis
    marks its request failed and goes on with the next. A request is a full run (in `runner`'s
    pool when given) and leaves the scheduled runs' carried areas as they were."""
    served = []
    for _ in range(limit):
        claimed = run_requests.claim(conn)
        if claimed is None:
            break
        try:
            summary = run_once(
                conn,
                dataclasses.replace(job, window=claimed.window_end - claimed.window_start),
                now=claimed.window_end,
                runner=runner,
                carry=False,
            )
        except Exception as exc:
            # The request records why (the log has the traceback); the next one still runs.
            log.exception("requested hotspot run %d failed", claimed.id)
            run_requests.fail(conn, claimed.id, f"{type(exc).__name__}: {exc}")
        else:
            run_requests.finish(conn, claimed.id, summary.run_id)
        final = run_requests.one(conn, claimed.id)
        assert final is not None
        served.append(final)
    return served


def run_periodically(
    connect: Callable[[], Connection],
    job: JobSettings,
    stop: threading.Event,
    *,
    end: RunEnd = database_clock,
    between: Callable[[Connection], object] | None = None,
    poll_s: float = 10.0,
    runner: AreaRunner | None = None,
) -> int:
    """Run every job.interval until `stop` is set, each run over the window ending at `end`;
    a failed run is logged and retried at the next interval, never the end of the service.
    Between runs, `between` (e.g. `serve_pending`) is called every `poll_s` seconds.
    Returns the number of successful scheduled runs.

    By area, the runs share `runner` (or one of their own): its pool, and the areas the next
    run carries over."""
    if job.areas.enabled and runner is None:
        with AreaRunner(job.areas) as own:
            return run_periodically(
                connect, job, stop, end=end, between=between, poll_s=poll_s, runner=own
            )
    done = 0
    due = time.monotonic()
    while not stop.is_set():
        try:
            with connect() as conn:
                if time.monotonic() >= due:
                    due = time.monotonic() + job.interval.total_seconds()
                    window_end = end(conn)
                    if window_end is not None:
                        run_once(conn, job, now=window_end, runner=runner)
                        done += 1
                if between is not None:
                    between(conn)
        except Exception as exc:
            # Whatever one run meets (a database restart, a bad stored value), the service
            # keeps its schedule. An unreachable database is one line; anything else is logged
            # with its traceback.
            if is_unreachable(exc):
                log.warning(
                    "hotspot run failed, database unreachable: %s; the next try in %s",
                    describe(exc),
                    job.interval,
                )
            else:
                log.exception("hotspot run failed; the next one starts in %s", job.interval)
        wait = due - time.monotonic()
        stop.wait(max(0.0, min(wait, poll_s) if between is not None else wait))
    return done
