"""The hotspot analysis as a job: stored passes of a time window in, one run of results out.

`run_once` reads the passes the ingest keeps (`pass`, at the analysis resolution stored in
`meta`) for [now - window, now), with the values of the analysed pollutants, runs `hotspots.analysis.detect.detect` over them
and writes one `hotspot_run` with its `hotspot` rows and their `hotspot_cell` rows in a single
transaction, then prunes old runs. The API reads the newest run (hotspots.results) instead of
computing hotspots per request. `envpatrol analyse` runs it once or every `interval`.

The stored passes are what the ingest built from the readings as they arrived: no per-channel
lag correction has been applied to them (the ingest stores raw values); `detect` shifts each
vehicle's pass values by the settings' lags (`AnalysisSettings.pass_lag`, docs/hotspots.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from hotspots.analysis.detect import Hotspot, detect
from hotspots.analysis.passes import PassTable
from hotspots.analysis.settings import AnalysisSettings
from ingest.writer import read_analysis
from store.pass_columns import stat_columns

log = logging.getLogger("envpatrol.hotspots.job")

METHOD = "envpatrol-hotspots/1"  # bump when detect's output changes meaning
Connection = psycopg.Connection[Any]

# The window's passes straight from `pass` (the pass_stat view would make a row per channel, to be
# grouped back together), only the columns the analysis needs, one row per vehicle with each
# column as an array, in binary COPY: a handful of rows, each array a fixed-width run that numpy
# reads as it is, instead of a message and Python objects per pass. Per channel: the value (energy
# mean for logarithmic channels, else the mean; NaN without one) and the readings behind it. A
# pass without a value of any of the channels adds nothing and is left out.
_COPY_PASSES = """
COPY (
  SELECT vehicle, array_agg(cell), array_agg(extract(epoch FROM start_time)::float8),
         array_agg(extract(epoch FROM end_time)::float8){columns}
  FROM pass
  WHERE resolution = %(resolution)s AND start_time >= %(start)s AND start_time < %(end)s
    AND ({counted})
  GROUP BY vehicle
  ORDER BY vehicle
) TO STDOUT (FORMAT BINARY)
"""
_COPY_COLUMN = ", array_agg(coalesce({value}, 'NaN')), array_agg({n})"
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


class CopyFormatError(ValueError):
    """A COPY stream that is not the rows asked for; `offset` is the byte where it went wrong."""

    def __init__(self, offset: int, problem: str) -> None:
        self.offset = offset
        self.problem = problem
        super().__init__(f"byte {offset}: {problem}")


def _int(data: memoryview, at: int, size: int) -> int:
    if at + size > len(data):
        raise CopyFormatError(at, "stream ends inside a field")
    return int.from_bytes(data[at : at + size], "big", signed=True)


def _array(data: memoryview, at: int, length: int, kind: str) -> np.ndarray[Any, Any]:
    """A one-dimensional binary PostgreSQL array without NULLs of fixed-width `kind` (numpy)."""
    ndim = _int(data, at, 4)
    if ndim == 0:
        return np.zeros(0, dtype=kind)
    if ndim != 1 or _int(data, at + 4, 4) != 0:
        raise CopyFormatError(at, "not a one-dimensional array without NULLs")
    size = _int(data, at + 12, 4)
    item = np.dtype([("len", ">i4"), ("v", kind)])
    if 20 + size * item.itemsize != length:
        raise CopyFormatError(at, f"{size} elements of {kind} do not fill {length} bytes")
    elements = np.frombuffer(data[at + 20 : at + length], dtype=item)
    if not (elements["len"] == item.itemsize - 4).all():
        raise CopyFormatError(at, f"elements are not {kind}")
    return elements["v"]


def table_from_copy(channels: Sequence[str], data: bytes | bytearray) -> PassTable:
    """The pass table of the job's binary COPY stream (`_COPY_PASSES`): per vehicle a row of its
    name and arrays of cell, start and end epoch s, then value and count of each channel.
    Channels without any value are left out. Pure, so it is tested without a database."""
    view = memoryview(data)
    if not bytes(view[:11]) == _COPY_SIGNATURE:
        raise CopyFormatError(0, "no binary COPY header")
    at = 19 + _int(view, 15, 4)
    fields = 4 + 2 * len(channels)
    kinds = [">i8", ">f8", ">f8"] + [">f8", ">i4"] * len(channels)
    vehicles: list[str] = []
    columns: list[list[np.ndarray[Any, Any]]] = [[] for _ in kinds]
    while (count := _int(view, at, 2)) != -1:
        if count != fields:
            raise CopyFormatError(at, f"a row of {count} fields, not {fields}")
        at += 2
        length = _int(view, at, 4)
        vehicles.append(bytes(view[at + 4 : at + 4 + length]).decode())
        at += 4 + length
        for k, kind in enumerate(kinds):
            length = _int(view, at, 4)
            columns[k].append(_array(view, at + 4, length, kind))
            at += 4 + length
    if at + 2 != len(view):
        raise CopyFormatError(at, "data after the end-of-data marker")

    def joined(k: int, dtype: type) -> np.ndarray[Any, Any]:
        return np.concatenate(columns[k]).astype(dtype) if columns[k] else np.zeros(0, dtype)

    sizes = [len(c) for c in columns[0]]
    values: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}
    counts: dict[str, np.ndarray[Any, np.dtype[np.int64]]] = {}
    for i, channel in enumerate(channels):
        count_i = joined(4 + 2 * i, np.int64)
        if not count_i.any():
            continue
        value = joined(3 + 2 * i, np.float64)
        value[count_i == 0] = np.nan
        values[channel] = value
        counts[channel] = count_i
    return PassTable(
        vehicles=tuple(vehicles),
        vehicle=np.repeat(np.arange(len(vehicles), dtype=np.int64), sizes),
        cell=joined(0, np.int64),
        start=joined(1, np.float64),
        end=joined(2, np.float64),
        values=values,
        counts=counts,
    )


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


def table_from_rows(channels: Sequence[str], rows: Sequence[Sequence[Any]]) -> PassTable:
    """The pass table of the job's query rows: (vehicle, cell, start epoch s, end epoch s, then
    value and n of each of `channels`, None where the pass has no usable value). Pure, so it is
    tested without a database."""
    n = len(rows)
    if n == 0:
        empty = np.zeros(0)
        none = np.zeros(0, dtype=np.int64)
        return PassTable(
            (), none, none, empty, empty, dict.fromkeys(channels, empty),
            dict.fromkeys(channels, none),
        )  # fmt: skip
    columns = list(zip(*rows, strict=True))
    names, vehicle = np.unique(np.array(columns[0], dtype=object), return_inverse=True)
    values: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}
    counts: dict[str, np.ndarray[Any, np.dtype[np.int64]]] = {}
    for k, channel in enumerate(channels):
        value = np.array(columns[4 + 2 * k], dtype=np.float64)  # None becomes NaN
        count = np.nan_to_num(np.array(columns[5 + 2 * k], dtype=np.float64)).astype(np.int64)
        value[count == 0] = np.nan
        values[channel] = value
        counts[channel] = count
    return PassTable(
        vehicles=tuple(str(v) for v in names),
        vehicle=np.asarray(vehicle, dtype=np.int64).reshape(n),
        cell=np.array(columns[1], dtype=np.int64),
        start=np.array(columns[2], dtype=np.float64),
        end=np.array(columns[3], dtype=np.float64),
        values=values,
        counts=counts,
    )


def read_passes(
    conn: Connection,
    resolution: int,
    start: datetime,
    end: datetime,
    channels: Sequence[str],
) -> PassTable:
    """The passes of [start, end) at `resolution` with a value of any of `channels` (those of
    the channels without any value in the window are left out of the table)."""
    params = {"resolution": resolution, "start": start, "end": end}
    stats = [stat_columns(c) for c in channels]
    query = sql.SQL(_COPY_PASSES).format(
        columns=sql.Composed(
            [sql.SQL(_COPY_COLUMN).format(value=stat.value(), n=stat.count()) for stat in stats]
        ),
        counted=sql.SQL(" OR ").join([stat.counted() for stat in stats])
        if stats
        else sql.SQL("false"),
    )
    data = bytearray()
    with conn.cursor() as cur, cur.copy(query, params) as copy:
        for block in copy:
            data += block
    return table_from_copy(channels, data)


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def settings_json(settings: AnalysisSettings) -> dict[str, Any]:
    """Every analysis setting as JSON (strata as [name, start, end, ...] minutes)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, Mapping):
            value = dict(value)
        elif f.name == "strata":
            value = [[s.name, *(b for w in s.windows() for b in w)] for s in value]
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


