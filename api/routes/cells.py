"""`GET /v1/cells`: per-cell statistics of one pollutant as GeoJSON polygons."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.auth import reader
from api.database import DbSession
from api.errors import PROBLEM_RESPONSES
from api.geojson import Feature, FeatureCollection, cell_polygon
from api.params import Period, Pollutant
from ingest import queries
from ingest.queries import CellStats

router = APIRouter(
    prefix="/v1", tags=["cells"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)


class CellsMeta(BaseModel):
    found: int
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


@router.get("/cells", summary="Per-cell statistics of one pollutant")
def list_cells(
    *,
    spec: Pollutant,
    period: Period,
    db: DbSession,
    resolution: Annotated[
        int | None, Query(ge=0, le=15, description="H3 resolution; default: the stored one.")
    ] = None,
) -> FeatureCollection[CellsMeta, CellProperties]:
    """Count, mean, standard deviation, minimum and maximum of the readings in each cell with a
    valid fix and an unflagged value, from hourly rollups (so at hourly granularity)."""
    result = queries.cells(db.connection(), spec.name, period, resolution)
    return FeatureCollection[CellsMeta, CellProperties](
        meta=CellsMeta(
            found=len(result.cells),
            pollutant=spec.name,
            unit=spec.unit,
            resolution=result.resolution,
            start=result.time.start,
            end=result.time.end,
        ),
        features=[cell_feature(c) for c in result.cells],
    )
