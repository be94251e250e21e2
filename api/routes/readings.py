"""`GET /v1/readings`: stored readings, oldest first, in keyset-paginated pages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from api import export
from api.auth import reader
from api.database import Database, DbSession
from api.envelope import Envelope, Meta
from api.errors import PROBLEM_RESPONSES, ParameterError
from api.params import Period
from api.scopes import visibility
from store.conditions import MAX_PAGE, BBox, Cursor, VehicleFilter
from store.readings import ReadingFilters, StoredReading, readings_page

router = APIRouter(
    prefix="/v1", tags=["readings"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)


class ReadingsMeta(Meta):
    limit: int
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last page


class FixOut(BaseModel):
    valid: bool | None
    quality: int | None
    satellites: int | None
    hdop: float | None
    speed_mps: float | None
    course_deg: float | None
    age_s: float | None


class ReadingOut(BaseModel):
    vehicle: str
    seq: int
    time: datetime
    time_source: str
    lat: float | None
    lon: float | None
    fix: FixOut
    cell: str | None
    profile: str
    flags: list[str]
    channel_flags: dict[str, list[str]]
    values: dict[str, float | None]
    units: dict[str, str]


def reading_out(reading: StoredReading) -> ReadingOut:
    fix = reading.fix
    return ReadingOut(
        vehicle=reading.vehicle,
        seq=reading.seq,
        time=reading.time,
        time_source=reading.time_source,
        lat=reading.lat,
        lon=reading.lon,
        fix=FixOut(
            valid=fix.valid,
            quality=fix.quality,
            satellites=fix.satellites,
            hdop=fix.hdop,
            speed_mps=fix.speed_mps,
            course_deg=fix.course_deg,
            age_s=fix.age_s,
        ),
        cell=reading.cell,
        profile=reading.profile,
        flags=list(reading.flags),
        channel_flags=reading.channel_flags,
        values=reading.values,
        units=reading.units,
    )


_EXPORT_CONTENT = {media: {"schema": {"type": "string"}} for media in export.MEDIA_TYPES.values()}


@router.get(
    "/readings",
    summary="Stored readings, in pages; or exported as CSV, GeoJSON or NDJSON",
    response_model=Envelope[ReadingsMeta, ReadingOut],
    responses={
        200: {
            "description": "JSON pages (format=json) or a streamed export; an export that "
            "stops at `limit` names the next page in its Link and X-Next-Cursor headers.",
            "content": _EXPORT_CONTENT,
        }
    },
    openapi_extra=visibility("deployment"),
)
def list_readings(
    *,
    request: Request,
    period: Period,
    db: DbSession,
    vehicle: Annotated[str | None, Query(description="Only this vehicle's readings.")] = None,
    bbox: Annotated[
        str | None,
        Query(
            description="west,south,east,north in WGS-84 degrees",
            examples=["116.40,39.88,116.50,39.94"],
        ),
    ] = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=export.MAX_EXPORT,
            description=f"Readings per page: at most {MAX_PAGE} as JSON, "
            f"{export.MAX_EXPORT} in an export.",
        ),
    ] = 1000,
    cursor: Annotated[
        str | None, Query(description="`meta.next_cursor` of the previous page.")
    ] = None,
    format: Annotated[
        Literal["json", "csv", "geojson", "ndjson"],
        Query(description="json: pages in the envelope; csv, geojson, ndjson: a streamed export."),
    ] = "json",
) -> Envelope[ReadingsMeta, ReadingOut] | Response:
    """Readings ordered by (time, vehicle, seq). Every value is in its channel's canonical unit
    (`units`); a null value was missing or invalid, `channel_flags` says why. Flagged readings
    are returned like the others."""
    filters = ReadingFilters(
        time=period,
        vehicle=None if vehicle is None else VehicleFilter(vehicle),
        bbox=None if bbox is None else BBox.parse(bbox),
    )
    after = None if cursor is None else Cursor.decode(cursor)
    if format != "json":
        return _export(request, db, filters, format, limit, after)
    if limit > MAX_PAGE:
        raise ParameterError("limit", f"at most {MAX_PAGE} readings per JSON page; export more")
    page = readings_page(db.connection(), filters, limit, after)
    return Envelope[ReadingsMeta, ReadingOut](
        meta=ReadingsMeta(
            found=len(page.readings),
            limit=limit,
            next_cursor=None if page.next_cursor is None else page.next_cursor.encode(),
        ),
        results=[reading_out(r) for r in page.readings],
    )


def _export(
    request: Request,
    db: DbSession,
    filters: ReadingFilters,
    fmt: export.Format,
    limit: int,
    after: Cursor | None,
) -> StreamingResponse:
    following = export.next_cursor(db.connection(), filters, limit, after)
    headers = {"Content-Disposition": f'attachment; filename="readings.{fmt}"'}
    if following is not None:
        token = following.encode()
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        link = f"{request.url.path}?{urlencode([*query, ('cursor', token)])}"
        headers["Link"] = f'<{link}>; rel="next"'
        headers["X-Next-Cursor"] = token
    database = cast(Database, request.app.state.database)
    return StreamingResponse(
        export.stream(database, filters, fmt, limit, after),
        media_type=export.MEDIA_TYPES[fmt],
        headers=headers,
    )
