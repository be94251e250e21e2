"""One vehicle, its track, one cell, and streamed readings exports, against the real PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from ingest import pass_store
from tests.integration.test_api import (
    BASE,
    HOT,
    WINDOW,
    Row,
    assert_problem,
    cell_of,
    grid_rows,
    insert_readings,
    patrol_rows,
    roll_up,
    route_point,
)
from tests.services import scratch_database

pytestmark = pytest.mark.integration


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(database_url=database_url))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def empty_client(admin_url: str) -> Iterator[TestClient]:
    """One empty database for the bad-parameter cases, which never write."""
    with (
        scratch_database(admin_url) as url,
        TestClient(create_app(ApiSettings(database_url=url))) as test_client,
    ):
        yield test_client


# --- vehicles -----------------------------------------------------------------------------------


def test_one_vehicle_and_its_track(db: psycopg.Connection[Any], client: TestClient) -> None:
    rows = grid_rows()
    # A second stretch after a 2 h break, and a reading without a fix (not on the track).
    lat, lon = route_point(3)
    rows.append(Row("car-a", 50, BASE + timedelta(hours=2), lat, lon, {"pm25": 1}))
    rows.append(
        Row("car-a", 51, BASE + timedelta(hours=2, seconds=10), None, None, {}, fix_valid=False)
    )
    insert_readings(db, rows)
    db.execute(
        "INSERT INTO vehicle (vehicle, last_seen, last_seq, last_time, last_lat, last_lon, state)"
        " VALUES ('car-a', now(), 51, %s, %s, %s, 'online')",
        (BASE + timedelta(hours=2), lat, lon),
    )
    one = client.get("/v1/vehicles/car-a")
    assert one.status_code == 200, one.text
    assert (one.json()["state"], one.json()["last_seq"], one.json()["lat"]) == ("online", 51, lat)
    assert_problem(client.get("/v1/vehicles/car-z"), 404)
    assert_problem(client.get("/v1/vehicles/bad%20id"), 400, "vehicle_id")

    track = client.get("/v1/vehicles/car-a/track", params=WINDOW)
    assert track.status_code == 200, track.text
    doc = track.json()
    assert doc["type"] == "FeatureCollection"
    assert doc["meta"]["points"] == 14
    assert doc["meta"]["segments"] == 2
    assert not doc["meta"]["truncated"]
    first, second = doc["features"]
    assert first["geometry"]["type"] == "LineString"
    assert len(first["geometry"]["coordinates"]) == 13
    assert first["geometry"]["coordinates"][0] == pytest.approx(
        [route_point(0)[1], route_point(0)[0]]
    )
    assert second["properties"]["points"] == 1
    assert len(second["geometry"]["coordinates"]) == 2  # a lone fix is a degenerate line

    short = client.get("/v1/vehicles/car-a/track", params={**WINDOW, "max_points": 5}).json()
    assert short["meta"]["truncated"]
    assert short["meta"]["points"] == 5
    assert_problem(client.get("/v1/vehicles/nobody/track", params=WINDOW), 404)
    quiet = client.get(
        "/v1/vehicles/car-a/track", params={"from": "2001-01-01", "to": "2001-01-02"}
    ).json()
    assert quiet["features"] == []  # a known vehicle without fixes in the window


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"max_points": 1}, "max_points"),
        ({"max_points": "many"}, "max_points"),
        ({"gap_s": 0}, "gap_s"),
        ({"gap_s": "nan"}, "gap_s"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2025-03-04", "to": "2025-03-03"}, "from"),
    ],
)
def test_bad_track_parameters_are_400(
    empty_client: TestClient, params: dict[str, Any], parameter: str
) -> None:
    assert_problem(empty_client.get("/v1/vehicles/car-a/track", params=params), 400, parameter)


# --- one cell -----------------------------------------------------------------------------------


def test_one_cell_statistics_series_and_passes(
    db: psycopg.Connection[Any], client: TestClient
) -> None:
    insert_readings(db, patrol_rows(hot=40.0))
    roll_up(db)
    with db.transaction():
        pass_store.rebuild_all(db, 10, timedelta(seconds=120))
    cell = cell_of(*route_point(HOT))
    response = client.get(f"/v1/cells/{cell}", params={"pollutant": "pm25", "from": "2025-03-01"})
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["id"] == cell
    assert doc["geometry"]["type"] == "Polygon"
    props = doc["properties"]
    assert props["stats"]["n"] == 16 * 3  # 16 passes of 3 readings
    assert props["stats"]["std"] > 0
    assert props["stats"]["hours"] == len(props["series"]) == 8  # 2 drives x 4 days
    assert sum(h["n"] for h in props["series"]) == 48
    assert len(props["passes"]) == 16
    assert all(p["mean"] > 60 for p in props["passes"])
    starts = [p["start"] for p in props["passes"]]
    assert starts == sorted(starts)
    assert doc["meta"]["unit"] == "ug/m3"
    assert doc["meta"]["passes_from"] == "stored"
    assert doc["meta"]["pass_gap_s"] == 120

    segmented = client.get(
        f"/v1/cells/{cell}", params={"pollutant": "pm25", "from": "2025-03-01", "pass_gap_s": 60}
    ).json()
    assert segmented["meta"]["passes_from"] == "readings"
    assert [p["start"] for p in segmented["properties"]["passes"]] == starts
    assert [p["mean"] for p in segmented["properties"]["passes"]] == pytest.approx(
        [p["mean"] for p in props["passes"]]
    )

    few = client.get(
        f"/v1/cells/{cell}", params={"pollutant": "pm25", "from": "2025-03-01", "max_passes": 4}
    ).json()
    assert few["meta"]["passes_truncated"]
    assert [p["start"] for p in few["properties"]["passes"]] == starts[-4:]

    quiet = client.get(
        f"/v1/cells/{cell}", params={"pollutant": "pm25", "from": "2024-01-01", "to": "2024-02-01"}
    )
    assert quiet.json()["properties"]["stats"] is None


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/v1/cells/zzz", {"pollutant": "pm25"}, "cell"),
        ("/v1/cells/8931aa5a9a7ffff", {"pollutant": "pm25"}, "cell"),  # resolution 9
        ("/v1/cells/8a31aa5a9a47fff", {"pollutant": "radon"}, "pollutant"),
        ("/v1/cells/8a31aa5a9a47fff", {}, "pollutant"),
        ("/v1/cells/8a31aa5a9a47fff", {"pollutant": "pm25", "pass_gap_s": -1}, "pass_gap_s"),
    ],
)
def test_bad_cell_requests_are_400(
    empty_client: TestClient, path: str, params: dict[str, Any], parameter: str
) -> None:
    assert_problem(empty_client.get(path, params=params), 400, parameter)


# --- exports ------------------------------------------------------------------------------------


def expected_order() -> list[tuple[str, int]]:
    return [
        (r.vehicle, r.seq) for r in sorted(grid_rows(), key=lambda r: (r.time, r.vehicle, r.seq))
    ]


def test_csv_export_streams_every_reading(db: psycopg.Connection[Any], client: TestClient) -> None:
    insert_readings(db, grid_rows())
    response = client.get("/v1/readings", params={**WINDOW, "format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "Link" not in response.headers
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["vehicle"], int(r["seq"])) for r in table] == expected_order()
    noisy = next(r for r in table if r["vehicle"] == "car-b")
    assert float(noisy["noise [dBA]"]) == 60.5  # units in the column names
    assert noisy["co [mg/m3]"] == ""
    assert "pm25 [ug/m3]" in table[0]


def test_ndjson_and_geojson_exports(db: psycopg.Connection[Any], client: TestClient) -> None:
    insert_readings(db, grid_rows())
    nd = client.get("/v1/readings", params={**WINDOW, "format": "ndjson"})
    assert nd.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in nd.text.splitlines()]
    assert [(r["vehicle"], r["seq"]) for r in lines] == expected_order()
    assert lines[0]["units"]["pm25"] == "ug/m3"
    geo = client.get("/v1/readings", params={**WINDOW, "format": "geojson"})
    assert geo.headers["content-type"].startswith("application/geo+json")
    doc = geo.json()
    assert doc["type"] == "FeatureCollection"
    assert len(doc["features"]) == 25
    point = doc["features"][0]["geometry"]
    assert point["type"] == "Point"
    assert point["coordinates"] == pytest.approx([route_point(0)[1], route_point(0)[0]])


def test_large_exports_page_with_the_cursor(
    db: psycopg.Connection[Any], client: TestClient
) -> None:
    insert_readings(db, grid_rows())
    seen: list[tuple[str, int]] = []
    params: dict[str, Any] = {**WINDOW, "format": "ndjson", "limit": 10}
    pages = 0
    while True:
        response = client.get("/v1/readings", params=params)
        assert response.status_code == 200, response.text
        seen.extend((r["vehicle"], r["seq"]) for r in map(json.loads, response.text.splitlines()))
        pages += 1
        token = response.headers.get("X-Next-Cursor")
        if token is None:
            assert "Link" not in response.headers
            break
        assert 'rel="next"' in response.headers["Link"]
        params = {**params, "cursor": token}
    assert pages == 3
    assert seen == expected_order()


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"format": "xml"}, "format"),
        ({"format": "csv", "limit": 0}, "limit"),
        ({"format": "csv", "limit": 2_000_000}, "limit"),
        ({"limit": 20_000}, "limit"),
        ({"format": "csv", "cursor": "garbage"}, "cursor"),
        ({"format": "geojson", "bbox": "1,2,3"}, "bbox"),
    ],
)
def test_bad_export_parameters_are_400(
    empty_client: TestClient, params: dict[str, Any], parameter: str
) -> None:
    assert_problem(empty_client.get("/v1/readings", params={**WINDOW, **params}), 400, parameter)


def test_openapi_lists_every_route_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in (
        "/v1/vehicles/{vehicle_id}", "/v1/vehicles/{vehicle_id}/track", "/v1/cells/{cell}",
        "/v1/grids", "/v1/grids/{grid_id}", "/v1/cases", "/v1/cases/{case_id}",
        "/v1/cases/{case_id}/verify",
    ):  # fmt: skip
        assert path in spec["paths"], path
    assert "APIKeyHeader" in spec["components"]["securitySchemes"]
    content = spec["paths"]["/v1/readings"]["get"]["responses"]["200"]["content"]
    assert {"text/csv; charset=utf-8", "application/geo+json", "application/x-ndjson"} <= set(
        content
    )
    upload = spec["paths"]["/v1/grids"]["post"]["requestBody"]["content"]["application/json"]
    assert upload.get("examples") or upload["schema"].get("examples")
    assert datetime.fromisoformat("2025-03-03T00:00:00+00:00") == BASE - timedelta(hours=1)
