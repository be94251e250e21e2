"""`/v1/reports/inventory`: a printable environment inventory of a period and an area (HTML)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from api import report
from api.auth import Reader, reader
from api.database import DbSession
from api.errors import PROBLEM_RESPONSES, ParameterError
from api.officers import grids
from api.params import hotspot_channel
from api.routes.hotspots import (
    From,
    LabelName,
    RunParam,
    Streets,
    To,
    by_severity,
    check_stratum,
    choose_run,
    parse_range,
    tagged_hotspots,
)
from api.scopes import GridView, visibility
from api.settings import ApiSettings
from hotspots import results
from hotspots.results import HotspotFilter
from store.conditions import BBox

router = APIRouter(
    prefix="/v1", tags=["reports"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)


@router.get(
    "/reports/inventory",
    summary="Printable environment inventory of a period and an area (HTML)",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
    openapi_extra=visibility("grids"),
)
def inventory(
    *,
    db: DbSession,
    who: Reader,
    request: Request,
    streets: Streets,
    start: From = None,
    end: To = None,
    run: RunParam = None,
    bbox: Annotated[str | None, Query(description="Area: west,south,east,north (WGS-84).")] = None,
    grid: Annotated[int | None, Query(ge=1, le=2**62, description="Area: this grid.")] = None,
    pollutant: Annotated[str | None, Query(description="Only this pollutant's hotspots.")] = None,
    label: Annotated[list[LabelName] | None, Query(description="Only these labels.")] = None,
    stratum: Annotated[str | None, Query(max_length=64)] = None,
    top: Annotated[int, Query(ge=1, le=500, description="Hotspots listed.")] = 50,
) -> HTMLResponse:
    """The period is the window of the analysis run chosen as for /v1/hotspots (the newest
    holding [from, to), or `run`). A map (inline SVG of the patrolled cells, tracks, grids and
    hotspots; no tiles, works offline), the ranked hotspots with their evidence, a summary per
    management grid, and the cases with their before/after verification. Print-ready. For a key
    limited to grids, everything on the page (cells, tracks, hotspots, grids, cases) is within
    its grids."""
    if pollutant is not None:
        hotspot_channel(pollutant)
    box = None if bbox is None else BBox.parse(bbox)
    begin, stop = parse_range(start, end)
    conn = db.connection()
    view = GridView.of(grids.all_grids(conn), who.scope)
    chosen_grid = None
    if grid is not None:
        chosen_grid = view.get(grid)
        if chosen_grid is None:
            raise ParameterError("grid", f"no grid {grid}; see /v1/grids")
    chosen = choose_run(conn, run, begin, stop)
    check_stratum(chosen, stratum)
    settings = cast(ApiSettings, request.app.state.settings)
    area = report.ReportArea(bbox=box, grid=chosen_grid, view=view)
    spots = results.hotspots_of_run(
        conn, chosen, HotspotFilter(pollutant=pollutant, labels=label, stratum=stratum, bbox=box)
    )
    tagged = [(s, g) for s, g in tagged_hotspots(spots, view) if area.contains(s.lon, s.lat)]
    tagged.sort(key=by_severity)  # the officers' order, as /v1/hotspots lists them
    shown_grids = list(view.grids) if chosen_grid is None else [chosen_grid]
    page = report.render(
        report.Inventory(
            run=chosen,
            area=area,
            pollutant=pollutant,
            hotspots=tagged[:top],
            cells=report.cell_passes(conn, chosen, area),
            tracks=report.tracks(conn, chosen, area),
            grids=shown_grids,
            cases=report.area_cases(conn, area, pollutant),
            generated_at=datetime.now(UTC),
            timezone=settings.timezone,
            streets=streets,
        )
    )
    return HTMLResponse(page)
