"""Passes in the database: recomputed for the stretches of track a batch touched, or all at once.

The segmentation rule is `ingest.passes`, pure. Readings that arrive in order (all of a vehicle's
new readings after its newest pass, the usual case) are handled for every vehicle of a batch by
one set-based statement (`_APPEND`): the same rule with window functions, the newest pass
extended in place with its statistics merged as `ingest.passes.extend` does, so nothing is read
back into Python. Otherwise (late or out-of-order readings) the incremental rule: for a vehicle whose new readings span [tmin, tmax], only passes
that end at or after tmin - gap and start at or before tmax + gap can change (any other pass is
separated from every new reading by more than the gap, or by a pass in between). The window from
the earliest such pass's start to the latest one's end (or [tmin, tmax] itself) is deleted and
segmented again from the readings it holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import psycopg

from edge.quality import STATS_EXCLUDED_FLAGS, TRACK_EXCLUDED_FLAGS
from ingest.passes import (
    ChannelStats,
    TrackPass,
    TrackPoint,
    passes_of,
    segment,
    summarize,
)
from store.pass_columns import STAT_COLUMN_NAMES, STATS, StatColumns
from store.reading_columns import CHANNEL_COLUMNS

Cursor = psycopg.Cursor[Any]

_CREATE = (
    "CREATE TEMP TABLE IF NOT EXISTS pass_window "
    "(vehicle text PRIMARY KEY, lo timestamptz NOT NULL, hi timestamptz NOT NULL) "
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
PASS_COLUMNS = (
    "resolution",
    "vehicle",
    "start_time",
    "first_seq",
    "end_time",
    "last_seq",
    "cell",
    "readings",
    *STAT_COLUMN_NAMES,
)


def _fresh(c: StatColumns) -> list[str]:
    """A channel's statistics columns of a new pass, from its run's aggregates (`a`)."""
    out = [f"a.{c.channel}_n", f"a.{c.channel}_mean", f"a.{c.channel}_min", f"a.{c.channel}_max"]
    if c.energy:
        # edge.units.energy_sum_mean in SQL; NULL without values
        out.append(f"10.0 * log10(a.{c.channel}_e / a.{c.channel}_n)")
    return out


def _merged(c: StatColumns) -> list[str]:
    """SET clauses: a stored pass's statistics (`p`, the row before the update) merged with a
    run that extends it (`a`), as `ingest.passes.extend` does."""
    k = c.channel
    old_n, new_n = f"p.{c.n}", f"a.{k}_n"
    out = [
        f"{c.n} = {old_n} + {new_n}",
        f"{c.mean} = CASE WHEN {new_n} = 0 THEN p.{c.mean} WHEN {old_n} = 0 THEN a.{k}_mean "
        f"ELSE ({old_n} * p.{c.mean} + {new_n} * a.{k}_mean) / ({old_n} + {new_n}) END",
        f"{c.min} = least(p.{c.min}, a.{k}_min)",  # least and greatest skip NULLs
        f"{c.max} = greatest(p.{c.max}, a.{k}_max)",
    ]
    if c.energy:
        # edge.units.energy_mean in SQL: the stored energy mean back to an energy sum, plus the
        # run's, over the merged count (ingest.passes._merge in Python).
        out.append(
            f"{c.energy} = CASE WHEN {new_n} = 0 THEN p.{c.energy} "
            f"WHEN {old_n} = 0 THEN 10.0 * log10(a.{k}_e / {new_n}) "
            f"ELSE 10.0 * log10(({old_n} * power(10.0::float8, p.{c.energy} / 10.0) + a.{k}_e)"
            f" / ({old_n} + {new_n})) END"
        )
    return out


_FRESH = ", ".join(x for c in STATS for x in _fresh(c))
_MERGED = ",\n                      ".join(x for c in STATS for x in _merged(c))


def _run_aggregates(s: StatColumns) -> str:
    """A channel's aggregates over one run's points, as `_fresh` and `_merged` read them."""
    c = s.channel
    # Sum of edge.units.to_energy in SQL.
    energy = f", sum(power(10.0::float8, {c} / 10.0)) AS {c}_e" if s.energy else ""
    return f"count({c}) AS {c}_n, avg({c}) AS {c}_mean, min({c}) AS {c}_min, max({c}) AS {c}_max{energy}"


_RUN_AGGREGATES = ", ".join(_run_aggregates(s) for s in STATS)
# A track point's values that count (NULL otherwise), read from `_clean`'s subquery: a reading
# with no excluded flag and no channel flags (nearly all) passes its values through without a
# flag test per channel.
_POINT_VALUES = ", ".join(
    f"CASE WHEN r.clean THEN r.{c} WHEN NOT r.excluded AND NOT r.channel_flags ? '{c}' "
    f"THEN r.{c} END AS {c}"
    for c in CHANNEL_COLUMNS
)


def _clean(source: str, where: str = "") -> str:
    """The readings of `source` (a relation aliased `r`) on the track (and satisfying `where`),
    each with its flags tested once (`excluded`, `clean`: neither an excluded flag nor a channel
    flag) for `_POINT_VALUES`; OFFSET 0 keeps the planner from copying the tests into every
    channel's CASE."""
    return f"""(
        SELECT r.*, r.flags && %(stats_excluded)s::text[] AS excluded,
               NOT r.flags && %(stats_excluded)s::text[] AND r.channel_flags = '{{}}'::jsonb
               AS clean
        FROM {source} WHERE {where + " AND " if where else ""}{_TRACK_WHERE} OFFSET 0
    ) r"""


