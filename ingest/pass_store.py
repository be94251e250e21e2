"""Passes in the database: recomputed for the stretches of track a batch touched, or all at once.

The segmentation itself is `ingest.passes`, pure; this module only feeds it readings and stores
what it returns. Incremental rule: for a vehicle whose new readings span [tmin, tmax], only passes
that end at or after tmin - gap and start at or before tmax + gap can change (any other pass is
separated from every new reading by more than the gap, or by a pass in between). The window from
the earliest such pass's start to the latest one's end (or [tmin, tmax] itself) is deleted and
segmented again from the readings it holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg

from ingest.columns import CHANNEL_COLUMNS
from ingest.passes import (
    STATS_EXCLUDED_FLAGS,
    TRACK_EXCLUDED_FLAGS,
    ChannelStats,
    Pass,
    TrackPoint,
    extend,
    passes_of,
    segment,
    summarize,
)

Cursor = psycopg.Cursor[Any]

_CREATE = (
    "CREATE TEMP TABLE IF NOT EXISTS pass_window "
    "(vehicle text PRIMARY KEY, lo timestamptz NOT NULL, hi timestamptz NOT NULL) "
    "ON COMMIT DELETE ROWS",
    # Passes a batch extends, copied in (binary) and applied by one UPDATE joined on the key:
    # cheaper than array parameters, which psycopg escapes element by element.
    "CREATE TEMP TABLE IF NOT EXISTS pass_grow (vehicle text NOT NULL, "
    "start_time timestamptz NOT NULL, first_seq bigint NOT NULL, end_time timestamptz NOT NULL, "
    "last_seq bigint NOT NULL, readings integer NOT NULL, stats jsonb NOT NULL) "
    "ON COMMIT DELETE ROWS",
)

_WINDOWS = """
INSERT INTO pass_window (vehicle, lo, hi)
SELECT t.vehicle, least(t.tmin, min(p.start_time)), greatest(t.tmax, max(p.end_time))
FROM touched_stage t
LEFT JOIN pass p
  ON p.resolution = %(resolution)s AND p.vehicle = t.vehicle
 AND p.end_time >= t.tmin - %(gap)s AND p.start_time <= t.tmax + %(gap)s
WHERE t.vehicle = ANY(%(names)s)
GROUP BY t.vehicle, t.tmin, t.tmax
"""

_DELETE = """
DELETE FROM pass p USING pass_window w
WHERE p.resolution = %(resolution)s AND p.vehicle = w.vehicle
  AND p.start_time >= w.lo AND p.start_time <= w.hi
"""

# A value counts unless its reading carries an excluded flag or the value its channel's flag.
_VALUES = ", ".join(
    f"CASE WHEN NOT r.channel_flags ? '{c}' THEN r.{c} END" for c in CHANNEL_COLUMNS
)
_TRACK_WHERE = "r.fix_valid AND r.cell IS NOT NULL AND NOT (r.flags && %(track_excluded)s::text[])"
_TRACK_COLUMNS = f"""r.vehicle, r.time, r.seq, r.cell,
       r.flags && %(stats_excluded)s::text[] AS excluded, {_VALUES}"""
_TRACK = f"""
SELECT {_TRACK_COLUMNS} FROM reading r WHERE {_TRACK_WHERE}
ORDER BY r.vehicle, r.time, r.seq
"""
# The track inside each window of {windows} (a table with vehicle, lo, hi); the lateral join
# makes PostgreSQL probe the (vehicle, time) index once per vehicle instead of scanning the day.
_TRACK_IN = f"""
SELECT x.* FROM {{windows}} w CROSS JOIN LATERAL (
    SELECT {_TRACK_COLUMNS} FROM reading r
    WHERE r.vehicle = w.vehicle AND r.time >= w.lo AND r.time <= w.hi AND {_TRACK_WHERE}
) x
ORDER BY 1, 2, 3
"""
# Each touched vehicle's newest pass: when all its new readings come after that pass (readings
# arriving in order, the usual case), only that pass can grow and nothing needs reading back.
_LATEST = """
SELECT t.vehicle, t.tmin, lp.start_time, lp.first_seq, lp.end_time, lp.last_seq, lp.cell,
       lp.readings, lp.stats
FROM touched_stage t
LEFT JOIN LATERAL (
    SELECT p.* FROM pass p
    WHERE p.resolution = %(resolution)s AND p.vehicle = t.vehicle
    ORDER BY p.start_time DESC, p.first_seq DESC LIMIT 1
) lp ON true
"""
# Passes extended by a batch (copied into pass_grow), rewritten in place, found by primary key.
_GROW_COLUMNS = "vehicle, start_time, first_seq, end_time, last_seq, readings, stats"
_EXTEND = """
UPDATE pass p SET end_time = u.end_time, last_seq = u.last_seq, readings = u.readings,
                  stats = u.stats
FROM pass_grow u
WHERE p.resolution = %(resolution)s AND p.vehicle = u.vehicle
  AND p.start_time = u.start_time AND p.first_seq = u.first_seq
