"""Writing a batch: COPY into a staging table, one set-based insert that ignores readings already
stored, and rollups and vehicle positions updated from exactly the rows that were new."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import h3
import psycopg

from edge.units import CHANNELS
from edge.wire import Reading

log = logging.getLogger("envpatrol.ingest.writer")

CHANNEL_COLUMNS = tuple(CHANNELS)  # column names equal channel names (see 0001_core.sql)
_BASE_COLUMNS = (
    "vehicle",
    "seq",
    "time",
    "time_source",
    "lat",
    "lon",
    "fix_valid",
    "fix_quality",
    "satellites",
    "hdop",
    "speed_mps",
    "course_deg",
    "fix_age_s",
    "cell",
    "profile",
    "flags",
    "channel_flags",
)
COLUMNS = _BASE_COLUMNS + CHANNEL_COLUMNS
_COLS = ", ".join(COLUMNS)

_CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS reading_stage "
    "(LIKE reading INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_LATERAL = ", ".join(f"('{c}', i.{c})" for c in CHANNEL_COLUMNS)
_ENERGY = " OR ".join(f"u.channel = '{c}'" for c, s in CHANNELS.items() if s.energy_mean) or "false"

# One statement: insert the new readings, then roll up and locate vehicles from those rows only,
# so a redelivered batch changes nothing.
_INSERT = f"""
WITH ins AS (
    INSERT INTO reading ({_COLS})
    SELECT {_COLS} FROM reading_stage
    ON CONFLICT DO NOTHING
    RETURNING *
), units AS (
    SELECT i.cell, date_bin('1 hour', i.time, TIMESTAMPTZ '2000-01-03') AS bucket, v.channel, v.value
    FROM ins i CROSS JOIN LATERAL (VALUES {_LATERAL}) AS v(channel, value)
    WHERE i.cell IS NOT NULL AND i.fix_valid AND v.value IS NOT NULL
      AND NOT (i.channel_flags ? v.channel)
), rolled AS (
    INSERT INTO cell_rollup AS r (resolution, cell, bucket, channel, n, sum, sumsq, min, max, energy_sum)
    SELECT %(resolution)s, u.cell, u.bucket, u.channel, count(*), sum(u.value), sum(u.value * u.value),
           min(u.value), max(u.value),
           CASE WHEN bool_or({_ENERGY}) THEN sum(power(10.0, u.value / 10.0)) END
    FROM units u GROUP BY u.cell, u.bucket, u.channel
    ON CONFLICT (resolution, channel, bucket, cell) DO UPDATE SET
        n = r.n + EXCLUDED.n, sum = r.sum + EXCLUDED.sum, sumsq = r.sumsq + EXCLUDED.sumsq,
        min = least(r.min, EXCLUDED.min), max = greatest(r.max, EXCLUDED.max),
        energy_sum = r.energy_sum + EXCLUDED.energy_sum
    RETURNING 1
), latest AS (
    SELECT DISTINCT ON (vehicle) vehicle, seq, time, lat, lon, fix_valid
    FROM ins ORDER BY vehicle, time DESC, seq DESC
), located AS (
    INSERT INTO vehicle AS v (vehicle, last_seq, last_time, last_lat, last_lon)
    SELECT vehicle, seq, time, CASE WHEN fix_valid THEN lat END, CASE WHEN fix_valid THEN lon END
    FROM latest
    ON CONFLICT (vehicle) DO UPDATE SET
        last_seen = now(),
        last_seq = CASE WHEN v.last_time IS NULL OR EXCLUDED.last_time >= v.last_time
                        THEN EXCLUDED.last_seq ELSE v.last_seq END,
        last_lat = CASE WHEN (v.last_time IS NULL OR EXCLUDED.last_time >= v.last_time)
                             AND EXCLUDED.last_lat IS NOT NULL
                        THEN EXCLUDED.last_lat ELSE v.last_lat END,
        last_lon = CASE WHEN (v.last_time IS NULL OR EXCLUDED.last_time >= v.last_time)
                             AND EXCLUDED.last_lon IS NOT NULL
                        THEN EXCLUDED.last_lon ELSE v.last_lon END,
        last_time = greatest(v.last_time, EXCLUDED.last_time)
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM rolled), (SELECT count(*) FROM located)
"""


def cell_of(lat: float, lon: float, resolution: int) -> int:
    return int(h3.str_to_int(h3.latlng_to_cell(lat, lon, resolution)))


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
        list(reading.flags),
        json.dumps({k: list(v) for k, v in reading.channel_flags.items()}),
        *(reading.values.get(c) for c in CHANNEL_COLUMNS),
    )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    reason: str
    detail: str
    payload: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    vehicle: str
    kind: str  # "status" or "health"
    document: dict[str, object]


@dataclass(frozen=True, slots=True)
class WriteResult:
    offered: int
    inserted: int


@dataclass
class Writer:
    """Writes batches on one connection; partitions are created ahead on plain PostgreSQL."""

    conn: psycopg.Connection[tuple[object, ...]]
    resolution: int
    plain: bool
    _days: set[date] = field(default_factory=set)

    def prepare(self) -> None:
        self.conn.execute(_CREATE_STAGE)
        self.conn.commit()
        if self.plain:
            today = datetime.now(UTC).date()
            self.ensure_partitions({today + timedelta(days=d) for d in range(-1, 8)})

    def ensure_partitions(self, days: set[date]) -> None:
        """Daily partitions for the days a batch touches (readings of any day are accepted;
        days without a partition land in the default partition)."""
        for day in sorted(days - self._days):
            name = f"reading_p{day:%Y%m%d}"
            try:
                with self.conn.transaction():
                    self.conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF reading "  # type: ignore[arg-type]
                        f"FOR VALUES FROM ('{day:%Y-%m-%d}') TO ('{day + timedelta(days=1):%Y-%m-%d}')"
                    )
            except psycopg.errors.CheckViolation:
                log.warning("readings for %s are in the default partition; leaving them there", day)
            self.conn.commit()
            self._days.add(day)

    def write(
        self,
        readings: list[Reading],
        dead: list[DeadLetter],
        statuses: list[StatusUpdate],
    ) -> WriteResult:
        """Store one batch in one transaction. Raises psycopg errors; the caller retries."""
        if self.plain and readings:
            self.ensure_partitions({r.time.date() for r in readings})
        inserted = 0
        with self.conn.transaction():
            if readings:
                with self.conn.cursor() as cur:
                    with cur.copy(f"COPY reading_stage ({_COLS}) FROM STDIN") as copy:  # type: ignore[arg-type]
                        for reading in readings:
                            copy.write_row(row_of(reading, self.resolution))
                    row = cur.execute(_INSERT, {"resolution": self.resolution}).fetchone()  # type: ignore[arg-type]
                    inserted = int(row[0]) if row else 0  # type: ignore[call-overload]
            if dead:
                with self.conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO dead_letter (received_at, topic, reason, detail, payload)"
                        " VALUES (%s, %s, %s, %s, %s)",
                        [
                            (d.received_at, d.topic, d.reason, d.detail[:2000], d.payload)
                            for d in dead
                        ],
                    )
            for status in statuses:
                self._status(status)
        return WriteResult(len(readings), inserted)

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
