"""`GET /healthz`: 200 when the database answers, 503 when it does not.

With a replica (`[database] read_url`) it also says how far behind the replica is, where reads
go now, and whether the primary (where writes go) answers; a replica that lags or is gone, or a
primary that is gone while the replica serves, is `degraded` (still 200: reads are served).
"""

from __future__ import annotations

import logging

import psycopg
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.database import Database, DbSession, ReplicaLag
from api.scopes import visibility
from store.health import database_health

log = logging.getLogger("envpatrol.api")

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: str = Field(description="ok, degraded (reads served, see below) or error")
    database: str
    readings_estimate: int | None = None
    dead_letters_estimate: int | None = None
    read_from: str | None = Field(
        default=None, description="Where this server reads now: replica or primary."
    )
    replica: str | None = Field(
        default=None,
        description="With a replica: ok, lagging (beyond max_replica_lag_s), unavailable, or "
        "promoted (it is a primary now).",
    )
    replica_lag_s: float | None = Field(
        default=None, description="How far the replica's replay is behind, in seconds."
    )
    replica_receiving: bool | None = Field(
        default=None, description="Whether the replica is receiving WAL from a primary."
    )
    max_replica_lag_s: float | None = None
    primary: str | None = Field(
        default=None, description="With a replica: whether the primary answers (ok, unavailable)."
    )


def _replica_state(lag: ReplicaLag, bound: float) -> str:
    if lag.error is not None or lag.lag_s is None:
        return "unavailable" if lag.error is not None else "lagging"
    if not lag.in_recovery:
        return "promoted"
    return "ok" if lag.lag_s <= bound else "lagging"


def _primary_answers(database: Database) -> bool:
    try:
        conn = database.primary.acquire()
    except psycopg.OperationalError:
        return False
    database.primary.release(conn)
    return True


@router.get(
    "/healthz",
    summary="Liveness and database check",
    response_model=HealthOut,
    response_model_exclude_none=True,
    responses={503: {"model": HealthOut, "description": "The database does not answer."}},
    openapi_extra=visibility("deployment"),
)
def healthz(db: DbSession) -> HealthOut | JSONResponse:
    """Row counts are the planner's estimates, cheap enough to poll."""
    database = db.database
    lag = database.replica_lag_now()
    try:
        found = database_health(db.connection())
    except psycopg.Error as exc:
        log.warning("health check: database unavailable: %s", exc)
        body = HealthOut(status="error", database="unavailable")
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    out = HealthOut(
        status="ok",
        database="ok",
        readings_estimate=found.readings,
        dead_letters_estimate=found.dead_letters,
    )
    if lag is None:
        return out
    source = db.read_from
    replica = _replica_state(lag, database.max_lag_s)
    primary = "ok" if _primary_answers(database) else "unavailable"
    degraded = replica not in ("ok", "promoted") or primary != "ok"
    return out.model_copy(
        update={
            "status": "degraded" if degraded else "ok",
            "read_from": None if source is None else source.source,
            "replica": replica,
            "replica_lag_s": None if lag.lag_s is None else round(lag.lag_s, 3),
            "replica_receiving": lag.receiving,
            "max_replica_lag_s": database.max_lag_s,
            "primary": primary,
        }
    )
