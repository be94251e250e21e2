"""The store's read side: readings, per-cell statistics, hotspots, vehicles and health.

Statements are fixed SQL with bound parameters. The only identifiers ever placed in a statement
are channel columns, and only after the channel is found in `edge.units.CHANNELS`. Each group of
filters is a frozen dataclass that checks itself on construction and renders its own SQL
condition with named parameters, so what a filter asks of the database is testable without one.

Nothing here knows HTTP: input that cannot be served raises `QueryError`, which names the
parameter at fault (`start`, `end`, `bbox`, `vehicle`, `cursor`, `limit`, `channel`, ...).
Times come back in the session's time zone; the API's connections use UTC.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from edge.topics import TopicError, check_vehicle
from edge.units import CHANNELS, ChannelSpec
from hotspots.floors import HOTSPOT_FLOORS
from ingest.columns import COLUMNS
from ingest.passes import STATS_EXCLUDED_FLAGS
from store.pass_columns import stat_columns

Conn = psycopg.Connection[Any]

MAX_PAGE = 10_000
HOUR = timedelta(hours=1)

# Reading flags that keep a reading out of hotspot statistics (it stays stored and readable):
# the same ones that keep it out of the passes and rollups.
HOTSPOT_EXCLUDED_FLAGS: tuple[str, ...] = STATS_EXCLUDED_FLAGS
# 1.4826 x MAD estimates the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826


class QueryError(ValueError):
    """A request the store cannot answer as asked; `parameter` says which input is at fault."""

    def __init__(self, parameter: str, problem: str) -> None:
        self.parameter = parameter
        self.problem = problem
        super().__init__(f"{parameter}: {problem}")


# --- filters -----------------------------------------------------------------------------------


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
                end += HOUR
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


@dataclass(frozen=True, slots=True)
class ReadingFilters:
    """What `readings` selects: a time range, optionally one vehicle and a box."""

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


def channel_spec(channel: str) -> ChannelSpec:
    """The channel's spec; the only way a channel name reaches a statement."""
    spec = CHANNELS.get(channel)
    if spec is None:
        raise QueryError("channel", f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}")
    return spec


