"""Stored readings: pages of them in (time, vehicle, seq) order, and a vehicle's track.

Times come back in the session's time zone; the API's connections use UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import h3
from psycopg import sql
from psycopg.rows import dict_row

from edge.units import CHANNELS
from store.conditions import (
    MAX_PAGE,
    BBox,
    Condition,
    Conn,
    Cursor,
    QueryError,
    TimeRange,
    VehicleFilter,
)
from store.reading_columns import COLUMNS

__all__ = [
    "ReadingFilters",
    "ReadingsPage",
    "StoredFix",
    "StoredReading",
    "readings_page",
    "track_fixes",
]


@dataclass(frozen=True, slots=True)
class ReadingFilters:
    """What `readings_page` selects: a time range, optionally one vehicle and a box."""

    time: TimeRange = field(default_factory=TimeRange)
    vehicle: VehicleFilter | None = None
    bbox: BBox | None = None

    def condition(self) -> Condition:
        parts = [self.time.condition()]
        if self.vehicle is not None:
            parts.append(self.vehicle.condition())
        if self.bbox is not None:
            parts.append(self.bbox.condition())
        return Condition.all(parts)


@dataclass(frozen=True, slots=True)
class StoredFix:
    """The GNSS fix a reading was stored with."""

    valid: bool | None
    quality: int | None
    satellites: int | None
    hdop: float | None
    speed_mps: float | None
    course_deg: float | None
    age_s: float | None


@dataclass(frozen=True, slots=True)
class StoredReading:
    vehicle: str
    seq: int
    time: datetime
    time_source: str
    lat: float | None
    lon: float | None
    fix: StoredFix
    cell: str | None  # H3 index
    profile: str
    flags: tuple[str, ...]
    channel_flags: dict[str, list[str]]
    values: dict[str, float | None]  # every channel, in canonical units; None: no valid value

    @property
    def units(self) -> dict[str, str]:
        return {name: CHANNELS[name].unit for name in self.values}


@dataclass(frozen=True, slots=True)
class ReadingsPage:
    readings: list[StoredReading]
    next_cursor: Cursor | None  # None on the last page


def readings_page(
    conn: Conn, filters: ReadingFilters, limit: int = 1000, cursor: Cursor | None = None
) -> ReadingsPage:
    """One page of readings in (time, vehicle, seq) order, resuming after `cursor`."""
    if not 1 <= limit <= MAX_PAGE:
        raise QueryError("limit", f"must be between 1 and {MAX_PAGE}, got {limit}")
    parts = [filters.condition()]
    if cursor is not None:
        parts.append(cursor.condition())
    where = Condition.all(parts)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
    query = sql.SQL(
        "SELECT {columns} FROM reading WHERE {where}"
        " ORDER BY time, vehicle, seq LIMIT %(page_rows)s"
    ).format(columns=columns, where=where.sql)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, {**where.params, "page_rows": limit + 1}).fetchall()
    page = [_stored_reading(row) for row in rows[:limit]]
    after = None
    if len(rows) > limit:
        last = page[-1]
        after = Cursor(last.time, last.vehicle, last.seq)
    return ReadingsPage(page, after)


def track_fixes(
    conn: Conn, vehicle: VehicleFilter, time: TimeRange, limit: int
) -> list[tuple[datetime, float, float]]:
    """(time, lat, lon) of the vehicle's readings with a valid fix, oldest first, at most
    `limit`: only the columns a track needs, by the (vehicle, time) index."""
    where = Condition.all([time.condition(), vehicle.condition()])
    query = sql.SQL(
        "SELECT time, lat, lon FROM reading WHERE {where}"
        " AND fix_valid AND lat IS NOT NULL AND lon IS NOT NULL"
        " ORDER BY time, seq LIMIT %(track_rows)s"
    ).format(where=where.sql)
    return [
        (t, lat, lon) for t, lat, lon in conn.execute(query, {**where.params, "track_rows": limit})
    ]


def _stored_reading(row: dict[str, Any]) -> StoredReading:
    cell = row["cell"]
    return StoredReading(
        vehicle=row["vehicle"],
        seq=row["seq"],
        time=row["time"],
        time_source=row["time_source"],
        lat=row["lat"],
        lon=row["lon"],
        fix=StoredFix(
            valid=row["fix_valid"],
            quality=row["fix_quality"],
            satellites=row["satellites"],
            hdop=row["hdop"],
            speed_mps=row["speed_mps"],
            course_deg=row["course_deg"],
            age_s=row["fix_age_s"],
        ),
        cell=None if cell is None else h3.int_to_str(cell),
        profile=row["profile"],
        flags=tuple(row["flags"]),
        channel_flags=dict(row["channel_flags"]),
        values={name: row[name] for name in CHANNELS},
    )
