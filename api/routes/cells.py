"""`GET /v1/cells`: per-cell statistics of one pollutant as GeoJSON polygons."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import h3
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from api import cell_history, cell_passes, paging
from api.auth import reader
from api.database import DbSession
from api.errors import PROBLEM_RESPONSES, ParameterError
from api.geojson import Feature, FeatureCollection, Polygon, cell_polygon
from api.params import Period, Pollutant, parse_cell
from api.scopes import visibility
from store.analysis_meta import read_analysis
from store.cells import CellStats, cell_statistics
from store.conditions import BBox

router = APIRouter(
    prefix="/v1", tags=["cells"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)


class CellsMeta(BaseModel):
    found: int = Field(description="Cells in this response.")
    total: int = Field(description="Cells matching the query.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
    pollutant: str
    unit: str
    resolution: int  # H3 resolution of the cells
    start: datetime | None = Field(serialization_alias="from")
    end: datetime | None = Field(serialization_alias="to")
    granularity: str = Field(
        default="1 hour",
        description="Statistics come from hourly rollups: the range is widened to whole UTC "
        "hours, reported as from/to.",
    )


class CellProperties(BaseModel):
    cell: str
    n: int
    mean: float
    std: float | None = Field(description="Sample standard deviation; null for one value.")
    min: float
    max: float
    energy_mean: float | None = Field(
        description="10*log10(mean(10^(L/10))) for logarithmic channels (noise); else null."
    )
    hours: int = Field(description="Hours with data.")
    first_hour: datetime
    last_hour: datetime


class CellCollection(FeatureCollection[CellsMeta, Feature[CellProperties]]):
    pass


def cell_feature(stats: CellStats) -> Feature[CellProperties]:
    return Feature[CellProperties](
        id=stats.cell,
        geometry=cell_polygon(stats.cell),
        properties=CellProperties(
            cell=stats.cell,
            n=stats.n,
            mean=stats.mean,
            std=stats.std,
            min=stats.min,
            max=stats.max,
            energy_mean=stats.energy_mean,
            hours=stats.hours,
            first_hour=stats.first_hour,
            last_hour=stats.last_hour,
        ),
    )


@router.get(
    "/cells", summary="Per-cell statistics of one pollutant", openapi_extra=visibility("deployment")
)
def list_cells(
    *,
    spec: Pollutant,
    period: Period,
    db: DbSession,
    resolution: Annotated[
        int | None, Query(ge=0, le=15, description="H3 resolution; default: the stored one.")
    ] = None,
    bbox: Annotated[
        str | None,
        Query(
            description="Only cells whose centre lies in west,south,east,north (WGS-84).",
            examples=["116.45,39.88,116.48,39.90"],
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=50_000, description="Cells per page.")] = 10_000,
    cursor: Annotated[
        str | None, Query(max_length=2000, description="`meta.next_cursor` of the previous page.")
    ] = None,
) -> CellCollection:
    """Count, mean, standard deviation, minimum and maximum of the readings in each cell with a
    valid fix and an unflagged value, from hourly rollups (so at hourly granularity). Cells are
    in the order of their index, paged by cursor."""
    result = cell_statistics(db.connection(), spec.name, period, resolution)
    box = None if bbox is None else BBox.parse(bbox)
    cells = sorted(
        (c for c in result.cells if box is None or _inside(box, c.cell)), key=lambda c: c.cell
    )
    fixed = {"list": "cells", "pollutant": spec.name, "bbox": bbox}
    after = None if cursor is None else paging.decode(cursor, fixed).get("after")
    if cursor is not None and not isinstance(after, str):
        raise ParameterError("cursor", "not a cursor from a previous page of this list")
    remaining = [c for c in cells if after is None or c.cell > after]
    page = remaining[:limit]
    token = paging.encode({**fixed, "after": page[-1].cell}) if len(remaining) > len(page) else None
    return CellCollection(
        meta=CellsMeta(
            found=len(page),
            total=len(cells),
            next_cursor=token,
            pollutant=spec.name,
            unit=spec.unit,
            resolution=result.resolution,
            start=result.time.start,
            end=result.time.end,
        ),
        features=[cell_feature(c) for c in page],
    )


def _inside(box: BBox, cell: str) -> bool:
    lat, lon = h3.cell_to_latlng(cell)
    return bool(box.west <= lon <= box.east and box.south <= lat <= box.north)


class HourOut(BaseModel):
    hour: datetime = Field(description="Start of the UTC hour.")
    n: int
    mean: float
    min: float
    max: float
    energy_mean: float | None


class PassOut(BaseModel):
    vehicle: str
    start: datetime
    end: datetime
    mean: float = Field(description="Mean of the pass's readings (energy mean for noise).")


class CellDetailMeta(BaseModel):
    pollutant: str
    unit: str
    start: datetime | None = Field(serialization_alias="from")
    end: datetime | None = Field(serialization_alias="to")
    pass_gap_s: float
    passes_from: Literal["stored", "readings"] = Field(
        description="stored: the ingest's passes (at its pass gap); readings: segmented at the "
        "asked pass_gap_s."
    )
    passes_truncated: bool = Field(description="Only the newest max_passes passes are listed.")


class CellDetailProperties(BaseModel):
    cell: str
    lat: float
    lon: float
    resolution: int
    stats: CellProperties | None = Field(description="Over the whole range; null without data.")
    series: list[HourOut] = Field(description="Hourly statistics, oldest first.")
    passes: list[PassOut] = Field(description="Pass history, oldest first.")


class CellDetail(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: Polygon
    meta: CellDetailMeta
    properties: CellDetailProperties


@router.get(
    "/cells/{cell}",
    summary="One cell: statistics, hourly series and pass history",
    openapi_extra=visibility("deployment"),
)
def get_cell(
    *,
    cell: Annotated[
        str, Path(description="H3 index at the stored resolution.", examples=["8a31aa5a9a47fff"])
    ],
    spec: Pollutant,
    period: Period,
    db: DbSession,
    pass_gap_s: Annotated[
        float | None,
        Query(
            gt=0,
            le=86_400,
            allow_inf_nan=False,
            description="A longer gap ends a pass. Default: the stored passes' gap, whose passes "
            "are read as stored; another gap segments the cell's readings at request time.",
        ),
    ] = None,
    max_passes: Annotated[int, Query(ge=0, le=10_000)] = 1000,
) -> CellDetail:
    """Statistics come from the hourly rollups (readings with a valid fix and an unflagged
    value); passes are the ingest's stored passes, or, for another `pass_gap_s`, segmented from
    the readings (also without stationary or stale-fix readings)."""
    cell = parse_cell(cell, "cell")
    conn = db.connection()
    analysis = read_analysis(conn)  # the stored resolution and pass gap, one read of meta
    resolution = analysis.resolution
    if h3.get_resolution(cell) != resolution:
        raise ParameterError("cell", f"cells here are at H3 resolution {resolution}")
    series = cell_history.hourly(conn, cell, spec, period)
    summary = cell_history.summarise(series, spec.energy_mean)
    stats = None
    if summary is not None:
        stats = CellProperties(
            cell=cell,
            n=summary.n,
            mean=summary.mean,
            std=summary.std,
            min=summary.min,
            max=summary.max,
            energy_mean=summary.energy_mean,
            hours=len(series),
            first_hour=series[0].hour,
            last_hour=series[-1].hour,
        )
    stored_gap = analysis.pass_gap.total_seconds()
    source: Literal["stored", "readings"]
    if pass_gap_s is None or pass_gap_s == stored_gap:
        gap, source = stored_gap, "stored"
        found = cell_passes.stored_cell_passes(conn, spec, cell, period, max_passes + 1)
    else:
        gap, source = pass_gap_s, "readings"
        found = cell_passes.cell_passes(conn, spec, cell, period, pass_gap_s)
    found = sorted(found, key=lambda p: p.start)
    truncated = len(found) > max_passes
    if truncated:
        found = found[len(found) - max_passes :]
    lat, lon = h3.cell_to_latlng(cell)
    return CellDetail(
        id=cell,
        geometry=cell_polygon(cell),
        meta=CellDetailMeta(
            pollutant=spec.name,
            unit=spec.unit,
            start=period.start,
            end=period.end,
            pass_gap_s=gap,
            passes_from=source,
            passes_truncated=truncated,
        ),
        properties=CellDetailProperties(
            cell=cell,
            lat=lat,
            lon=lon,
            resolution=resolution,
            stats=stats,
            series=[
                HourOut(
                    hour=h.hour, n=h.n, mean=h.mean, min=h.min, max=h.max, energy_mean=h.energy_mean
                )
                for h in series
            ],
            passes=[
                PassOut(vehicle=p.vehicle, start=p.start, end=p.end, mean=p.mean) for p in found
            ],
        ),
    )
