"""Readings exports streamed as CSV, GeoJSON or NDJSON, page by page through the keyset cursor.

The export walks the same (time, vehicle, seq) order as `/v1/readings` in pages of `PAGE` rows
on a connection of its own (the request's is closed once the response starts), so memory stays
flat however large the range. `limit` caps one response; when more rows follow, the next
cursor is found before streaming starts and sent in the `Link` (rel="next") and
`X-Next-Cursor` headers, so a client pages through a large export exactly as through JSON pages.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any, Literal

import orjson
from psycopg import sql

from api.database import Database
from api.geojson import stream_collection
from edge.units import CHANNELS
from store.conditions import Condition, Conn, Cursor
from store.readings import ReadingFilters, StoredReading, readings_page

Format = Literal["csv", "geojson", "ndjson"]
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "geojson": "application/geo+json",
    "ndjson": "application/x-ndjson",
}
PAGE = 5000
MAX_EXPORT = 1_000_000

CSV_COLUMNS = [
    "vehicle", "seq", "time", "time_source", "lat", "lon", "fix_valid", "fix_quality",
    "satellites", "hdop", "speed_mps", "course_deg", "fix_age_s", "cell", "profile", "flags",
    "channel_flags", *(f"{name} [{spec.unit}]" for name, spec in CHANNELS.items()),
]  # fmt: skip


def csv_header() -> str:
    """Column names; each channel's names its canonical unit, `pm25 [ug/m3]` (/v1/pollutants)."""
    return _csv_line(CSV_COLUMNS)


def _csv_line(values: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


def csv_row(r: StoredReading) -> str:
    fix = r.fix
    values: list[Any] = [
        r.vehicle, r.seq, r.time.isoformat(), r.time_source, r.lat, r.lon, fix.valid,
        fix.quality, fix.satellites, fix.hdop, fix.speed_mps, fix.course_deg, fix.age_s, r.cell,
        r.profile, ";".join(r.flags),
        orjson.dumps(r.channel_flags).decode() if r.channel_flags else "",
        *(r.values.get(name) for name in CHANNELS),
    ]  # fmt: skip
    return _csv_line(["" if v is None else v for v in values])


def as_dict(r: StoredReading) -> dict[str, Any]:
    fix = r.fix
    return {
        "vehicle": r.vehicle,
        "seq": r.seq,
        "time": r.time.isoformat(),
        "time_source": r.time_source,
        "lat": r.lat,
        "lon": r.lon,
        "fix": {
            "valid": fix.valid,
            "quality": fix.quality,
            "satellites": fix.satellites,
            "hdop": fix.hdop,
            "speed_mps": fix.speed_mps,
            "course_deg": fix.course_deg,
            "age_s": fix.age_s,
        },
        "cell": r.cell,
        "profile": r.profile,
        "flags": list(r.flags),
        "channel_flags": r.channel_flags,
        "values": r.values,
        "units": r.units,
    }


def ndjson_row(r: StoredReading) -> bytes:
    return orjson.dumps(as_dict(r)) + b"\n"


def geojson_feature(r: StoredReading) -> bytes:
    """A Point feature; a reading without a position has a null geometry (RFC 7946, 3.2)."""
    properties = as_dict(r)
    geometry = None
    if r.lat is not None and r.lon is not None:
        geometry = {"type": "Point", "coordinates": [r.lon, r.lat]}
    feature = {
        "type": "Feature",
        "id": f"{r.vehicle}/{r.seq}/{properties['time']}",
        "geometry": geometry,
        "properties": properties,
    }
    return orjson.dumps(feature)


def next_cursor(
    conn: Conn, filters: ReadingFilters, limit: int, after: Cursor | None
) -> Cursor | None:
    """The cursor after the `limit`-th row, or None when no row follows it."""
    parts = [filters.condition()]
    if after is not None:
        parts.append(after.condition())
    where = Condition.all(parts)
    query = sql.SQL(
        "SELECT time, vehicle, seq FROM reading WHERE {where}"
        " ORDER BY time, vehicle, seq OFFSET %(skip)s LIMIT 2"
    ).format(where=where.sql)
    rows = conn.execute(query, {**where.params, "skip": limit - 1}).fetchall()
    if len(rows) < 2:
        return None
    time, vehicle, seq = rows[0]
    return Cursor(time, vehicle, seq)


def stream(
    database: Database,
    filters: ReadingFilters,
    fmt: Format,
    limit: int,
    after: Cursor | None,
) -> Iterator[bytes]:
    """The export's bytes, reading `PAGE` rows at a time on a connection of its own."""
    pages = _pages(database, filters, limit, after)
    # One chunk per page: a send per reading would cost more than encoding it.
    if fmt == "geojson":
        yield from stream_collection([geojson_feature(r) for r in page] for page in pages)
        return
    if fmt == "csv":
        yield csv_header().encode()
    row = ndjson_row if fmt == "ndjson" else _csv_bytes
    for page in pages:
        if page:
            yield b"".join(row(r) for r in page)


def _csv_bytes(r: StoredReading) -> bytes:
    return csv_row(r).encode()


def _pages(
    database: Database, filters: ReadingFilters, limit: int, after: Cursor | None
) -> Iterator[list[StoredReading]]:
    """Up to `limit` readings after `after`, a page of at most `PAGE` at a time."""
    sent = 0
    with database.connect() as conn:
        cursor = after
        while sent < limit:
            page = readings_page(conn, filters, min(PAGE, limit - sent), cursor)
            yield page.readings
            sent += len(page.readings)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
