"""Writing a batch: COPY into a staging table, one set-based insert that ignores readings already
stored, and rollups and vehicle positions updated from exactly the rows that were new."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import psycopg
from h3.api import basic_int as h3_int
from psycopg.adapt import PyFormat
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import set_json_dumps

from edge.quality import STATS_EXCLUDED_FLAGS
from edge.units import CHANNELS
from edge.wire import Reading
from ingest import pass_store
from ingest.columns import COPY_TYPES, channel_flags_field, flags_field
from ingest.validate import DEFAULT_MIN_TIME
from store.analysis_meta import read_analysis
from store.reading_columns import (
    CELL_AT,
    CHANNEL_COLUMNS,
    COLUMNS,
    FIX_VALID_AT,
    LAT_AT,
    LON_AT,
    TIME_AT,
)

log = logging.getLogger("envpatrol.ingest.writer")

# Per server a database URL names, unless the URL says otherwise (`connect_timeout`).
CONNECT_TIMEOUT_MAX_S = 10


def connect(url: str, db_timeout_s: float) -> psycopg.Connection[Any]:
    """The connection batches are written on. A URL may name several servers, the primary
    found among them by libpq (`host=a,b` with `target_session_attrs=read-write`): psycopg
    tries them in turn, each within the connect timeout. That is the URL's own
    `connect_timeout` when it has one, else `db_timeout_s` but at most CONNECT_TIMEOUT_MAX_S:
    a lost machine's packets vanish, and every attempt on it would otherwise take the whole
    `db_timeout_s` before the next server is tried."""
    if conninfo_to_dict(url).get("connect_timeout"):
        return psycopg.connect(url, autocommit=False)
    timeout = max(2, min(CONNECT_TIMEOUT_MAX_S, int(db_timeout_s)))
    return psycopg.connect(url, autocommit=False, connect_timeout=timeout)


_COLS = ", ".join(COLUMNS)

_CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS reading_stage "
    "(LIKE reading INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
    # Per vehicle, the time span of the readings a batch newly stored: where passes may change.
    "CREATE TEMP TABLE IF NOT EXISTS touched_stage "
    "(vehicle text PRIMARY KEY, tmin timestamptz NOT NULL, tmax timestamptz NOT NULL) "
    "ON COMMIT DELETE ROWS",
)
_COUNTED = ", ".join(
    f"CASE WHEN NOT i.channel_flags ? '{c}' THEN i.{c} END AS {c}" for c in CHANNEL_COLUMNS
)


def _cell_hour_aggregates(c: str) -> str:
    # Sum of edge.units.to_energy in SQL; readers turn it into a level with energy_sum_mean.
    energy = f"sum(power(10.0::float8, {c} / 10.0))" if CHANNELS[c].energy_mean else "NULL::float8"
    return (
        f"count({c}) AS {c}_n, sum({c}) AS {c}_sum, sum({c} * {c}) AS {c}_sumsq, "
        f"min({c}) AS {c}_min, max({c}) AS {c}_max, {energy} AS {c}_e"
    )


_PER_CELL_HOUR = ",\n           ".join(_cell_hour_aggregates(c) for c in CHANNEL_COLUMNS)
_UNPIVOT = ", ".join(
    f"('{c}', g.{c}_n, g.{c}_sum, g.{c}_sumsq, g.{c}_min, g.{c}_max, g.{c}_e)"
    for c in CHANNEL_COLUMNS
)


def rollup_sql(source: str) -> str:
    """Hourly per-cell, per-channel sums over the rows of `source` (a fixed relation name) that
    may count: a valid fix, a cell, no excluded reading flag, a value not flagged for its channel.
    The rows are aggregated once per cell and hour, every channel side by side (each value's
    flag checked once: OFFSET 0 keeps the planner from copying the CASE into every aggregate),
    and only those groups become one row per channel (none for a channel without a countable
    value). Parameters: resolution, stats_excluded."""
    return f"""
    SELECT %(resolution)s::smallint AS resolution, g.cell, g.bucket, v.channel,
           v.n, v.sum, v.sumsq, v.min, v.max, v.energy_sum
    FROM (
        SELECT cell, date_bin('1 hour', time, TIMESTAMPTZ '2000-01-03') AS bucket,
           {_PER_CELL_HOUR}
        FROM (
            SELECT i.cell, i.time, {_COUNTED}
            FROM {source} i
            WHERE i.cell IS NOT NULL AND i.fix_valid
              AND NOT (i.flags && %(stats_excluded)s::text[])
            OFFSET 0
        ) u
        GROUP BY 1, 2
    ) g CROSS JOIN LATERAL (VALUES {_UNPIVOT}) AS v(channel, n, sum, sumsq, min, max, energy_sum)
    WHERE v.n > 0
    """


# What the rollups, the vehicle upsert and the touched stretches read of each new reading.
_RETURNED = ", ".join(
    (
        "vehicle",
        "seq",
        "time",
        "time_source",
        "lat",
        "lon",
        "fix_valid",
        "cell",
        "flags",
        "channel_flags",
        *CHANNEL_COLUMNS,
    )
)
# Per connection: the staging table of a 50,000-reading batch (~11 MB) stays in local buffers
# (default 8 MB), and the statements' sorts, hashes and CTE results stay in memory (default 4 MB
# spilled to temporary files). temp_buffers only takes effect before the first temporary table.
_SESSION = ("SET temp_buffers = '64MB'", "SET work_mem = '64MB'")


# Whether the incoming reading is the vehicle's newest: a GNSS-dated one always ranks above a
# host-dated one, then by time; and whether it carries a newer fix. One rule for every column
# of the vehicle row, so its fields never come from different readings.
_NEWER_READING = """(v.last_time IS NULL
        OR (EXCLUDED.last_time_source = 'gnss', EXCLUDED.last_time)
           >= (coalesce(v.last_time_source = 'gnss', false), v.last_time))"""
_NEWER_FIX = """(EXCLUDED.last_fix_time >= v.last_fix_time
        OR (v.last_fix_time IS NULL AND EXCLUDED.last_fix_time IS NOT NULL))"""


def insert_sql(*, ignore_stored: bool) -> str:
    """One statement: insert the staged readings, then roll up, locate vehicles and note the
    touched stretches of track from the inserted rows only. With `ignore_stored`, readings
    already stored are skipped (ON CONFLICT DO NOTHING), so a redelivered batch changes nothing;
    without, one fails the statement (unique violation), which is cheaper per row when none is:
    no conflict check before each insertion, no confirmation of each speculative insertion."""
    conflict = "ON CONFLICT DO NOTHING" if ignore_stored else ""
    return f"""
