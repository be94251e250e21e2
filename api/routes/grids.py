"""`/v1/grids`: the sub-district's management grids, uploaded by officers as GeoJSON."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import DeploymentAdmin, Reader, reader
from api.database import DbSession
from api.errors import PROBLEM_RESPONSES, ApiError, ParameterError
from api.geojson import FeatureCollection
from api.geometry import GeometryError, parse_area
from api.officers import grids
from api.officers.grids import Grid, GridUpload
from api.scopes import MAX_NAME_CHARS, visibility, visible_grids
from api.text import Line, document_problem

router = APIRouter(
    prefix="/v1", tags=["grids"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)

MAX_GRIDS = 5000

_EXAMPLE_POLYGON = {
    "type": "Polygon",
    "coordinates": [
        [
            [116.455, 39.889],
            [116.468, 39.889],
            [116.468, 39.897],
            [116.455, 39.897],
            [116.455, 39.889],
        ]
    ],
}


class GridPropertiesIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: Line = Field(
        min_length=1, max_length=200, description="Unique; re-uploading replaces it."
    )
    responsible: Line = Field(
        min_length=1, max_length=200, description="The person in charge of the grid (网格长)."
    )
    subdistrict: Line | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="The sub-district (街道) the grid belongs to; API keys may be limited to a "
        "sub-district's grids.",
    )


class GridFeatureIn(BaseModel):
    type: Literal["Feature"]
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon, WGS-84.")
    properties: GridPropertiesIn


class GridCollectionIn(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[GridFeatureIn] = Field(min_length=1, max_length=MAX_GRIDS)


_UPLOAD_EXAMPLE = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "geometry": _EXAMPLE_POLYGON,
            "properties": {"name": "双井第3网格", "responsible": "王芳", "subdistrict": "双井街道"},
        }
    ],
}


class GridProperties(BaseModel):
    id: int
    name: str
    responsible: str
    subdistrict: str | None = Field(description="Its sub-district; null: none given.")
    created_at: datetime
    updated_at: datetime
    extra: dict[str, Any] = Field(description="Other properties of the uploaded feature.")


class GridFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: int
    geometry: dict[str, Any]
    bbox: tuple[float, float, float, float]
    properties: GridProperties


class GridsMeta(BaseModel):
    found: int


class GridCollection(FeatureCollection[GridsMeta, GridFeature]):
    pass


def grid_feature(grid: Grid) -> GridFeature:
    area = grid.area
    return GridFeature(
        id=grid.id,
        geometry=area.geojson(),
        bbox=(area.west, area.south, area.east, area.north),
        properties=GridProperties(
            id=grid.id,
            name=grid.name,
            responsible=grid.responsible,
            subdistrict=grid.subdistrict,
            created_at=grid.created_at,
            updated_at=grid.updated_at,
            extra=grid.properties,
        ),
    )


GridId = Annotated[int, Path(ge=1, le=2**62, description="Grid id.")]


@router.get("/grids", summary="Management grids", openapi_extra=visibility("grids"))
def list_grids(db: DbSession, who: Reader) -> GridCollection:
    """A key limited to grids sees only its own."""
    found = visible_grids(grids.all_grids(db.connection()), who.scope)
    return GridCollection(
        meta=GridsMeta(found=len(found)), features=[grid_feature(g) for g in found]
    )


@router.get("/grids/{grid_id}", summary="One management grid", openapi_extra=visibility("grids"))
def get_grid(grid_id: GridId, db: DbSession, who: Reader) -> GridFeature:
    grid = grids.one(db.connection(), grid_id)
    if grid is None or (who.scope is not None and not who.scope.holds(grid)):
        raise ApiError(404, "not-found", f"no grid {grid_id}")
    return grid_feature(grid)


def uploads(body: GridCollectionIn) -> list[GridUpload]:
    out = []
    names: set[str] = set()
    for i, feature in enumerate(body.features):
        where = f"features[{i}]"
        props = feature.properties
        name = props.name.strip()
        if name in names:
            raise ParameterError(f"{where}.properties.name", f"{name!r} appears twice")
        names.add(name)
        try:
            area = parse_area(feature.geometry)
        except GeometryError as exc:
            raise ParameterError(f"{where}.geometry.{exc.subject}", exc.problem) from exc
        extra = dict(props.model_extra or {})
        problem = document_problem(extra)
        if problem is not None:
            raise ParameterError(f"{where}.properties", problem)
        subdistrict = None if props.subdistrict is None else props.subdistrict.strip() or None
        out.append(GridUpload(name, props.responsible.strip(), area, extra, subdistrict))
    return out


@router.post(
    "/grids",
    status_code=201,
    summary="Upload management grids (admin)",
    openapi_extra=visibility("unscoped"),
)
def upload_grids(
    body: Annotated[GridCollectionIn, Body(examples=[_UPLOAD_EXAMPLE])],
    db: DbSession,
    who: DeploymentAdmin,
) -> GridCollection:
    """A GeoJSON FeatureCollection of Polygons or MultiPolygons in WGS-84, each with `name` and
    `responsible` in its properties, optionally `subdistrict` (other properties are kept). A
    grid whose name exists already is replaced. All or nothing: one bad feature refuses the
    whole upload. Grids are where keys limited to grids see, so only an admin key without a
    scope changes them."""
    del who
    ids = grids.save(db.admin(), uploads(body))
    conn = db.admin()
    found = [g for g in (grids.one(conn, i) for i in ids) if g is not None]
    return GridCollection(
        meta=GridsMeta(found=len(found)), features=[grid_feature(g) for g in found]
    )


@router.delete(
    "/grids/{grid_id}",
    status_code=204,
    summary="Delete a management grid (admin)",
    openapi_extra=visibility("unscoped"),
)
def delete_grid(grid_id: GridId, db: DbSession, who: DeploymentAdmin) -> Response:
    del who
    if not grids.delete(db.admin(), grid_id):
        raise ApiError(404, "not-found", f"no grid {grid_id}")
    return Response(status_code=204)