def cell_figures(
    table: PassTable, hotspots: Sequence[Hotspot]
) -> dict[tuple[str, int], tuple[int, float | None]]:
    """(pollutant, cell) -> (passes with a value, their median value as measured), for every
    cell of the hotspots: the evidence the API shows without reading the passes again."""
    wanted: dict[str, set[int]] = {}
    for spot in hotspots:
        wanted.setdefault(spot.pollutant, set()).update(h3.str_to_int(c) for c in spot.cells)
    out: dict[tuple[str, int], tuple[int, float | None]] = {}
    for pollutant, cells in wanted.items():
        values = table.values.get(pollutant)
        if values is None:
            continue
        chosen = np.isin(table.cell, np.fromiter(cells, dtype=np.int64)) & ~np.isnan(values)
        order = np.argsort(table.cell[chosen], kind="stable")
        cell_of, value_of = table.cell[chosen][order], values[chosen][order]
        if len(cell_of) == 0:
            continue
        starts = np.flatnonzero(np.r_[True, np.diff(cell_of) != 0])
        for k, begin in enumerate(starts):
            end = starts[k + 1] if k + 1 < len(starts) else len(cell_of)
            out[(pollutant, int(cell_of[begin]))] = (
                int(end - begin),
                float(np.median(value_of[begin:end])),
            )
    return out


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
        figures = cell_figures(table, hotspots)
        with cur.copy(
            "COPY hotspot_cell (run_id, rank, cell, label, passes, median) FROM STDIN"
        ) as copy:
            for rank, spot in enumerate(hotspots):
                for cell, label in dict(zip(spot.cells, spot.cell_labels, strict=True)).items():
                    passes, median = figures.get((spot.pollutant, h3.str_to_int(cell)), (0, None))
                    copy.write_row((run_id, rank, h3.str_to_int(cell), label, passes, median))
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
    table = read_passes(conn, stored.resolution, window_start, now, settings.pollutants())
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
    connect: Callable[[], Connection],
    job: JobSettings,
    stop: threading.Event,
    *,
    between: Callable[[Connection], object] | None = None,
    poll_s: float = 10.0,
) -> int:
    """Run every job.interval until `stop` is set; a failed run is logged and retried at the
    next interval, never the end of the service. Between runs, `between` (e.g. serving the
    officers' run requests, hotspots.run_requests.serve_pending) is called every `poll_s` seconds.
    Returns the number of successful scheduled runs."""
    done = 0
    due = time.monotonic()
    while not stop.is_set():
        try:
            with connect() as conn:
                if time.monotonic() >= due:
                    due = time.monotonic() + job.interval.total_seconds()
                    run_once(conn, job)
                    done += 1
                if between is not None:
                    between(conn)
        except Exception:
            # Whatever one run meets (a database restart, a bad stored value), the service
            # keeps its schedule; the error and its traceback go to the log.
            log.exception("hotspot run failed; the next one starts in %s", job.interval)
        wait = due - time.monotonic()
        stop.wait(max(0.0, min(wait, poll_s) if between is not None else wait))
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
        from ingest.settings import load_ingest_settings
        from store.migrate import migrate

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
        from hotspots.run_requests import serve_pending

        run_periodically(
            lambda: psycopg.connect(settings.database_url, autocommit=True),
            job,
            stop_on_signals(),
            between=lambda conn: serve_pending(conn, job),
        )
        return 0

    return run