def stored_resolution(conn: Conn) -> int:
    """The H3 resolution of `reading.cell`: set when the database was created, changed only by
    `envpatrol rebuild --resolution N`."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'h3_resolution'").fetchone()
    if row is None:
        raise RuntimeError("the database has no h3_resolution in meta: was it migrated?")
    return int(row[0])


# --- readings ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fix:
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
    fix: Fix
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


def readings(
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
        fix=Fix(
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


# --- cells ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CellStats:
    cell: str  # H3 index
    n: int
    mean: float
    std: float | None  # sample standard deviation; None for a single value
    min: float
    max: float
    energy_mean: float | None  # 10*log10(mean(10^(L/10))), for logarithmic channels only
    hours: int  # hourly buckets with data
    first_hour: datetime
    last_hour: datetime  # start of the last bucket with data


@dataclass(frozen=True, slots=True)
class CellsResult:
    channel: str
    resolution: int
    time: TimeRange  # the whole hours the statistics cover
    cells: list[CellStats]


def cells(conn: Conn, channel: str, time: TimeRange, resolution: int | None = None) -> CellsResult:
    """Per-cell statistics of one channel from the hourly rollups.

    Granularity is the hour: the rollups keep hourly sums, so the range is widened to whole UTC
    hours (the hour holding `start` through the hour holding the instant before `end`) and the
    result says which hours it covers. Only readings with a valid fix and an unflagged value are
    in the rollups. `resolution` defaults to the one readings are stored at.
    """
    spec = channel_spec(channel)
    if resolution is None:
        resolution = stored_resolution(conn)
    elif not 0 <= resolution <= 15:
        raise QueryError("resolution", f"H3 resolutions are 0..15, got {resolution}")
    hours = time.whole_hours()
    where = hours.condition("bucket")
    query = sql.SQL(
        "SELECT cell, sum(n)::bigint AS n, sum(sum) AS total, sum(sumsq) AS total_sq,"
        " min(min) AS low, max(max) AS high, sum(energy_sum) AS energy,"
        " count(*) AS hours, min(bucket) AS first_hour, max(bucket) AS last_hour"
        " FROM cell_rollup"
        " WHERE resolution = %(resolution)s AND channel = %(channel)s AND {where}"
        " GROUP BY cell HAVING sum(n) > 0 ORDER BY cell"
    ).format(where=where.sql)
    params = {**where.params, "resolution": resolution, "channel": spec.name}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    return CellsResult(spec.name, resolution, hours, [_cell_stats(row, spec) for row in rows])


def _cell_stats(row: dict[str, Any], spec: ChannelSpec) -> CellStats:
    n = int(row["n"])
    mean = row["total"] / n
    std = None
    if n > 1:
        variance = (row["total_sq"] - n * mean * mean) / (n - 1)
        std = math.sqrt(max(variance, 0.0))  # rounding can take a constant cell below zero
    energy_mean = None
    if spec.energy_mean and row["energy"] is not None and row["energy"] > 0:
        energy_mean = 10.0 * math.log10(row["energy"] / n)
    return CellStats(
        cell=h3.int_to_str(row["cell"]),
        n=n,
        mean=mean,
        std=std,
        min=row["low"],
        max=row["high"],
        energy_mean=energy_mean,
        hours=row["hours"],
        first_hour=row["first_hour"],
        last_hour=row["last_hour"],
    )


# --- passes --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PassStats:
    """One vehicle's pass through one cell and one channel's statistics in it (see docs/storage.md)."""

    vehicle: str
    cell: str  # H3 index
    start: datetime
    end: datetime
    readings: int  # track points in the pass
    n: int  # values of the channel that count
    mean: float
    min: float
    max: float
    energy_mean: float | None  # logarithmic channels (noise)


def passes(
    conn: Conn,
    channel: str,
    time: TimeRange,
    vehicle: VehicleFilter | None = None,
    limit: int = MAX_PAGE,
) -> list[PassStats]:
    """Passes with a countable value of `channel` that start in `time`, at the stored resolution,
    oldest first."""
    spec = channel_spec(channel)
    if not 1 <= limit <= MAX_PAGE:
        raise QueryError("limit", f"must be 1..{MAX_PAGE}, got {limit}")
    where = Condition.all(
        [time.condition("start_time")] + ([vehicle.condition()] if vehicle else [])
    )
    stat = stat_columns(spec.name)
    query = sql.SQL(
        "SELECT vehicle, cell, start_time, end_time, readings, {stat}"
        " FROM pass WHERE resolution = %(resolution)s AND {counted} AND {where}"
        " ORDER BY start_time, vehicle LIMIT %(limit)s"
    ).format(stat=stat.select(), counted=stat.counted(), where=where.sql)
    params = {**where.params, "resolution": stored_resolution(conn), "limit": limit}
    rows = conn.execute(query, params).fetchall()
    return [
        PassStats(
            vehicle=str(vehicle),
            cell=h3.int_to_str(int(cell)),
            start=start,
            end=end,
            readings=int(readings),
            n=int(n),
            mean=float(mean),
            min=float(low),
            max=float(high),
            energy_mean=None if energy is None else float(energy),
        )
        for vehicle, cell, start, end, readings, n, mean, low, high, energy in rows
    ]


# --- hotspots ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HotspotParams:
    """The method's thresholds, with their defaults.

    pass_gap_s: a vehicle's pass through a cell ends when it leaves the cell or when two of its
        qualifying readings are more than this many seconds apart.
    min_passes: a hotspot needs at least this many passes.
    z_min: its median enhancement must reach z_min x sigma, sigma being the robust spread
        (1.4826 x MAD) of all pass enhancements in the area and time range ...
    floor: ... and at least this absolute floor (default: HOTSPOT_FLOORS of the channel).
    delta: persistence is the share of passes whose enhancement exceeds delta (default: the floor).
    timezone: the zone whose calendar days are counted as `days`.
    """

    pass_gap_s: float = 120.0
    min_passes: int = 3
    z_min: float = 3.0
    floor: float | None = None
    delta: float | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.pass_gap_s) and self.pass_gap_s > 0):
            raise QueryError("pass_gap_s", f"must be a positive number, got {self.pass_gap_s}")
        if self.min_passes < 1:
            raise QueryError("min_passes", f"must be at least 1, got {self.min_passes}")
        if not (math.isfinite(self.z_min) and self.z_min >= 0):
            raise QueryError("z_min", f"must be a number >= 0, got {self.z_min}")
        if self.floor is not None and not (math.isfinite(self.floor) and self.floor >= 0):
            raise QueryError("floor", f"must be a number >= 0, got {self.floor}")
        if self.delta is not None and not math.isfinite(self.delta):
            raise QueryError("delta", f"must be a finite number, got {self.delta}")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise QueryError("timezone", f"unknown time zone {self.timezone!r}") from exc

    def floor_for(self, channel: str) -> float:
        if self.floor is not None:
            return self.floor
        return HOTSPOT_FLOORS[channel]

    def delta_for(self, channel: str) -> float:
        return self.floor_for(channel) if self.delta is None else self.delta


@dataclass(frozen=True, slots=True)
class Hotspot:
    cell: str  # H3 index
    lat: float  # cell centre
    lon: float
    n_passes: int
    vehicles: int
    days: int
    background: float  # median of the hourly backgrounds of its passes
    level: float  # median pass mean
    enhancement: float  # median over passes of pass mean - background
    z: float | None  # enhancement / sigma; None when sigma is 0
    persistence: float  # share of passes with enhancement > delta
    first_pass: datetime
    last_pass: datetime


@dataclass(frozen=True, slots=True)
class HotspotResult:
    channel: str
    params: HotspotParams
    floor: float
    delta: float
    sigma: float | None  # None when there were no passes
    passes: int  # all passes in the time range
    cells: int  # cells with at least one pass
    hotspots: list[Hotspot]  # by z, highest first


def hotspot_channel(channel: str) -> ChannelSpec:
    spec = channel_spec(channel)
    if spec.name not in HOTSPOT_FLOORS:
        raise QueryError(
            "channel",
            f"{spec.name} is not a pollutant and has no hotspots; "
            f"choose one of {', '.join(HOTSPOT_FLOORS)}",
        )
    return spec


# One request, one statement. Steps:
# qualifying: readings that may count (valid fix, a cell, a value not flagged for the channel,
#   no excluded reading flag) in the time range;
# marked/numbered: per vehicle in time order, a pass starts where the cell changes or the gap to
#   the previous qualifying reading exceeds pass_gap; a running sum numbers the passes;
# passes: mean of each pass ({pass_mean}: arithmetic or energy mean);
# background: the 25th percentile of all qualifying readings of each UTC hour;
# enhanced: a pass's enhancement over the background of the hour holding its midpoint;
# spread: sigma = 1.4826 x MAD of all enhancements;
# per_cell: medians, persistence and counts per cell; the final join keeps the hotspots.
_HOTSPOTS = """
WITH qualifying AS (
    SELECT vehicle, seq, time, cell, {value} AS value
    FROM reading
    WHERE fix_valid
      AND cell IS NOT NULL
      AND {value} IS NOT NULL
      AND NOT (channel_flags ? %(channel)s)
      AND NOT (flags && %(excluded_flags)s::text[])
      AND {time}
),
marked AS (
    SELECT vehicle, seq, time, cell, value,
           CASE WHEN cell IS DISTINCT FROM lag(cell) OVER w
                  OR time - lag(time) OVER w > %(pass_gap)s
                THEN 1 ELSE 0 END AS starts_pass
    FROM qualifying
    WINDOW w AS (PARTITION BY vehicle ORDER BY time, seq)
),
numbered AS (
    SELECT vehicle, time, cell, value,
           sum(starts_pass) OVER (PARTITION BY vehicle ORDER BY time, seq
                                  ROWS UNBOUNDED PRECEDING) AS pass
    FROM marked
),
passes AS (
    SELECT vehicle, pass, min(cell) AS cell,
           min(time) AS first_time, max(time) AS last_time,
           {pass_mean} AS pass_mean
    FROM numbered
    GROUP BY vehicle, pass
),
background AS (
    SELECT date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01 00:00+00') AS hour,
           percentile_cont(0.25) WITHIN GROUP (ORDER BY value) AS background
    FROM qualifying
    GROUP BY 1
),
enhanced AS (
    SELECT p.vehicle, p.cell, p.first_time, p.last_time, p.pass_mean, b.background,
           p.pass_mean - b.background AS enhancement
    FROM passes p
    JOIN background b
      ON b.hour = date_bin('1 hour', p.first_time + (p.last_time - p.first_time) / 2,
                           TIMESTAMPTZ '2000-01-01 00:00+00')
),
spread AS (
    SELECT %(mad_to_sigma)s * percentile_cont(0.5) WITHIN GROUP (
               ORDER BY abs(e.enhancement - m.median)) AS sigma,
           count(*) AS passes
    FROM enhanced e
    CROSS JOIN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY enhancement) AS median
                FROM enhanced) m
),
per_cell AS (
    SELECT cell,
           count(*) AS n_passes,
           count(DISTINCT vehicle) AS vehicles,
           count(DISTINCT (first_time AT TIME ZONE %(timezone)s)::date) AS days,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY background) AS background,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY pass_mean) AS level,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY enhancement) AS enhancement,
           avg(CASE WHEN enhancement > %(delta)s THEN 1.0 ELSE 0.0 END)::float8 AS persistence,
           min(first_time) AS first_pass,
           max(last_time) AS last_pass
    FROM enhanced
    GROUP BY cell
)
SELECT s.sigma, s.passes AS all_passes, (SELECT count(*) FROM per_cell) AS all_cells, c.*
FROM spread s
LEFT JOIN per_cell c
  ON c.n_passes >= %(min_passes)s
 AND c.enhancement >= greatest(%(z_min)s * s.sigma, %(floor)s)
