"""`/v1/streets`: the street layer ([dashboard] streets_file), for maps that work offline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from api.auth import reader
from api.errors import PROBLEM_RESPONSES
from api.routes.hotspots import Streets
from api.scopes import visibility

router = APIRouter(
    prefix="/v1", tags=["map"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)


@router.get(
    "/streets",
    summary="The area's streets as GeoJSON lines (empty without a file)",
    openapi_extra=visibility("deployment"),
)
def get_streets(streets: Streets) -> dict[str, Any]:
    """The operator's street file as loaded at start-up: LineString / MultiLineString features
    with `name` (and `name:zh` / `name:en` where the file has them), WGS-84."""
    return streets.geojson