# The in-order vehicles' new track points, each marked when it starts a run: from `reading`, one
# index range scan per vehicle (the lateral join), or from the batch's staging table, joined.
# A point starts a run when it is the vehicle's first new one and does not continue its newest
# pass (`l`), or when it changes cell or comes more than the gap after the point before it
# (window `w`, in time order).
_STARTS_NEW = """CASE WHEN lag(r.time) OVER w IS NULL
               THEN l.start_time IS NULL OR r.cell <> l.cell OR r.time - l.end_time > %(gap)s
               ELSE r.cell <> lag(r.cell) OVER w OR r.time - lag(r.time) OVER w > %(gap)s
           END AS starts_new"""
_POINTS_FROM_STORE = f"""
    SELECT l.vehicle, x.time, x.seq, x.cell, x.starts_new, {", ".join(f"x.{c}" for c in CHANNEL_COLUMNS)}
    FROM in_order l CROSS JOIN LATERAL (
        SELECT r.time, r.seq, r.cell,
               {_STARTS_NEW},
               {_POINT_VALUES}
        FROM {_clean("reading r", "r.vehicle = l.vehicle AND r.time >= l.tmin AND r.time <= l.tmax")}
        WINDOW w AS (ORDER BY r.time, r.seq)
    ) x
"""
_POINTS_FROM_STAGE = f"""
    SELECT l.vehicle, r.time, r.seq, r.cell,
           {_STARTS_NEW},
           {_POINT_VALUES}
    FROM in_order l JOIN {_clean("reading_stage r")}
      ON r.vehicle = l.vehicle
    WHERE r.time >= l.tmin AND r.time <= l.tmax
    WINDOW w AS (PARTITION BY l.vehicle ORDER BY r.time, r.seq)
"""


