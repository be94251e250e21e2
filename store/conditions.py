"""The pieces every read query is built from: SQL conditions, the filters that render them, the
cursor of a page, and `QueryError`.

Each group of filters is a frozen dataclass that checks itself on construction and renders its
own SQL condition with named parameters, so what a filter asks of the database is testable
without one. Nothing here knows HTTP: input that cannot be served raises `QueryError`, which
names the parameter at fault (`start`, `end`, `bbox`, `vehicle`, `cursor`, `limit`, ...).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from edge.errors import EnvpatrolError
from edge.topics import TopicError, check_vehicle

__all__ = [
    "MAX_PAGE",
    "BBox",
    "Condition",
    "Conn",
    "Cursor",
    "QueryError",
    "TimeRange",
    "VehicleFilter",
]

# The reads take a connection of any row factory and choose their own rows.
Conn = psycopg.Connection[Any]

MAX_PAGE = 10_000
_HOUR = timedelta(hours=1)


class QueryError(EnvpatrolError, ValueError):
    """A request the store cannot answer as asked; `subject` is the input at fault, in the
    store's words (`channel`, `start`), which the API translates to its parameter names."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A piece of WHERE clause with its named parameters (`%(name)s` placeholders)."""

    sql: sql.Composable
    params: Mapping[str, object] = field(default_factory=dict)

    @staticmethod
    def true() -> Condition:
        return Condition(sql.SQL("TRUE"))

    @staticmethod
    def all(conditions: Iterable[Condition]) -> Condition:
        """The conjunction of `conditions`; parameter names must not repeat."""
        parts = list(conditions)
        if not parts:
            return Condition.true()
        params: dict[str, object] = {}
        for part in parts:
            clash = params.keys() & part.params.keys()
            if clash:
                raise ValueError(f"conditions share parameter names: {sorted(clash)}")
            params.update(part.params)
        joined = sql.SQL(" AND ").join(sql.SQL("({})").format(p.sql) for p in parts)
        return Condition(joined, params)

    def text(self) -> str:
        """The SQL text, for tests and logs."""
        return self.sql.as_string()


@dataclass(frozen=True, slots=True)
class TimeRange:
    """The half-open interval [start, end) of reading times; either side may be open."""

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        for name, moment in (("start", self.start), ("end", self.end)):
            if moment is not None and moment.utcoffset() is None:
                raise QueryError(name, f"{moment.isoformat()} has no time zone")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise QueryError(
                "start",
                f"the range starts at {self.start.isoformat()}, "
                f"not before its end {self.end.isoformat()}",
            )

    def condition(self, column: str = "time") -> Condition:
        """`column` is a column name chosen by code, never by a caller's input."""
        parts = []
        if self.start is not None:
            parts.append(
                Condition(
                    sql.SQL("{} >= %(time_start)s").format(sql.Identifier(column)),
                    {"time_start": self.start},
                )
            )
        if self.end is not None:
            parts.append(
                Condition(
                    sql.SQL("{} < %(time_end)s").format(sql.Identifier(column)),
                    {"time_end": self.end},
                )
            )
        return Condition.all(parts)

    def whole_hours(self) -> TimeRange:
        """The smallest range of whole UTC hours covering this one."""
        start = None if self.start is None else _floor_hour(self.start)
        end = None
        if self.end is not None:
            end = _floor_hour(self.end)
            if end < self.end:
                end += _HOUR
        return TimeRange(start, end)


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class BBox:
    """A longitude/latitude box in WGS-84 degrees, edges included. It may not cross 180 degrees."""

    west: float
    south: float
    east: float
    north: float

    def __post_init__(self) -> None:
        values = (self.west, self.south, self.east, self.north)
        if not all(math.isfinite(v) for v in values):
            raise QueryError("bbox", "every edge must be a finite number")
        if not (-180.0 <= self.west <= 180.0 and -180.0 <= self.east <= 180.0):
            raise QueryError("bbox", "west and east must lie within -180..180")
        if not (-90.0 <= self.south <= 90.0 and -90.0 <= self.north <= 90.0):
            raise QueryError("bbox", "south and north must lie within -90..90")
        if self.west >= self.east:
            raise QueryError("bbox", f"west ({self.west}) must be less than east ({self.east})")
        if self.south >= self.north:
            raise QueryError("bbox", f"south ({self.south}) must be less than north ({self.north})")

    @classmethod
    def parse(cls, text: str) -> BBox:
        """`west,south,east,north`, as in OGC APIs and OpenAQ."""
        parts = text.split(",")
        if len(parts) != 4:
            raise QueryError("bbox", f"expected west,south,east,north, got {text!r}")
        try:
            west, south, east, north = (float(p) for p in parts)
        except ValueError as exc:
            raise QueryError("bbox", f"expected four numbers, got {text!r}") from exc
        return cls(west, south, east, north)

    def condition(self) -> Condition:
        return Condition(
            sql.SQL(
                "lon >= %(bbox_west)s AND lon <= %(bbox_east)s"
                " AND lat >= %(bbox_south)s AND lat <= %(bbox_north)s"
            ),
            {
                "bbox_west": self.west,
                "bbox_east": self.east,
                "bbox_south": self.south,
                "bbox_north": self.north,
            },
        )


@dataclass(frozen=True, slots=True)
class VehicleFilter:
    """Readings of one vehicle."""

    vehicle: str

    def __post_init__(self) -> None:
        try:
            check_vehicle(self.vehicle)
        except TopicError as exc:
            raise QueryError("vehicle", exc.problem) from exc

    def condition(self) -> Condition:
        return Condition(sql.SQL("vehicle = %(vehicle)s"), {"vehicle": self.vehicle})


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page of readings ended: the (time, vehicle, seq) of its last reading.

    Clients see it only as an opaque URL-safe string.
    """

    time: datetime
    vehicle: str
    seq: int

    _VERSION = 1

    def encode(self) -> str:
        doc = [self._VERSION, self.time.isoformat(), self.vehicle, self.seq]
        raw = json.dumps(doc, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            version, moment, vehicle, seq = json.loads(raw)
            if version != cls._VERSION or not isinstance(vehicle, str):
                raise ValueError("unknown cursor layout")
            check_vehicle(vehicle)
            if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
                raise ValueError("seq is not a sequence number")
            when = datetime.fromisoformat(moment)
            if when.utcoffset() is None:
                raise ValueError("time without zone")
        except (ValueError, TypeError, binascii.Error) as exc:
            raise QueryError("cursor", "not a cursor from a previous page of this query") from exc
        return cls(when, vehicle, seq)

    def condition(self) -> Condition:
        # The plain `time >=` lets the planner use the time index; the row comparison does the rest.
        return Condition(
            sql.SQL(
                "time >= %(cursor_time)s"
                " AND (time, vehicle, seq) > (%(cursor_time)s, %(cursor_vehicle)s, %(cursor_seq)s)"
            ),
            {"cursor_time": self.time, "cursor_vehicle": self.vehicle, "cursor_seq": self.seq},
        )
