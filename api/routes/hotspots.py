"""`GET /v1/hotspots`: cells where a pollutant stands persistently above the area's background."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.auth import reader
from api.database import DbSession
from api.errors import PROBLEM_RESPONSES, ParameterError
from api.geojson import Feature, FeatureCollection, cell_polygon
from api.officers import grids
from api.officers.grids import Grid
from api.params import Period, Pollutant
from ingest import queries
from ingest.queries import HOTSPOT_EXCLUDED_FLAGS, MAD_TO_SIGMA, BBox, Hotspot, HotspotParams

router = APIRouter(
    prefix="/v1", tags=["hotspots"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)

NOTE = (
    "Indicative values from mobile monitoring, not compliance values: air quality standards "
    "(GB 3095-2012, GB 3096-2008) apply to fixed monitoring sites and averaging periods."
)
METHOD = (
    "Passes: one vehicle's contiguous visit to a cell (a gap over pass_gap_s ends it), averaged "
    "(energy mean for noise), using readings with a valid fix and an unflagged value, not "
    "stationary/without fix. Background: the 25th percentile of all such readings in each hour. "
    f"Enhancement: pass mean - background of its hour. sigma: {MAD_TO_SIGMA} x MAD of all "
    "enhancements. Hotspot: at least min_passes passes and median enhancement >= "
    "max(z_min x sigma, floor). Persistence: share of passes with enhancement > delta."
)


class MethodParams(BaseModel):
    pass_gap_s: float
    min_passes: int
    z_min: float
    floor: float
    delta: float
    timezone: str
    excluded_flags: list[str]
    description: str = METHOD


class HotspotsMeta(BaseModel):
    found: int
    pollutant: str
    unit: str
    grid: int | None = Field(default=None, description="The grid filter, if any.")
    start: datetime | None = Field(serialization_alias="from")
    end: datetime | None = Field(serialization_alias="to")
    method: MethodParams
    sigma: float | None = Field(description="Robust spread of all pass enhancements.")
    passes: int = Field(description="All passes in the time range.")
    cells: int = Field(description="Cells with at least one pass.")
    note: str = NOTE


class HotspotProperties(BaseModel):
    cell: str
    lat: float = Field(description="Cell centre.")
    lon: float
    n_passes: int
    vehicles: int
    days: int
    background: float = Field(description="Median of the hourly backgrounds of its passes.")
    level: float = Field(description="Median pass mean.")
    enhancement: float = Field(description="Median over passes of pass mean - background.")
    z: float | None = Field(description="enhancement / sigma; null when sigma is 0.")
    persistence: float
    first_pass: datetime
    last_pass: datetime
    grid_id: int | None = Field(description="Management grid holding the cell centre; null: none.")
    grid_name: str | None


def hotspot_feature(spot: Hotspot, grid: Grid | None = None) -> Feature[HotspotProperties]:
    return Feature[HotspotProperties](
        id=spot.cell,
        geometry=cell_polygon(spot.cell),
        properties=HotspotProperties(
            cell=spot.cell,
            lat=spot.lat,
            lon=spot.lon,
            n_passes=spot.n_passes,
            vehicles=spot.vehicles,
            days=spot.days,
            background=spot.background,
            level=spot.level,
            enhancement=spot.enhancement,
            z=spot.z,
            persistence=spot.persistence,
            first_pass=spot.first_pass,
            last_pass=spot.last_pass,
            grid_id=None if grid is None else grid.id,
            grid_name=None if grid is None else grid.name,
        ),
    )


@router.get("/hotspots", summary="Hotspot cells of one pollutant, most significant first")
def list_hotspots(
    *,
    spec: Pollutant,
    period: Period,
    db: DbSession,
    min_passes: Annotated[int, Query(ge=1, le=100_000, description="Passes a hotspot needs.")] = 3,
    z_min: Annotated[
        float,
        Query(
            ge=0, le=1000, allow_inf_nan=False, description="Median enhancement needed, in sigmas."
        ),
    ] = 3.0,
    pass_gap_s: Annotated[
        float,
        Query(
            gt=0,
            le=86_400,
            allow_inf_nan=False,
            description="A longer gap between readings ends a pass.",
        ),
    ] = 120.0,
    floor: Annotated[
        float | None,
        Query(
            ge=0,
            allow_inf_nan=False,
            description="Absolute minimum median enhancement; default per pollutant.",
        ),
    ] = None,
    delta: Annotated[
        float | None,
        Query(
            allow_inf_nan=False,
            description="Enhancement counted as 'above' for persistence; default: floor.",
        ),
    ] = None,
    timezone: Annotated[
        str, Query(description="IANA zone whose calendar days `days` counts.")
    ] = "UTC",
    grid: Annotated[
        int | None,
        Query(ge=1, le=2**62, description="Only hotspots whose cell centre lies in this grid."),
    ] = None,
    bbox: Annotated[
        str | None,
        Query(
            description="Only hotspots whose cell centre lies in west,south,east,north (WGS-84).",
            examples=["116.45,39.88,116.48,39.90"],
        ),
    ] = None,
    sort: Annotated[
        Literal["z", "enhancement", "level", "n_passes", "persistence", "last_pass"],
        Query(description="Order, highest first (z: most significant first)."),
    ] = "z",
) -> FeatureCollection[HotspotsMeta, HotspotProperties]:
    """Computed per request from the stored readings (indicative, not compliance values). Each
    hotspot is tagged with the management grid holding its cell centre."""
    queries.hotspot_channel(spec.name)
    box = None if bbox is None else BBox.parse(bbox)
    params = HotspotParams(
        pass_gap_s=pass_gap_s,
        min_passes=min_passes,
        z_min=z_min,
        floor=floor,
        delta=delta,
        timezone=timezone,
    )
    conn = db.connection()
    known = grids.all_grids(conn)
    if grid is not None and all(g.id != grid for g in known):
        raise ParameterError("grid", f"no grid {grid}; see /v1/grids")
    result = queries.hotspots(conn, spec.name, period, params)
    tagged = [(h, grids.grid_at(known, h.lon, h.lat)) for h in result.hotspots]
    if grid is not None:
        tagged = [(h, g) for h, g in tagged if g is not None and g.id == grid]
    if box is not None:
        tagged = [
            (h, g)
            for h, g in tagged
            if box.west <= h.lon <= box.east and box.south <= h.lat <= box.north
        ]
    if sort != "z":  # the query already orders by z
        tagged.sort(key=lambda pair: getattr(pair[0], sort), reverse=True)
    return FeatureCollection[HotspotsMeta, HotspotProperties](
        meta=HotspotsMeta(
            found=len(tagged),
            pollutant=spec.name,
            unit=spec.unit,
            grid=grid,
            start=period.start,
            end=period.end,
            method=MethodParams(
                pass_gap_s=params.pass_gap_s,
                min_passes=params.min_passes,
                z_min=params.z_min,
                floor=result.floor,
                delta=result.delta,
                timezone=params.timezone,
                excluded_flags=list(HOTSPOT_EXCLUDED_FLAGS),
            ),
            sigma=result.sigma,
            passes=result.passes,
            cells=result.cells,
        ),
        features=[hotspot_feature(h, g) for h, g in tagged],
    )
