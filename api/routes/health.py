"""`GET /healthz`: 200 when the database answers, 503 when it does not."""

from __future__ import annotations

import logging

import psycopg
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.database import DbSession
from api.scopes import visibility
from store.health import database_health

log = logging.getLogger("envpatrol.api")

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: str
    database: str
    readings_estimate: int | None = None
    dead_letters_estimate: int | None = None


@router.get(
    "/healthz",
    summary="Liveness and database check",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database does not answer."}},
    openapi_extra=visibility("deployment"),
)
def healthz(db: DbSession) -> HealthOut | JSONResponse:
    """Row counts are the planner's estimates, cheap enough to poll."""
    try:
        found = database_health(db.connection())
    except psycopg.Error as exc:
        log.warning("health check: database unavailable: %s", exc)
        body = HealthOut(status="error", database="unavailable")
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    return HealthOut(
        status="ok",
        database="ok",
        readings_estimate=found.readings,
        dead_letters_estimate=found.dead_letters,
    )
