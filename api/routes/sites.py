"""`/v1/sites/{id}`: a hotspot's place across runs (hotspots.sites).

A hotspot's id names one run's list and dies with the run when runs are pruned; a site's id
stays while the place stays a hotspot, so it is what a shared link should carry. The answer is
the site, its newest hotspot still kept (with the same properties as in /v1/hotspots) and the
runs that listed it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from api.auth import Reader, reader
from api.database import DbSession
from api.errors import PROBLEM_RESPONSES, ApiError
from api.officers import grids
from api.routes.hotspots import HotspotProperties, Streets, hotspot_id, properties
from api.scopes import GridView, visibility
from hotspots import results

router = APIRouter(
    prefix="/v1", tags=["hotspots"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)


class SiteRun(BaseModel):
    id: str = Field(description="The hotspot's id in that run (`{run}-{rank}`).")
    run_id: int
    window_start: datetime
    window_end: datetime
    label: str
    level: float
    excess: float
    passes: int


class SiteOut(BaseModel):
    id: int
    pollutant: str
    stratum: str
    cells: list[str] = Field(description="The cells of its newest hotspot.")
    lat: float
    lon: float
    first_seen_at: datetime = Field(description="Window end of the first run that listed it.")
    last_seen_at: datetime = Field(description="Window end of the newest run that listed it.")
    runs: int = Field(description="Runs that listed it, pruned ones included.")
    latest: HotspotProperties | None = Field(
        description="Its hotspot in the newest run still kept; null when all are pruned."
    )
    history: list[SiteRun] = Field(description="Its hotspots in the runs still kept, newest first.")


@router.get(
    "/sites/{site_id}",
    summary="A hotspot's place across runs",
    openapi_extra=visibility("grids"),
)
def get_site(
    site_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="A hotspot's `site`.")],
    db: DbSession,
    who: Reader,
    streets: Streets,
    limit: Annotated[int, Query(ge=1, le=500, description="Runs listed in `history`.")] = 50,
) -> SiteOut:
    """A key limited to grids sees only the sites whose centre (that of the newest hotspot)
    one of its grids holds."""
    conn = db.connection()
    found = results.site(conn, site_id)
    view = GridView.of(grids.all_grids(conn), who.scope)
    if found is None or not view.sees(found.lon, found.lat):
        raise ApiError(404, "not-found", f"no hotspot site {site_id}")
    spots = results.site_hotspots(conn, site_id, limit)
    latest = spots[0] if spots else None
    runs = {
        run.id: run
        for run_id in dict.fromkeys(s.run_id for s in spots)
        if (run := results.run_by_id(conn, run_id)) is not None
    }
    return SiteOut(
        id=found.id,
        pollutant=found.pollutant,
        stratum=found.stratum,
        cells=list(found.cells),
        lat=found.lat,
        lon=found.lon,
        first_seen_at=found.first_seen_at,
        last_seen_at=found.last_seen_at,
        runs=found.runs,
        latest=None
        if latest is None
        else properties(latest, view.place(latest.lon, latest.lat)[1], streets),
        history=[
            SiteRun(
                id=hotspot_id(s.run_id, s.rank),
                run_id=s.run_id,
                window_start=runs[s.run_id].window_start,
                window_end=runs[s.run_id].window_end,
                label=s.label,
                level=s.level,
                excess=s.excess,
                passes=s.passes,
            )
            for s in spots
            if s.run_id in runs
        ],
    )