# Every touched vehicle whose new readings all come after its newest pass (readings arriving in
# order, the usual case), all at once: its new track points are segmented with window functions
# (a point starts a run when it changes cell or comes more than the gap after the previous one;
# the first point compares with the newest pass), the first run extends that pass in place when
# it continues it (statistics merged in SQL, as `ingest.passes.extend`), later runs become new
# passes. Returns the passes written and the vehicles left for `_resegment` (late readings).
def _append_sql(points: str) -> str:
    return f"""
WITH latest AS (
    SELECT t.vehicle, t.tmin, t.tmax, lp.start_time, lp.first_seq, lp.end_time, lp.cell,
           lp.ctid AS pass_row
    FROM touched_stage t
    LEFT JOIN LATERAL (
        SELECT p.ctid, p.start_time, p.first_seq, p.end_time, p.cell FROM pass p
        WHERE p.resolution = %(resolution)s AND p.vehicle = t.vehicle
        ORDER BY p.start_time DESC, p.first_seq DESC LIMIT 1
    ) lp ON true
), in_order AS (
    SELECT * FROM latest WHERE start_time IS NULL OR tmin > end_time
), points AS ({points}), numbered AS (
    SELECT p.*, sum(p.starts_new::int) OVER (PARTITION BY p.vehicle ORDER BY p.time, p.seq) AS run
    FROM points p
), runs AS (
    SELECT vehicle, run, min(cell) AS cell, min(time) AS start_time, max(time) AS end_time,
           (array_agg(seq ORDER BY time, seq))[1] AS first_seq,
           (array_agg(seq ORDER BY time DESC, seq DESC))[1] AS last_seq,
           count(*) AS readings, {_RUN_AGGREGATES}
    FROM numbered GROUP BY vehicle, run
), extended AS (
    UPDATE pass p SET end_time = a.end_time, last_seq = a.last_seq,
                      readings = p.readings + a.readings,
                      {_MERGED}
    FROM (SELECT r.*, l.pass_row FROM runs r JOIN in_order l USING (vehicle) WHERE r.run = 0) a
    -- The row read above, in this statement's snapshot, while the insert statement's lock on
    -- the vehicle's row keeps other writers off its passes: found directly (no index lookup).
    WHERE p.ctid = a.pass_row
    RETURNING 1
), added AS (
    INSERT INTO pass ({", ".join(PASS_COLUMNS)})
    SELECT %(resolution)s, a.vehicle, a.start_time, a.first_seq, a.end_time, a.last_seq, a.cell,
           a.readings, {_FRESH}
    FROM runs a WHERE a.run > 0
    RETURNING 1
)
SELECT (SELECT count(*) FROM extended) + (SELECT count(*) FROM added),
       ARRAY(SELECT vehicle FROM latest WHERE start_time IS NOT NULL AND tmin <= end_time)
"""


_APPEND = _append_sql(_POINTS_FROM_STORE)
# When every staged reading was newly stored, the in-order vehicles' new track points are exactly
# their staged track rows: any stored track point lies in a pass, so before the newest pass's
# end, and the batch's own points come after it.
_APPEND_STAGED = _append_sql(_POINTS_FROM_STAGE)


def stat_values(stats: Mapping[str, ChannelStats]) -> tuple[object, ...]:
    """A pass's statistics in the order of its statistics columns (`STAT_COLUMN_NAMES`)."""
    out: list[object] = []
    for c in STATS:
        x = stats.get(c.channel)
        out += (0, None, None, None) if x is None else (x.n, x.mean, x.min, x.max)
        if c.energy:
            out.append(None if x is None else x.energy_mean)
    return tuple(out)


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


def store(cur: Cursor, resolution: int, passes: Iterable[TrackPass]) -> int:
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
                    *stat_values(p.stats),
                )
            )
    return count


def refresh_touched(
    cur: Cursor, resolution: int, gap: timedelta, *, all_staged_new: bool = False
) -> int:
    """Recompute the passes around the readings listed in `touched_stage` (filled by the batch's
    insert, in the same transaction). With `all_staged_new` (the insert stored every row of
    `reading_stage`), the new track points are read from the staging table instead of `reading`.
    Returns how many passes were written."""
    params = _params(resolution, gap)
    row = cur.execute(_APPEND_STAGED if all_staged_new else _APPEND, params).fetchone()  # type: ignore[arg-type]
    written = int(row[0]) if row else 0
    late: list[str] = list(row[1]) if row else []
    if late:
        written += _resegment(cur, params, late, gap)
    return written


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
