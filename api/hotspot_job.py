"""The hotspot analysis as a job: stored passes of a time window in, one run of results out.

`run_once` reads the passes the ingest keeps (tables `pass` and `pass_stat`, at the analysis
resolution stored in `meta`) for [now - window, now), runs `api.analysis.detect.detect` over them
and writes one `hotspot_run` with its `hotspot` rows and their `hotspot_cell` rows in a single
transaction, then prunes old runs. The API reads the newest run (api.hotspot_results) instead of
computing hotspots per request. `envpatrol analyse` runs it once or every `interval`.

The stored passes are what the ingest built from the readings as they arrived: no per-channel
lag correction has been applied to them (the ingest stores raw values), so the job analyses
uncorrected passes; docs/hotspot-evaluation.md gives the measured effect.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from api.analysis.detect import Hotspot, detect
from api.analysis.passes import PassTable
from api.analysis.settings import AnalysisSettings
from ingest.writer import read_analysis

log = logging.getLogger("envpatrol.api.hotspot_job")

METHOD = "envpatrol-hotspots/1"  # bump when detect's output changes meaning
Connection = psycopg.Connection[Any]

_PASSES = """
SELECT p.vehicle, p.cell, p.start_time, p.end_time, p.first_seq,
       s.channel, coalesce(s.energy_mean, s.mean), s.n
FROM pass p
LEFT JOIN pass_stat s
  ON s.resolution = p.resolution AND s.vehicle = p.vehicle
 AND s.start_time = p.start_time AND s.first_seq = p.first_seq
WHERE p.resolution = %(resolution)s
  AND p.start_time >= %(start)s AND p.start_time < %(end)s
ORDER BY p.vehicle, p.start_time, p.first_seq
"""


class JobError(ValueError):
    """A job that cannot run as asked; `field` names the setting."""

    def __init__(self, field_name: str, problem: str) -> None:
        self.field = field_name
        self.problem = problem
        super().__init__(f"{field_name}: {problem}")


@dataclass(frozen=True, slots=True)
class JobSettings:
    window: timedelta = timedelta(days=30)  # passes analysed: those starting in the last window
    interval: timedelta = timedelta(hours=1)  # periodic mode: time between runs
    keep_runs: int = 24  # older runs are deleted after a successful run
    analysis: AnalysisSettings = dataclasses.field(default_factory=AnalysisSettings)

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


def table_from_rows(rows: Iterable[Sequence[Any]]) -> PassTable:
    """The pass table of the job's query rows: (vehicle, cell, start, end, first_seq, channel,
    value, n), ordered by pass, one row per pass and channel (channel None: a pass without any
    usable value). Pure, so it is tested without a database."""
    keys: dict[tuple[str, datetime, int], int] = {}
    vehicle: list[str] = []
    cell: list[int] = []
    start: list[float] = []
    end: list[float] = []
    values: dict[str, dict[int, float]] = {}
    counts: dict[str, dict[int, int]] = {}
    for row in rows:
        v, c, t0, t1, seq, channel, value, n = row
        key = (str(v), t0, int(seq))
        i = keys.get(key)
        if i is None:
            i = keys[key] = len(cell)
            vehicle.append(str(v))
            cell.append(int(c))
            start.append(t0.timestamp())
            end.append(t1.timestamp())
        if channel is not None and value is not None and n:
            values.setdefault(str(channel), {})[i] = float(value)
            counts.setdefault(str(channel), {})[i] = int(n)
    names = tuple(sorted(set(vehicle)))
    index = {name: k for k, name in enumerate(names)}
    total = len(cell)

    def column(data: Mapping[int, float]) -> np.ndarray[Any, np.dtype[np.float64]]:
        out = np.full(total, np.nan)
        out[list(data)] = list(data.values())
        return out

    def count(data: Mapping[int, int]) -> np.ndarray[Any, np.dtype[np.int64]]:
        out = np.zeros(total, dtype=np.int64)
        out[list(data)] = list(data.values())
        return out

    return PassTable(
        vehicles=names,
        vehicle=np.array([index[v] for v in vehicle], dtype=np.int64),
        cell=np.array(cell, dtype=np.int64),
        start=np.array(start, dtype=np.float64),
        end=np.array(end, dtype=np.float64),
        values={ch: column(data) for ch, data in values.items()},
        counts={ch: count(counts[ch]) for ch in values},
    )


def read_passes(conn: Connection, resolution: int, start: datetime, end: datetime) -> PassTable:
    with conn.cursor() as cur:
        cur.execute(_PASSES, {"resolution": resolution, "start": start, "end": end})
        return table_from_rows(cur)


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def settings_json(settings: AnalysisSettings) -> dict[str, Any]:
    """Every analysis setting as JSON (strata as [name, start, end] minutes)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, Mapping):
            value = dict(value)
        elif f.name == "strata":
            value = [[s.name, s.start_min, s.end_min] for s in value]
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def hotspot_row(run_id: int, rank: int, spot: Hotspot) -> tuple[object, ...]:
    low, high = spot.enhancement_interval
    band = None if spot.indicative is None else dataclasses.asdict(spot.indicative)
    return (
        run_id,
        rank,
        spot.pollutant,
        spot.unit,
        spot.stratum,
        spot.label.value,
        Jsonb([{"code": r.code, "detail": r.detail} for r in spot.reasons]),
        Jsonb(spot.geometry),
        h3.str_to_int(spot.peak_cell),
        spot.lat,
        spot.lon,
        spot.level,
        spot.enhancement,
        _number(low),
        _number(high),
        spot.excess,
        spot.persistence,
        spot.delta,
        spot.passes,
        spot.days,
        spot.vehicles,
        _number(spot.p_magnitude),
        spot.q_magnitude,
        spot.gi_z,
        spot.gi_q,
        spot.moran_i,
        spot.high_low_q,
        spot.first_seen,
        spot.last_seen,
        Jsonb(dict(spot.profile)),
        None if band is None else Jsonb(band),
        Jsonb([{"vehicle": d.vehicle, "day": d.day.isoformat()} for d in spot.drives]),
    )