"""

PASS_COLUMNS = (
    "resolution",
    "vehicle",
    "start_time",
    "first_seq",
    "end_time",
    "last_seq",
    "cell",
    "readings",
    "stats",
)


def stats_json(stats: Mapping[str, ChannelStats]) -> str:
    return orjson.dumps(
        {c: [x.n, x.mean, x.min, x.max, x.energy_mean] for c, x in stats.items()}
    ).decode()


def stats_from(doc: Mapping[str, Sequence[Any]]) -> dict[str, ChannelStats]:
    return {
        c: ChannelStats(int(v[0]), float(v[1]), float(v[2]), float(v[3]), v[4])
        for c, v in doc.items()
    }


def prepare(conn: psycopg.Connection[Any]) -> None:
    for statement in _CREATE:
        conn.execute(statement)  # type: ignore[arg-type]


def _params(resolution: int, gap: timedelta) -> dict[str, object]:
    return {
        "resolution": resolution,
        "gap": gap,
        "stats_excluded": list(STATS_EXCLUDED_FLAGS),
        "track_excluded": list(TRACK_EXCLUDED_FLAGS),
    }


def _point(row: tuple[Any, ...]) -> TrackPoint:
    time: datetime = row[1]
    values = (
        {}
        if row[4]
        else {c: v for c, v in zip(CHANNEL_COLUMNS, row[5:], strict=True) if v is not None}
    )
    return TrackPoint(time, int(row[2]), int(row[3]), values)


def _points(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[str, Iterator[TrackPoint]]]:
    """Rows of the track query (ordered by vehicle, time, seq), per vehicle as track points."""
    for vehicle, group in itertools.groupby(rows, key=lambda row: row[0]):
        yield str(vehicle), (_point(row) for row in group)


def store(cur: Cursor, resolution: int, passes: Iterable[Pass]) -> int:
    """COPY new passes in; returns how many."""
    count = 0
    with cur.copy(f"COPY pass ({', '.join(PASS_COLUMNS)}) FROM STDIN") as copy:  # type: ignore[arg-type]
        for p in passes:
            count += 1
            copy.write_row(
                (
                    resolution,
                    p.vehicle,
                    p.start,
                    p.first_seq,
                    p.end,
                    p.last_seq,
                    p.cell,
                    p.readings,
                    stats_json(p.stats),
                )
            )
    return count


def refresh_touched(cur: Cursor, resolution: int, gap: timedelta) -> int:
    """Recompute the passes around the readings listed in `touched_stage` (filled by the batch's
    insert, in the same transaction). Returns how many passes were written."""
    params = _params(resolution, gap)
    latest = cur.execute(_LATEST, params).fetchall()
    appended: dict[str, Pass | None] = {}
    late: list[str] = []
    for vehicle, tmin, start, first_seq, end, last_seq, cell, readings, stats in latest:
        if start is None:
            appended[vehicle] = None
        elif tmin > end:
            appended[vehicle] = Pass(
                vehicle, cell, start, end, first_seq, last_seq, readings, stats_from(stats)
            )
        else:
            late.append(vehicle)
    written = 0
    if appended:
        written += _append(cur, params, appended, gap)
    if late:
        written += _resegment(cur, params, late, gap)
    return written


def _append(
    cur: Cursor, params: dict[str, object], latest: dict[str, Pass | None], gap: timedelta
) -> int:
    """Vehicles whose new readings all follow their newest pass: segment the new readings and
    let the first run extend that pass when it is in the same cell within the gap."""
    names = sorted(latest)
    windows = (
        "(SELECT vehicle, tmin AS lo, tmax AS hi FROM touched_stage WHERE vehicle = ANY(%(names)s))"
    )
    rows = cur.execute(
        _TRACK_IN.format(windows=windows),  # type: ignore[arg-type]
        {**params, "names": names},
    ).fetchall()
    extended: dict[str, tuple[Pass, list[TrackPoint]]] = {}
    fresh: list[Pass] = []
    for vehicle, points in _points(rows):
        runs = list(segment(points, gap))
        previous = latest.get(vehicle)
        if runs and previous is not None:
            first = runs[0]
            if first[0].cell == previous.cell and first[0].time - previous.end <= gap:
                extended[vehicle] = (previous, first)
                runs = runs[1:]
        fresh.extend(summarize(vehicle, run) for run in runs)
    if extended:
        with cur.copy(f"COPY pass_grow ({_GROW_COLUMNS}) FROM STDIN") as copy:  # type: ignore[arg-type]
            for previous, run in extended.values():
                p = extend(previous, run)
                copy.write_row(
                    (
                        p.vehicle,
                        p.start,
                        p.first_seq,
                        p.end,
                        p.last_seq,
                        p.readings,
                        stats_json(p.stats),
                    )
                )
        cur.execute("ANALYZE pass_grow")  # so the join probes pass's key, however big pass is
        cur.execute(_EXTEND, params)
    return len(extended) + store(cur, int(str(params["resolution"])), fresh)


def _resegment(cur: Cursor, params: dict[str, object], vehicles: list[str], gap: timedelta) -> int:
    """Vehicles with readings inside or before stored passes: delete every pass that may change
    and segment its window again from the stored readings."""
    args = {**params, "names": vehicles}
    cur.execute(_WINDOWS, args)
    cur.execute("ANALYZE pass_window")
    cur.execute(_DELETE, args)
    rows = cur.execute(_TRACK_IN.format(windows="pass_window"), args).fetchall()  # type: ignore[arg-type]
    fresh = [p for vehicle, points in _points(rows) for p in passes_of(vehicle, list(points), gap)]
    return store(cur, int(str(params["resolution"])), fresh)


def rebuild_all(conn: psycopg.Connection[Any], resolution: int, gap: timedelta) -> int:
    """Every pass from every stored reading, at `resolution` (reading.cell must already be at it).
    Runs inside the caller's transaction; streams the readings through a server-side cursor."""
    params = _params(resolution, gap)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM pass")
    total = 0
    with (
        conn.cursor(name="envpatrol_track") as track,
        conn.cursor() as out,
    ):
        track.itersize = 20_000
        track.execute(_TRACK.format(join=""), params)  # type: ignore[arg-type]
        for vehicle, points in _points(track):
            runs = (summarize(vehicle, run) for run in segment(points, gap))
            while chunk := list(itertools.islice(runs, 5_000)):
                total += store(out, resolution, chunk)
    return total
