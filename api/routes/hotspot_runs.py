"""`/v1/hotspot-runs`: the hotspot job's stored runs, and officers' requests for a run over a
given window (answered asynchronously by whatever runs the job; see hotspots.run_requests)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, Field

from api.auth import Caller, DeploymentAdmin, Reader, reader, shown_actor
from api.database import DbSession
from api.errors import PROBLEM_RESPONSES, ApiError, ParameterError
from api.params import parse_instant
from api.routes.hotspots import RunOut, run_out
from api.scopes import visibility
from hotspots import results, run_requests
from hotspots.run_requests import RunRequest

router = APIRouter(
    prefix="/v1", tags=["hotspots"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)

MAX_WINDOW = timedelta(days=366)


class RunRequestIn(BaseModel):
    start: str = Field(alias="from", description="Window start, ISO 8601 (UTC unless offset).")
    end: str = Field(alias="to", description="Window end (exclusive), not in the future.")


class RunRequestOut(BaseModel):
    id: int
    requested_at: datetime
    requested_by: str = Field(description="The requesting key's name; for admins `name (key id)`.")
    window_start: datetime
    window_end: datetime
    status: str = Field(description="pending, running, done or failed.")
    run_id: int | None = Field(description="The run it produced, once done.")
    finished_at: datetime | None
    error: str | None


def request_out(made: RunRequest, to: Caller) -> RunRequestOut:
    return RunRequestOut(**{**asdict(made), "requested_by": shown_actor(made.requested_by, to)})


class RunsMeta(BaseModel):
    found: int


class RunsOut(BaseModel):
    meta: RunsMeta
    results: list[RunOut] = Field(description="Stored runs, newest first.")
    requests: list[RunRequestOut] = Field(description="Recent requests, newest first.")


@router.get(
    "/hotspot-runs",
    summary="Stored analysis runs and recent run requests",
    openapi_extra=visibility("deployment"),
)
def list_runs(
    db: DbSession, who: Reader, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> RunsOut:
    conn = db.connection()
    runs = results.recent_runs(conn, limit)
    return RunsOut(
        meta=RunsMeta(found=len(runs)),
        results=[run_out(r) for r in runs],
        requests=[request_out(r, who) for r in run_requests.recent(conn, limit)],
    )


@router.post(
    "/hotspot-runs",
    status_code=202,
    summary="Request an analysis run over a window (admin; answered asynchronously)",
    openapi_extra=visibility("unscoped"),
)
def request_run(
    body: Annotated[
        RunRequestIn,
        Body(examples=[{"from": "2026-05-01T00:00:00+08:00", "to": "2026-06-01T00:00:00+08:00"}]),
    ],
    db: DbSession,
    who: DeploymentAdmin,
) -> RunRequestOut:
    """The job analyses exactly [from, to) when it next looks for requests; poll
    GET /v1/hotspot-runs/requests/{id} until `status` is done, then read
    /v1/hotspots?from=..&to=.. (or ?run=run_id). A run becomes the newest one every key reads,
    so an admin key limited to grids cannot request one."""
    start = parse_instant(body.start, "from")
    end = parse_instant(body.end, "to")
    if start >= end:
        raise ParameterError("from", "must be before `to`")
    if end > datetime.now(UTC) + timedelta(hours=1):
        raise ParameterError("to", "the window cannot end in the future")
    if end - start > MAX_WINDOW:
        raise ParameterError("from", f"a window is at most {MAX_WINDOW.days} days")
    made = run_requests.request_run(db.admin(), start, end, who.actor)
    return request_out(made, who)


@router.get(
    "/hotspot-runs/requests/{request_id}",
    summary="One run request and its state",
    openapi_extra=visibility("deployment"),
)
def get_request(
    request_id: Annotated[int, Path(ge=1, le=2**62)], db: DbSession, who: Reader
) -> RunRequestOut:
    found = run_requests.one(db.connection(), request_id)
    if found is None:
        raise ApiError(404, "not-found", f"no run request {request_id}")
    return request_out(found, who)
