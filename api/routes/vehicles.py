"""`GET /v1/vehicles`: every vehicle's last position and whether it is online."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.auth import reader
from api.database import DbSession
from api.envelope import Envelope, Meta
from api.errors import PROBLEM_RESPONSES
from ingest import queries
from ingest.queries import VehicleState

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


@router.get("/vehicles", summary="Vehicles, last positions and online state")
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
    found = queries.vehicles(db.connection(), timedelta(seconds=online_window_s))
    return Envelope[VehiclesMeta, VehicleOut](
        meta=VehiclesMeta(found=len(found), online_window_s=online_window_s),
        results=[vehicle_out(v) for v in found],
    )