ORDER BY c.enhancement / nullif(s.sigma, 0) DESC NULLS LAST, c.enhancement DESC, c.cell
"""


def hotspots(
    conn: Conn, channel: str, time: TimeRange, params: HotspotParams | None = None
) -> HotspotResult:
    """Cells where one channel stands persistently above the area's background.

    Computed per request over `reading` (see the statement above and docs for the method):
    passes per vehicle and cell, hourly 25th-percentile background, median enhancement per cell,
    hotspot when n_passes >= min_passes and median enhancement >= max(z_min x sigma, floor).
    """
    spec = hotspot_channel(channel)
    params = params or HotspotParams()
    floor = params.floor_for(spec.name)
    delta = params.delta_for(spec.name)
    value = sql.Identifier(spec.name)
    pass_mean = (
        sql.SQL("10 * log10(avg(power(10::float8, value / 10)))")
        if spec.energy_mean
        else sql.SQL("avg(value)")
    )
    where = time.condition("time")
    query = sql.SQL(_HOTSPOTS).format(value=value, pass_mean=pass_mean, time=where.sql)
    args = {
        **where.params,
        "channel": spec.name,
        "excluded_flags": list(HOTSPOT_EXCLUDED_FLAGS),
        "pass_gap": timedelta(seconds=params.pass_gap_s),
        "mad_to_sigma": MAD_TO_SIGMA,
        "timezone": params.timezone,
        "delta": delta,
        "min_passes": params.min_passes,
        "z_min": params.z_min,
        "floor": floor,
    }
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(query, args).fetchall()
    except psycopg.errors.InvalidParameterValue as exc:
        # A zone Python knows and this PostgreSQL does not.
        raise QueryError("timezone", f"the database does not know {params.timezone!r}") from exc
    first = rows[0]
    sigma = first["sigma"]
    found = [_hotspot(row, sigma) for row in rows if row["cell"] is not None]
    return HotspotResult(
        channel=spec.name,
        params=params,
        floor=floor,
        delta=delta,
        sigma=sigma,
        passes=first["all_passes"],
        cells=first["all_cells"],
        hotspots=found,
    )


def _hotspot(row: dict[str, Any], sigma: float | None) -> Hotspot:
    cell = h3.int_to_str(row["cell"])
    lat, lon = h3.cell_to_latlng(cell)
    enhancement = row["enhancement"]
    return Hotspot(
        cell=cell,
        lat=lat,
        lon=lon,
        n_passes=row["n_passes"],
        vehicles=row["vehicles"],
        days=row["days"],
        background=row["background"],
        level=row["level"],
        enhancement=enhancement,
        z=enhancement / sigma if sigma else None,
        persistence=row["persistence"],
        first_pass=row["first_pass"],
        last_pass=row["last_pass"],
    )


# --- vehicles and health -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VehicleState:
    vehicle: str
    state: str | None  # from its retained status message: online / offline; None if never sent
    heard_recently: bool  # the ingest heard from it within the online window
    first_seen: datetime
    last_seen: datetime  # when the ingest last heard from it (server clock)
    last_time: datetime | None  # time of its newest reading
    last_seq: int | None
    lat: float | None  # position of its newest reading
    lon: float | None
    status_at: datetime | None


def vehicles(conn: Conn, online_window: timedelta = timedelta(minutes=5)) -> list[VehicleState]:
    """Every vehicle the ingest knows, by id."""
    if online_window <= timedelta(0):
        raise QueryError("online_window", "must be positive")
    query = (
        "SELECT vehicle, state, last_seen >= now() - %(window)s AS heard_recently,"
        " first_seen, last_seen, last_time, last_seq, last_lat, last_lon, status_at"
        " FROM vehicle ORDER BY vehicle"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, {"window": online_window}).fetchall()
    return [
        VehicleState(
            vehicle=row["vehicle"],
            state=row["state"],
            heard_recently=row["heard_recently"],
            first_seen=row["first_seen"],
            last_seen=row["last_seen"],
            last_time=row["last_time"],
            last_seq=row["last_seq"],
            lat=row["last_lat"],
            lon=row["last_lon"],
            status_at=row["status_at"],
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class Health:
    """The database answered. Counts are the planner's estimates (as of the last ANALYZE, which
    autovacuum keeps current): exact counts would scan the whole table on every probe. Rows in
    compressed TimescaleDB chunks are not in the estimate."""

    readings: int
    dead_letters: int


# Rows of a table and of all its partitions or TimescaleDB chunks, from pg_class statistics.
_ESTIMATE = """
WITH RECURSIVE tree(oid) AS (
    SELECT %(table)s::regclass::oid
    UNION ALL
    SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid
)
SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint
FROM pg_class c JOIN tree t ON c.oid = t.oid
WHERE c.relkind = 'r'
"""


def health(conn: Conn) -> Health:
    """Raises psycopg.Error when the database cannot answer."""
    counts = {}
    for table in ("reading", "dead_letter"):
        row = conn.execute(_ESTIMATE, {"table": table}).fetchone()
        counts[table] = 0 if row is None else int(row[0])
    return Health(readings=counts["reading"], dead_letters=counts["dead_letter"])
