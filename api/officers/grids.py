"""Management grids: stored polygons, and which grid holds a point."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from api.geometry import PolygonArea, parse_area

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class Grid:
    id: int
    name: str
    responsible: str
    area: PolygonArea
    properties: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    subdistrict: str | None = None  # keys may be limited to a sub-district (api.scopes)


@dataclass(frozen=True, slots=True)
class GridUpload:
    name: str
    responsible: str
    area: PolygonArea
    properties: dict[str, Any]
    subdistrict: str | None = None


_COLUMNS = "id, name, responsible, geometry, properties, created_at, updated_at, subdistrict"


def _grid(row: dict[str, Any]) -> Grid:
    return Grid(
        id=row["id"],
        name=row["name"],
        responsible=row["responsible"],
        area=parse_area(row["geometry"]),
        properties=row["properties"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        subdistrict=row["subdistrict"],
    )


def all_grids(conn: Conn) -> list[Grid]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {_COLUMNS} FROM management_grid ORDER BY name").fetchall()
    return [_grid(row) for row in rows]


def one(conn: Conn, grid_id: int) -> Grid | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_COLUMNS} FROM management_grid WHERE id = %s", (grid_id,)
        ).fetchone()
    return None if row is None else _grid(row)


def save(conn: Conn, uploads: list[GridUpload]) -> list[int]:
    """Insert the grids, replacing those with the same name, in one transaction; their ids."""
    ids = []
    with conn.transaction():
        for grid in uploads:
            row = conn.execute(
                "INSERT INTO management_grid"
                " (name, responsible, geometry, west, south, east, north, properties, subdistrict)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET responsible = EXCLUDED.responsible,"
                "  geometry = EXCLUDED.geometry, west = EXCLUDED.west, south = EXCLUDED.south,"
                "  east = EXCLUDED.east, north = EXCLUDED.north,"
                "  properties = EXCLUDED.properties, subdistrict = EXCLUDED.subdistrict,"
                "  updated_at = now()"
                " RETURNING id",
                (
                    grid.name,
                    grid.responsible,
                    Jsonb(grid.area.geojson()),
                    grid.area.west,
                    grid.area.south,
                    grid.area.east,
                    grid.area.north,
                    Jsonb(grid.properties),
                    grid.subdistrict,
                ),
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
    return ids


def delete(conn: Conn, grid_id: int) -> bool:
    return conn.execute("DELETE FROM management_grid WHERE id = %s", (grid_id,)).rowcount == 1


def grid_at(grids: Sequence[Grid], lon: float, lat: float) -> Grid | None:
    """The first grid (by name) holding the point; grids that tile an area never overlap."""
    for grid in grids:
        if grid.area.contains(lon, lat):
            return grid
    return None