WITH ins AS (
    INSERT INTO reading ({_COLS})
    SELECT {_COLS} FROM reading_stage
    {conflict}
    RETURNING {_RETURNED}
), rolled AS (
    INSERT INTO cell_rollup AS r (resolution, cell, bucket, channel, n, sum, sumsq, min, max, energy_sum)
    {rollup_sql("ins")}
    -- In key order: two workers' batches with cells in common then lock their rollup rows in
    -- the same order, one waiting for the other instead of each for the other (a deadlock).
    ORDER BY v.channel, g.bucket, g.cell
    ON CONFLICT (resolution, channel, bucket, cell) DO UPDATE SET
        n = r.n + EXCLUDED.n, sum = r.sum + EXCLUDED.sum, sumsq = r.sumsq + EXCLUDED.sumsq,
        min = least(r.min, EXCLUDED.min), max = greatest(r.max, EXCLUDED.max),
        energy_sum = r.energy_sum + EXCLUDED.energy_sum
    RETURNING 1
), newest AS (
    SELECT vehicle, max(time) AS time,
           max(time) FILTER (WHERE time_source = 'gnss') AS gnss_time,
           max(time) FILTER (WHERE time_source = 'gnss' AND fix_valid) AS fix_time
    FROM ins GROUP BY vehicle
), fixed AS (
    -- Each vehicle's newest position: a valid fix by GNSS time, never a host clock's guess.
    SELECT DISTINCT ON (i.vehicle) i.vehicle, i.time, i.lat, i.lon
    FROM ins i JOIN newest n ON n.vehicle = i.vehicle AND i.time = n.fix_time
    WHERE i.fix_valid AND i.time_source = 'gnss'
    ORDER BY i.vehicle, i.seq DESC
), latest AS (
    -- Each vehicle's newest reading, one dated by GNSS time before any dated by the host, and
    -- its newest position: the newest times found by hashing, then only the readings at them
    -- sorted, cheaper than sorting the whole batch (docs/performance.md).
    SELECT DISTINCT ON (i.vehicle) i.vehicle, i.seq, i.time, i.time_source,
           f.time AS fix_time, f.lat, f.lon
    FROM ins i JOIN newest n ON n.vehicle = i.vehicle AND i.time = coalesce(n.gnss_time, n.time)
         AND (n.gnss_time IS NULL OR i.time_source = 'gnss')
         LEFT JOIN fixed f ON f.vehicle = i.vehicle
    ORDER BY i.vehicle, i.seq DESC
), located AS (
    INSERT INTO vehicle AS v
        (vehicle, last_seq, last_time, last_time_source, last_fix_time, last_lat, last_lon)
    SELECT vehicle, seq, time, time_source, fix_time, lat, lon
    FROM latest
    ON CONFLICT (vehicle) DO UPDATE SET
        last_seen = now(),
        last_seq = CASE WHEN {_NEWER_READING} THEN EXCLUDED.last_seq ELSE v.last_seq END,
        last_time = CASE WHEN {_NEWER_READING} THEN EXCLUDED.last_time ELSE v.last_time END,
        last_time_source = CASE WHEN {_NEWER_READING}
                                THEN EXCLUDED.last_time_source ELSE v.last_time_source END,
        last_lat = CASE WHEN {_NEWER_FIX} THEN EXCLUDED.last_lat ELSE v.last_lat END,
        last_lon = CASE WHEN {_NEWER_FIX} THEN EXCLUDED.last_lon ELSE v.last_lon END,
        last_fix_time = greatest(v.last_fix_time, EXCLUDED.last_fix_time)
    RETURNING 1
), touched AS (
    INSERT INTO touched_stage (vehicle, tmin, tmax)
    SELECT vehicle, min(time), max(time) FROM ins
    WHERE fix_valid AND cell IS NOT NULL
    GROUP BY vehicle
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM rolled), (SELECT count(*) FROM located),
       (SELECT count(*) FROM touched)