HOTSPOT_COLUMNS = (
    "run_id, rank, pollutant, unit, stratum, label, reasons, geometry, peak_cell, lat, lon, "
    "level, enhancement, enhancement_low, enhancement_high, excess, persistence, delta, passes, "
    "days, vehicles, p_magnitude, q_magnitude, gi_z, gi_q, moran_i, high_low_q, first_seen, "
    "last_seen, profile, band, drives"
)


def write_run(
    conn: Connection,
    *,
    started: datetime,
    window_start: datetime,
    window_end: datetime,
    settings: AnalysisSettings,
    table: PassTable,
    hotspots: Sequence[Hotspot],
) -> int:
    """Insert one run with its hotspots and cells (in the caller's transaction); its id."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO hotspot_run (started_at, finished_at, window_start, window_end, "
            "resolution, passes, vehicles, hotspots, settings, method) "
            "VALUES (%s, now(), %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                started,
                window_start,
                window_end,
                settings.resolution,
                len(table),
                len(table.vehicles),
                len(hotspots),
                Jsonb(settings_json(settings)),
                METHOD,
            ),
        )
        row = cur.fetchone()
        assert row is not None
        run_id = int(row[0])
        with cur.copy(f"COPY hotspot ({HOTSPOT_COLUMNS}) FROM STDIN") as copy:  # type: ignore[arg-type]
            for rank, spot in enumerate(hotspots):
                copy.write_row(hotspot_row(run_id, rank, spot))
        with cur.copy("COPY hotspot_cell (run_id, rank, cell, label) FROM STDIN") as copy:
            for rank, spot in enumerate(hotspots):
                for cell, label in dict(zip(spot.cells, spot.cell_labels, strict=True)).items():
                    copy.write_row((run_id, rank, h3.str_to_int(cell), label))
    return run_id


def prune(conn: Connection, keep_runs: int) -> int:
    """Delete all but the newest keep_runs runs (their hotspots and cells cascade)."""
    cur = conn.execute(
        "DELETE FROM hotspot_run WHERE id NOT IN "
        "(SELECT id FROM hotspot_run ORDER BY finished_at DESC, id DESC LIMIT %s)",
        (keep_runs,),
    )
    return cur.rowcount


def run_once(conn: Connection, job: JobSettings, now: datetime | None = None) -> RunSummary:
    """One analysis of the window ending at `now` (default: the database's clock), committed."""
    started = datetime.now(UTC)
    if now is None:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        now = row[0]
    assert now is not None
    window_start = now - job.window
    stored = read_analysis(conn)
    settings = dataclasses.replace(job.analysis, resolution=stored.resolution)
    table = read_passes(conn, stored.resolution, window_start, now)
    spots = detect(table, settings)
    with conn.transaction():
        run_id = write_run(
            conn,
            started=started,
            window_start=window_start,
            window_end=now,
            settings=settings,
            table=table,
            hotspots=spots,
        )
        pruned = prune(conn, job.keep_runs)
    seconds = (datetime.now(UTC) - started).total_seconds()
    log.info(
        "hotspot run %d: %d passes, %d hotspots in %.1f s (%d old runs pruned)",
        run_id,
        len(table),
        len(spots),
        seconds,
        pruned,
    )
    return RunSummary(
        run_id=run_id,
        window_start=window_start,
        window_end=now,
        resolution=stored.resolution,
        passes=len(table),
        vehicles=len(table.vehicles),
        hotspots=len(spots),
        seconds=seconds,
    )


def run_periodically(
    connect: Callable[[], Connection], job: JobSettings, stop: threading.Event
) -> int:
    """Run every job.interval until `stop` is set; a failed run is logged and retried at the
    next interval, never the end of the service. Returns the number of successful runs."""
    done = 0
    while not stop.is_set():
        try:
            with connect() as conn:
                run_once(conn, job)
            done += 1
        except (psycopg.Error, ValueError) as exc:
            log.error("hotspot run failed: %s", exc)
        stop.wait(job.interval.total_seconds())
    return done


def analyse_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = (
        "Run the hotspot analysis over the stored passes and write its results for the API:"
        " once (--once) or every --interval-min minutes until stopped."
    )
    parser.add_argument("--config", help="ingest TOML file; ENVPATROL_DATABASE_URL also works")
    parser.add_argument("--once", action="store_true", help="run once and exit")
    parser.add_argument("--interval-min", type=float, default=60.0, help="periodic mode (60)")
    parser.add_argument("--window-days", type=float, default=30.0, help="passes analysed (30)")
    parser.add_argument("--keep-runs", type=int, default=24, help="runs kept (24)")

    def run(args: argparse.Namespace) -> int:
        from edge.cli import stop_on_signals
        from edge.mqtt import SettingsError
        from ingest.migrate import migrate
        from ingest.settings import load_ingest_settings

        try:
            settings = load_ingest_settings(args.config)
            job = JobSettings(
                window=timedelta(days=args.window_days),
                interval=timedelta(minutes=args.interval_min),
                keep_runs=args.keep_runs,
            )
        except (SettingsError, JobError) as exc:
            print(f"envpatrol analyse: {exc}", file=sys.stderr)
            return 2
        with psycopg.connect(settings.database_url) as conn:
            migrate(conn, settings.h3_resolution)
        if args.once:
            with psycopg.connect(settings.database_url) as conn:
                summary = run_once(conn, job)
            print(
                json.dumps(
                    {
                        "run": summary.run_id,
                        "passes": summary.passes,
                        "hotspots": summary.hotspots,
                        "seconds": round(summary.seconds, 2),
                    }
                )
            )
            return 0
        run_periodically(lambda: psycopg.connect(settings.database_url), job, stop_on_signals())
        return 0

    return run
