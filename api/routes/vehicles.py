"""`GET /v1/vehicles`: every vehicle's last position and whether it is online."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from api.auth import reader
from api.database import DbSession
from api.envelope import Envelope, Meta
from api.errors import PROBLEM_RESPONSES, ApiError, ParameterError
from api.geojson import FeatureCollection
from api.params import Period
from api.scopes import visibility
from edge.topics import TopicError, check_vehicle
from store.conditions import VehicleFilter
from store.readings import track_fixes
from store.vehicles import VehicleState, vehicle_known, vehicle_states

router = APIRouter(
    prefix="/v1", tags=["vehicles"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)


class VehiclesMeta(Meta):
    online_window_s: float


class VehicleOut(BaseModel):
    vehicle: str
    state: str | None = Field(description="online/offline, from its status topic; null: unknown.")
    heard_recently: bool = Field(description="The ingest heard from it within online_window_s.")
    first_seen: datetime
    last_seen: datetime
    last_time: datetime | None = Field(description="Time of its newest reading.")
    last_seq: int | None
    lat: float | None = Field(description="Position of its newest reading.")
    lon: float | None
    status_at: datetime | None


def vehicle_out(state: VehicleState) -> VehicleOut:
    return VehicleOut(
        vehicle=state.vehicle,
        state=state.state,
        heard_recently=state.heard_recently,
        first_seen=state.first_seen,
        last_seen=state.last_seen,
        last_time=state.last_time,
        last_seq=state.last_seq,
        lat=state.lat,
        lon=state.lon,
        status_at=state.status_at,
    )


@router.get(
    "/vehicles",
    summary="Vehicles, last positions and online state",
    openapi_extra=visibility("deployment"),
)
def list_vehicles(
    *,
    db: DbSession,
    online_window_s: Annotated[
        float,
        Query(
            gt=0,
            le=86_400 * 30,
            allow_inf_nan=False,
            description="What 'recently' means, in seconds.",
        ),
    ] = 300.0,
) -> Envelope[VehiclesMeta, VehicleOut]:
    found = vehicle_states(db.connection(), timedelta(seconds=online_window_s))
    return Envelope[VehiclesMeta, VehicleOut](
        meta=VehiclesMeta(found=len(found), online_window_s=online_window_s),
        results=[vehicle_out(v) for v in found],
    )


VehicleId = Annotated[
    str,
    Path(description="Vehicle id, as in its MQTT topics.", examples=["patrol-01"], max_length=64),
]


def checked_vehicle(vehicle: str) -> str:
    try:
        return check_vehicle(vehicle)
    except TopicError as exc:
        raise ParameterError("vehicle_id", exc.problem) from exc


@router.get(
    "/vehicles/{vehicle_id}",
    summary="One vehicle: live state and last fix",
    openapi_extra=visibility("deployment"),
)
def get_vehicle(
    vehicle_id: VehicleId,
    db: DbSession,
    online_window_s: Annotated[
        float,
        Query(gt=0, le=86_400 * 30, allow_inf_nan=False, description="What 'recently' means, s."),
    ] = 300.0,
) -> VehicleOut:
    vehicle = checked_vehicle(vehicle_id)
    for state in vehicle_states(db.connection(), timedelta(seconds=online_window_s)):
        if state.vehicle == vehicle:
            return vehicle_out(state)
    raise ApiError(404, "not-found", f"no vehicle {vehicle!r}")


class TrackMeta(BaseModel):
    vehicle: str
    start: datetime | None = Field(serialization_alias="from")
    end: datetime | None = Field(serialization_alias="to")
    points: int = Field(description="Positions in the lines.")
    segments: int
    truncated: bool = Field(description="max_points was reached: ask again from the last time.")
    gap_s: float


class LineString(BaseModel):
    type: Literal["LineString"] = "LineString"
    coordinates: list[tuple[float, float]]


class TrackProperties(BaseModel):
    vehicle: str
    start: datetime
    end: datetime
    points: int


class TrackFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    geometry: LineString
    properties: TrackProperties


class Track(FeatureCollection[TrackMeta, TrackFeature]):
    pass


def track_lines(
    vehicle: str, fixes: list[tuple[datetime, float, float]], gap_s: float
) -> list[TrackFeature]:
    """One LineString per stretch without a gap over gap_s (a lone fix is a 2-point line)."""
    out: list[TrackFeature] = []
    stretch: list[tuple[datetime, float, float]] = []

    def close() -> None:
        if stretch:
            coords = [(lon, lat) for _, lat, lon in stretch]
            if len(coords) == 1:
                coords.append(coords[0])
            props = TrackProperties(
                vehicle=vehicle, start=stretch[0][0], end=stretch[-1][0], points=len(stretch)
            )
            out.append(TrackFeature(geometry=LineString(coordinates=coords), properties=props))

    for fix in fixes:
        if stretch and (fix[0] - stretch[-1][0]).total_seconds() > gap_s:
            close()
            stretch = []
        stretch.append(fix)
    close()
    return out


@router.get(
    "/vehicles/{vehicle_id}/track",
    summary="A vehicle's track as GeoJSON lines",
    response_model_by_alias=True,
    openapi_extra=visibility("deployment"),
)
def vehicle_track(
    *,
    vehicle_id: VehicleId,
    period: Period,
    db: DbSession,
    max_points: Annotated[int, Query(ge=2, le=50_000, description="At most this many.")] = 5000,
    gap_s: Annotated[
        float,
        Query(gt=0, le=86_400, allow_inf_nan=False, description="A longer gap starts a new line."),
    ] = 300.0,
) -> Track:
    """The positions of the vehicle's readings with a valid fix, oldest first, as LineStrings
    (WGS-84), one per stretch without a gap over `gap_s`."""
    vehicle = checked_vehicle(vehicle_id)
    if not vehicle_known(db.connection(), vehicle):
        raise ApiError(404, "not-found", f"no vehicle {vehicle!r}")
    fixes = track_fixes(db.connection(), VehicleFilter(vehicle), period, max_points + 1)
    truncated = len(fixes) > max_points
    fixes = fixes[:max_points]
    lines = track_lines(vehicle, fixes, gap_s)
    return Track(
        meta=TrackMeta(
            vehicle=vehicle,
            start=period.start,
            end=period.end,
            points=len(fixes),
            segments=len(lines),
            truncated=truncated,
            gap_s=gap_s,
        ),
        features=lines,
    )