"""


_INSERT = insert_sql(ignore_stored=True)
_INSERT_NEW = insert_sql(ignore_stored=False)

# SQLSTATE classes of a batch the database refuses for what it holds (22 data exception, 23
# integrity constraint violation, 54 program limit exceeded): writing it again fails again.
# Anything else (08 connection, 40 rollback, 53 resources, 57P operator intervention, or no
# code at all: a connection lost) says nothing about the data and is worth retrying.
REFUSING_CLASSES = frozenset({"22", "23", "54"})
# The dead letter of a message the database refused.
REFUSED = "db_refused"
DETAIL_CHARS = 2000
# Daily partitions a batch may create (plain PostgreSQL): readings of other days wait in the
# default partition until a later batch or `envpatrol_ensure_partition` makes theirs. The week
# ahead is made by maintenance, so live traffic never needs one of these.
NEW_PARTITIONS_PER_BATCH = 4


def refused(exc: BaseException) -> bool:
    """Whether `exc`, raised writing a batch, is the batch's own doing: the database refused a
    value (`REFUSING_CLASSES`), or one could not even be encoded to send (a value out of its
    column type's range, a string UTF-8 cannot carry). Then some message of the batch is
    poison, and retrying it as it is would fail forever."""
    if isinstance(exc, psycopg.Error):
        code = exc.sqlstate or exc.diag.sqlstate
        if code is None:  # raised before sending, e.g. a NUL in a text parameter
            return isinstance(exc, psycopg.DataError)
        return code[:2] in REFUSING_CLASSES
    return isinstance(exc, ValueError | OverflowError)


def refusal(exc: BaseException) -> str:
    """What the database (or the encoder) said, as a dead letter's detail."""
    code = exc.sqlstate or exc.diag.sqlstate if isinstance(exc, psycopg.Error) else None
    text = str(exc).strip() or type(exc).__name__
    return f"{code}: {text}" if code else f"{type(exc).__name__}: {text}"


def storable(text: str, limit: int = DETAIL_CHARS) -> str:
    """`text` as a `text` column stores it: NUL (which PostgreSQL refuses in text and jsonb)
    written as the visible escape `\\u0000`, and what UTF-8 cannot encode (lone surrogates) as
    `\\udXXX`; cut to `limit` characters."""
    text = text[:limit].replace("\x00", "\\u0000")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode(errors="backslashreplace").decode()
    return text[:limit]


def cell_of(lat: float, lon: float, resolution: int) -> int:
    return int(h3_int.latlng_to_cell(lat, lon, resolution))


def copy_rows(cur: psycopg.Cursor[Any], table: str, rows: Iterable[tuple[object, ...]]) -> None:
    """Binary COPY of `reading` rows (as `row_of` makes them) into `table` (`reading` or a table
    like it), with the column types preset so no value is inspected to pick its dumper (flags
    and channel flags come already encoded: `ingest.columns.COPY_TYPES`). The connection needs
    `adapt_connection`."""
    with cur.copy(f"COPY {table} ({_COLS}) FROM STDIN (FORMAT BINARY)") as copy:  # type: ignore[arg-type]
        copy.set_types(list(COPY_TYPES))
        write_row = copy.write_row
        for row in rows:
            write_row(row)


def adapt_connection(conn: psycopg.Connection[Any]) -> None:
    """jsonb parameters serialized by orjson on this connection, and bytes (the rows' flags and
    channel flags, `copy_rows`) dumped by the dumper psycopg registers for the bytes type (its
    compiled one when psycopg's C extension is installed): by type oid, bytea's binary dumper is
    the one of the DB-API `Binary` wrapper, written in Python and slower."""
    set_json_dumps(orjson.dumps, conn)
    conn.adapters.register_dumper(bytes, conn.adapters.get_dumper(bytes, PyFormat.BINARY))


def row_of(reading: Reading, resolution: int) -> tuple[object, ...]:
    p = reading.position
    cell = cell_of(p.lat, p.lon, resolution) if p is not None and p.valid else None
    return (
        reading.vehicle,
        reading.seq,
        reading.time,
        reading.time_source,
        None if p is None else p.lat,
        None if p is None else p.lon,
        None if p is None else p.valid,
        None if p is None else p.quality,
        None if p is None else p.satellites,
        None if p is None else p.hdop,
        None if p is None else p.speed_mps,
        None if p is None else p.course_deg,
        None if p is None else p.age_s,
        cell,
        reading.profile,
        flags_field(reading.flags),
        channel_flags_field(reading.channel_flags),
        *(reading.values.get(c) for c in CHANNEL_COLUMNS),
    )


@dataclass(frozen=True, slots=True)
class Rows:
    """Readings as rows of `reading`, their cells at `resolution`."""

    resolution: int
    rows: list[tuple[object, ...]]

    @classmethod
    def of(cls, readings: list[Reading], resolution: int) -> Rows:
        return cls(resolution, [row_of(r, resolution) for r in readings])

    def at(self, resolution: int) -> Rows:
        """The same rows with their cells at `resolution` (after `envpatrol rebuild`)."""
        if resolution == self.resolution:
            return self
        return Rows(
            resolution,
            [
                (
                    *r[:CELL_AT],
                    cell_of(r[LAT_AT], r[LON_AT], resolution) if r[FIX_VALID_AT] else None,  # type: ignore[arg-type]
                    *r[CELL_AT + 1 :],
                )
                for r in self.rows
            ],
        )

    def times(self) -> list[datetime]:
        """The readings' times."""
        return [r[TIME_AT] for r in self.rows]  # type: ignore[misc]

    def days(self) -> set[date]:
        return {t.astimezone(UTC).date() for t in self.times()}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    reason: str
    detail: str
    payload: bytes  # the message as it came: stored as bytea, whatever its bytes
    received_at: datetime

    def row(self) -> tuple[object, ...]:
        """The `dead_letter` row: every text escaped so PostgreSQL always takes it."""
        return (
            self.received_at,
            storable(self.topic),
            storable(self.reason),
            storable(self.detail),
            self.payload,
        )


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    vehicle: str
    kind: str  # "status" or "health"
    document: dict[str, object]


@dataclass(frozen=True, slots=True)
class WriteResult:
    offered: int
    inserted: int
    passes: int = 0  # passes written (recomputed around the new readings)


def partition_days(
    times: Iterable[datetime], made: set[date], earliest: date, latest: date, limit: int
) -> list[date]:
    """The days, among those of `times` (UTC) without a partition (`made`) and inside
    [earliest, latest], to make partitions for: at most `limit`, those holding the most
    readings first (then the newest)."""
    counts = Counter(t.astimezone(UTC).date() for t in times)
    wanted = [d for d in counts if d not in made and earliest <= d <= latest]
    wanted.sort(key=lambda d: (counts[d], d), reverse=True)
    return sorted(wanted[:limit])


_PARTITION_DAYS = (
    "SELECT to_date(substr(c.relname, 10), 'YYYYMMDD') FROM pg_inherits i"
    " JOIN pg_class c ON c.oid = i.inhrelid"
    " WHERE i.inhparent = 'reading'::regclass AND c.relname ~ '^reading_p[0-9]{8}$'"
)


@dataclass
class Writer:
    """Writes batches on one connection; partitions are made ahead on plain PostgreSQL, and on
    demand for at most `new_partitions` days per batch, inside [earliest, now + max_future]."""

    conn: psycopg.Connection[tuple[object, ...]]
    resolution: int
    plain: bool
    earliest: datetime = DEFAULT_MIN_TIME
    max_future: timedelta = timedelta(days=1)
    new_partitions: int = NEW_PARTITIONS_PER_BATCH
    _days: set[date] = field(default_factory=set)  # days known to have a partition
    # The last batch held readings already stored: skip them without trying to insert all first.
    expect_stored: bool = False

    def prepare(self) -> None:
        adapt_connection(self.conn)
        for statement in (*_SESSION, *_CREATE_STAGE):
            self.conn.execute(statement)  # type: ignore[arg-type]
        pass_store.prepare(self.conn)
        self.conn.commit()
        if self.plain:
            # Partitions made before (by another worker or an earlier run) do not count
            # against a batch's allowance of new ones.
            self._days.update(d for (d,) in self.conn.execute(_PARTITION_DAYS))  # type: ignore[misc]
            self.conn.commit()
            today = datetime.now(UTC).date()
            self.ensure_partitions({today + timedelta(days=d) for d in range(-1, 8)})

    def window(self, now: datetime | None = None) -> tuple[date, date]:
        """The first and last day a batch may make a partition for."""
        latest = (now or datetime.now(UTC)) + self.max_future
        return self.earliest.astimezone(UTC).date(), latest.astimezone(UTC).date()

    def ensure_partitions(self, days: set[date]) -> None:
        """Daily partitions for the days a batch touches (envpatrol_ensure_partition, 0004)."""
        for day in sorted(days - self._days):
            with self.conn.transaction():
                self.conn.execute("SELECT envpatrol_ensure_partition(%s)", (day,))
            self.conn.commit()
            self._days.add(day)

    def write(
        self,
        readings: list[Reading] | Rows,
        dead: list[DeadLetter],
        statuses: list[StatusUpdate],
    ) -> WriteResult:
        """Store one batch in one transaction. Raises psycopg errors; the caller retries.
        `readings` may come as table rows made ahead (`Rows`, e.g. by `ingest.decode` while the
        previous batch was committing); their cells are recomputed here in the rare case they
        are at another resolution than the one in force."""
        rows = readings if isinstance(readings, Rows) else Rows.of(readings, self.resolution)
        if self.plain and rows.rows:
            earliest, latest = self.window()
            self.ensure_partitions(
                set(partition_days(rows.times(), self._days, earliest, latest, self.new_partitions))
            )
        inserted = passes = 0
        with self.conn.transaction():
            if rows.rows:
                analysis = read_analysis(self.conn, lock=True)
                self.resolution = analysis.resolution
                rows = rows.at(self.resolution)
                with self.conn.cursor() as cur:
                    copy_rows(cur, "reading_stage", rows.rows)
                    row = self.insert_staged(cur, len(rows.rows))
                    inserted = int(row[0]) if row else 0  # type: ignore[call-overload]
                    touched = int(row[3]) if row else 0  # type: ignore[call-overload]
                    if touched:
                        passes = pass_store.refresh_touched(
                            cur,
                            self.resolution,
                            analysis.pass_gap,
                            all_staged_new=inserted == len(rows.rows),
                        )
            if dead:
                with self.conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO dead_letter (received_at, topic, reason, detail, payload)"
                        " VALUES (%s, %s, %s, %s, %s)",
                        [d.row() for d in dead],
                    )
            for status in statuses:
                self._status(status)
        return WriteResult(len(rows.rows), inserted, passes)

    def insert_staged(self, cur: psycopg.Cursor[Any], staged: int) -> tuple[Any, ...] | None:
        """The insert statement over the `staged` readings of the batch: as if every reading
        were new (the usual case), in a savepoint; when one is already stored (a redelivery),
        again skipping those. Redeliveries come in runs (a reconnect, an agent resending its
        outbox), so after one the next batches skip stored readings straight away, until one of
        them finds none. Returns (inserted, rollup rows, vehicles, touched vehicles)."""
        params = {"resolution": self.resolution, "stats_excluded": list(STATS_EXCLUDED_FLAGS)}
        if not self.expect_stored:
            try:
                with self.conn.transaction():
                    return cur.execute(_INSERT_NEW, params).fetchone()  # type: ignore[arg-type]
            except psycopg.errors.UniqueViolation:
                pass
        row = cur.execute(_INSERT, params).fetchone()  # type: ignore[arg-type]
        self.expect_stored = row is not None and int(row[0]) < staged
        return row

    def _status(self, update: StatusUpdate) -> None:
        doc = json.dumps(update.document)
        if update.kind == "status":
            state = update.document.get("state")
            self.conn.execute(
                "INSERT INTO vehicle AS v (vehicle, state, status, status_at) VALUES (%s, %s, %s, now())"
                " ON CONFLICT (vehicle) DO UPDATE SET state = EXCLUDED.state,"
                " status = EXCLUDED.status, status_at = now(), last_seen = now()",
                (update.vehicle, state if isinstance(state, str) else None, doc),
            )
        else:
            self.conn.execute(
                "INSERT INTO vehicle AS v (vehicle, health, health_at) VALUES (%s, %s, now())"
                " ON CONFLICT (vehicle) DO UPDATE SET health = EXCLUDED.health,"
                " health_at = now(), last_seen = now()",
                (update.vehicle, doc),
            )
