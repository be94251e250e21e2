"""The HTTP API against the real PostgreSQL: readings written with SQL, read back over HTTP."""

from __future__ import annotations

import base64
import itertools
import json
import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg.types.json import Jsonb

from api.app import create_app
from api.database import Database
from api.settings import ApiSettings
from edge.units import CHANNELS
from hotspots.analysis.settings import AnalysisSettings
from hotspots.job import JobSettings, run_once
from ingest import pass_store
from store.analysis_meta import read_analysis

pytestmark = pytest.mark.integration

RESOLUTION = 10  # what tests.services.scratch_database migrates with
BASE = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
PROBLEM = "application/problem+json"


def route_point(i: int) -> tuple[float, float]:
    """The centre of the i-th cell along an east-west street in Beijing, ~340 m apart."""
    cell = h3.latlng_to_cell(39.9, 116.40 + 0.004 * i, RESOLUTION)
    lat, lon = h3.cell_to_latlng(cell)
    return lat, lon


def cell_of(lat: float, lon: float) -> str:
    return str(h3.latlng_to_cell(lat, lon, RESOLUTION))


@dataclass
class Row:
    vehicle: str
    seq: int
    time: datetime
    lat: float | None
    lon: float | None
    values: dict[str, float]
    flags: list[str] = field(default_factory=list)
    channel_flags: dict[str, list[str]] = field(default_factory=dict)
    fix_valid: bool = True


def insert_readings(conn: psycopg.Connection[Any], rows: list[Row]) -> None:
    """Store rows as the ingest would, with the H3 cell of each position."""
    columns = [
        "vehicle", "seq", "time", "time_source", "lat", "lon", "fix_valid", "fix_quality",
        "satellites", "hdop", "speed_mps", "cell", "profile", "flags", "channel_flags",
        *CHANNELS,
    ]  # fmt: skip
    query = sql.SQL("INSERT INTO reading ({}) VALUES ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    params = []
    for r in rows:
        cell = None
        if r.lat is not None and r.lon is not None:
            cell = h3.str_to_int(h3.latlng_to_cell(r.lat, r.lon, RESOLUTION))
        params.append(
            (
                r.vehicle, r.seq, r.time, "gnss", r.lat, r.lon, r.fix_valid,
                1 if r.fix_valid else 0, 9, 0.9, 6.0, cell, "default-multi", r.flags,
                Jsonb(r.channel_flags), *(r.values.get(name) for name in CHANNELS),
            )
        )  # fmt: skip
    with conn.cursor() as cur:
        cur.executemany(query, params)


def roll_up(conn: psycopg.Connection[Any]) -> None:
    """Fill cell_rollup from the readings, as the ingest keeps it."""
    for name, spec in CHANNELS.items():
        query = sql.SQL(
            "INSERT INTO cell_rollup"
            " (resolution, cell, bucket, channel, n, sum, sumsq, min, max, energy_sum)"
            " SELECT %(resolution)s, cell, date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01Z'),"
            "  %(channel)s, count(*), sum(v), sum(v * v), min(v), max(v),"
            "  CASE WHEN %(energy)s THEN sum(power(10::float8, v / 10)) END"
            " FROM (SELECT cell, time, {column} AS v FROM reading"
            "       WHERE fix_valid AND cell IS NOT NULL AND {column} IS NOT NULL"
            "         AND NOT channel_flags ? %(channel)s) q"
            " GROUP BY cell, 3"
        ).format(column=sql.Identifier(name))
        conn.execute(query, {"resolution": RESOLUTION, "channel": name, "energy": spec.energy_mean})


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(database_url=database_url))) as test_client:
        yield test_client


def assert_problem(response: Any, status: int, parameter: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert body["detail"]
    if parameter is not None:
        assert body.get("parameter") == parameter, body
    return body


# --- readings ------------------------------------------------------------------------------------


def grid_rows() -> list[Row]:
    """Two vehicles, 25 readings, several of them at the very same instant."""
    rows = []
    for i in range(13):
        lat, lon = route_point(i % 6)
        rows.append(Row("car-a", i + 1, BASE + timedelta(seconds=10 * i), lat, lon, {"pm25": i}))
    for i in range(12):
        lat, lon = route_point(5 - i % 6)
        moment = BASE + timedelta(seconds=10 * (i // 2) * 2)  # pairs share a time with car-a
        rows.append(Row("car-b", 100 + i, moment, lat, lon, {"pm25": 50 + i, "noise": 60.5}))
    return rows


WINDOW = {"from": "2025-03-03T00:00:00Z", "to": "2025-03-04T00:00:00Z"}


def test_paging_returns_every_reading_once_in_order(
    db: psycopg.Connection[Any], client: TestClient
) -> None:
    rows = grid_rows()
    insert_readings(db, rows)
    seen: list[tuple[str, int]] = []
    times: list[datetime] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {**WINDOW, "limit": 7}
        if cursor is not None:
            params["cursor"] = cursor
        response = client.get("/v1/readings", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        assert body["meta"]["limit"] == 7
        assert body["meta"]["found"] == len(body["results"]) <= 7
        seen.extend((r["vehicle"], r["seq"]) for r in body["results"])
        times.extend(datetime.fromisoformat(r["time"]) for r in body["results"])
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    expected = sorted(rows, key=lambda r: (r.time, r.vehicle, r.seq))
    assert seen == [(r.vehicle, r.seq) for r in expected]
    assert times == [r.time for r in expected]


def test_last_full_page_has_no_cursor(db: psycopg.Connection[Any], client: TestClient) -> None:
    insert_readings(db, grid_rows())
    body = client.get("/v1/readings", params={**WINDOW, "limit": 25}).json()
    assert body["meta"]["found"] == 25
    assert body["meta"]["next_cursor"] is None


def test_a_reading_reads_back_whole(db: psycopg.Connection[Any], client: TestClient) -> None:
    lat, lon = route_point(0)
    row = Row(
        "car-a", 7, BASE, lat, lon, {"pm25": 12.5, "noise": 61.0},
        flags=["warmup"], channel_flags={"co2": ["sentinel"]},
    )  # fmt: skip
    insert_readings(db, [row])
    (result,) = client.get("/v1/readings", params=WINDOW).json()["results"]
    assert result["vehicle"] == "car-a"
    assert result["seq"] == 7
    assert datetime.fromisoformat(result["time"]) == BASE
    assert result["time_source"] == "gnss"
    assert (result["lat"], result["lon"]) == pytest.approx((lat, lon))
    assert result["fix"]["valid"] is True
    assert result["fix"]["satellites"] == 9
    assert result["cell"] == cell_of(lat, lon)
    assert result["flags"] == ["warmup"]
    assert result["channel_flags"] == {"co2": ["sentinel"]}
    assert result["values"]["pm25"] == 12.5
    assert result["values"]["noise"] == 61.0
    assert result["values"]["co2"] is None
    assert result["units"]["pm25"] == "ug/m3"
    assert result["units"]["noise"] == "dBA"


def test_vehicle_and_bbox_filters(db: psycopg.Connection[Any], client: TestClient) -> None:
    rows = grid_rows()
    insert_readings(db, rows)
    body = client.get("/v1/readings", params={**WINDOW, "vehicle": "car-b"}).json()
    assert {r["vehicle"] for r in body["results"]} == {"car-b"}
    assert body["meta"]["found"] == sum(r.vehicle == "car-b" for r in rows)

    # A box around the first two route cells only.
    (lat0, lon0), (_, lon1) = route_point(0), route_point(1)
    bbox = f"{lon0 - 0.001},{lat0 - 0.001},{lon1 + 0.001},{lat0 + 0.001}"
    inside = {cell_of(*route_point(0)), cell_of(*route_point(1))}
    body = client.get("/v1/readings", params={**WINDOW, "bbox": bbox}).json()
    expected = [r for r in rows if r.lat is not None and cell_of(r.lat, r.lon or 0.0) in inside]
    assert body["meta"]["found"] == len(expected) > 0
    assert {r["cell"] for r in body["results"]} == inside

    both = client.get("/v1/readings", params={**WINDOW, "bbox": bbox, "vehicle": "car-a"}).json()
    assert both["meta"]["found"] == sum(r.vehicle == "car-a" for r in expected)


def test_default_range_is_the_last_30_days_and_open_ended(
    db: psycopg.Connection[Any], client: TestClient
) -> None:
    now = datetime.now(UTC)
    lat, lon = route_point(0)
    insert_readings(
        db,
        [
            Row("car-a", 1, now - timedelta(days=40), lat, lon, {"pm25": 1}),
            Row("car-a", 2, now - timedelta(days=1), lat, lon, {"pm25": 2}),
            Row("car-a", 3, now + timedelta(days=2), lat, lon, {"pm25": 3}),  # a sim running ahead
        ],
    )
    body = client.get("/v1/readings").json()
    assert [r["seq"] for r in body["results"]] == [2, 3]


# --- cells ---------------------------------------------------------------------------------------


def test_cells_geojson_and_statistics(db: psycopg.Connection[Any], client: TestClient) -> None:
    p0, p1 = route_point(0), route_point(3)
    values0 = [10.0, 14.0, 30.0, 22.0]
    noise0 = [60.0, 70.0, 65.0, 80.0]
    rows = [
        Row("car-a", i, BASE + timedelta(minutes=25 * i), *p0, {"pm25": v, "noise": n})
        for i, (v, n) in enumerate(zip(values0, noise0, strict=True))
    ]
    rows.append(Row("car-a", 10, BASE + timedelta(minutes=5), *p1, {"pm25": 99.0}))
    # Not in the statistics: a flagged value, and a reading without a valid fix.
    rows.append(Row("car-b", 1, BASE, *p1, {"pm25": 500.0}, channel_flags={"pm25": ["spike"]}))
    rows.append(Row("car-b", 2, BASE, *p1, {"pm25": 700.0}, fix_valid=False))
    insert_readings(db, rows)
    roll_up(db)

    response = client.get(
        "/v1/cells",
        params={"pollutant": "pm25", "from": "2025-03-03T01:30:00Z", "to": "2025-03-03T03:00:00Z"},
    )
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["type"] == "FeatureCollection"
    meta = doc["meta"]
    assert meta["pollutant"] == "pm25"
    assert meta["unit"] == "ug/m3"
    assert meta["resolution"] == RESOLUTION
    assert meta["from"] == "2025-03-03T01:00:00Z"  # widened to whole hours
    assert meta["to"] == "2025-03-03T03:00:00Z"
    assert meta["found"] == 2
    by_cell = {f["id"]: f for f in doc["features"]}
    assert set(by_cell) == {cell_of(*p0), cell_of(*p1)}
    # One cell a page, by cursor; a box keeps only the cells whose centre it holds.
    window = {"pollutant": "pm25", "from": "2025-03-03T01:30:00Z", "to": "2025-03-03T03:00:00Z"}
    first = client.get("/v1/cells", params={**window, "limit": 1}).json()
    assert (first["meta"]["found"], first["meta"]["total"]) == (1, 2)
    second = client.get(
        "/v1/cells", params={**window, "limit": 1, "cursor": first["meta"]["next_cursor"]}
    ).json()
    assert second["meta"]["next_cursor"] is None
    assert {first["features"][0]["id"], second["features"][0]["id"]} == set(by_cell)
    lat, lon = h3.cell_to_latlng(cell_of(*p0))
    box = f"{lon - 1e-4},{lat - 1e-4},{lon + 1e-4},{lat + 1e-4}"
    boxed = client.get("/v1/cells", params={**window, "bbox": box}).json()
    assert [f["id"] for f in boxed["features"]] == [cell_of(*p0)]
    assert_problem(client.get("/v1/cells", params={**window, "cursor": "x"}), 400, "cursor")

    feature = by_cell[cell_of(*p0)]
    assert feature["type"] == "Feature"
    ring = feature["geometry"]["coordinates"][0]
    assert feature["geometry"]["type"] == "Polygon"
    assert len(ring) == 7
    assert ring[0] == ring[-1]
    lon_mean = statistics.fmean(x for x, _ in ring[:-1])
    lat_mean = statistics.fmean(y for _, y in ring[:-1])
    assert (lat_mean, lon_mean) == pytest.approx(p0, abs=1e-3)  # (lon, lat) order
    area2 = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in itertools.pairwise(ring))
    assert area2 > 0  # counterclockwise, as RFC 7946 asks

    stats = feature["properties"]
    assert stats["cell"] == feature["id"]
    assert stats["n"] == 4
    assert stats["mean"] == pytest.approx(statistics.fmean(values0))
    assert stats["std"] == pytest.approx(statistics.stdev(values0))
    assert (stats["min"], stats["max"]) == (10.0, 30.0)
    assert stats["energy_mean"] is None
    assert stats["hours"] == 2

    only = by_cell[cell_of(*p1)]["properties"]
    assert (only["n"], only["mean"], only["std"]) == (1, 99.0, None)

    noise = client.get("/v1/cells", params={"pollutant": "noise", **WINDOW}).json()
    (feature,) = noise["features"]
    energy = 10 * math.log10(statistics.fmean(10 ** (n / 10) for n in noise0))
    assert feature["properties"]["energy_mean"] == pytest.approx(energy)
    assert feature["properties"]["mean"] == pytest.approx(statistics.fmean(noise0))


# --- hotspots (from the analysis job's runs; tests/integration/test_api_hotspots.py) ----------

HOT = 5  # route cell with a source
SPIKE = 2  # route cell with one plume on one pass
MASKED = 7  # route cell whose high readings are all flagged


def patrol_rows(hot: float, *, days: int = 4, drives: int = 2, extras: bool = True) -> list[Row]:
    """Two vehicles driving the 8-cell street `drives` times a day: 3 readings 10 s apart in each
    cell. The background drifts from day to day and hour to hour; cell HOT is `hot` above it.
    With `extras`, cell SPIKE sees one plume and cell MASKED high values that are all flagged."""
    rows: list[Row] = []
    seqs = {"car-a": 0, "car-b": 0}
    for day in range(days):
        for drive in range(drives):
            for k, vehicle in enumerate(("car-a", "car-b")):
                start = BASE + timedelta(days=day, hours=3 * drive, minutes=20 * k)
                background = 30.0 + 7.0 * day + 4.0 * drive + 2.0 * k
                moment = start
                for i in range(8):
                    lat, lon = route_point(i)
                    for j in range(3):
                        value = background + ((i * 7 + j * 3 + day) % 5) * 0.5  # 0..2 wiggle
                        flags: list[str] = []
                        channel_flags: dict[str, list[str]] = {}
                        if i == HOT:
                            value += hot
                        if extras and i == SPIKE and day == 1 and drive == 0 and k == 0:
                            value += 200.0
                        if extras and i == MASKED:
                            value += 80.0
                            if k == 0:
                                flags = ["stationary"]
                            else:
                                channel_flags = {"pm25": ["spike"]}
                        seqs[vehicle] += 1
                        rows.append(
                            Row(vehicle, seqs[vehicle], moment, lat, lon, {"pm25": value},
                                flags, channel_flags)
                        )  # fmt: skip
                        moment += timedelta(seconds=10)
                    moment += timedelta(seconds=30)  # driving on to the next cell
    return rows


def analyse(conn: psycopg.Connection[Any], now: datetime, window_days: float = 30) -> int:
    """Passes from the stored readings (as the ingest keeps them), then one run of the hotspot
    job over the window ending at `now`; the run's id."""
    stored = read_analysis(conn)
    with conn.transaction():
        pass_store.rebuild_all(conn, stored.resolution, stored.pass_gap)
    # The fixture's values are what was breathed where it was read: no sensor lag to undo.
    job = JobSettings(window=timedelta(days=window_days), analysis=AnalysisSettings(pass_lag=False))
    return run_once(conn, job, now=now).run_id


def test_hotspots_come_from_the_job_and_find_the_source_only(
    db: psycopg.Connection[Any], client: TestClient
) -> None:
    insert_readings(db, patrol_rows(hot=40.0))
    assert_problem(client.get("/v1/hotspots", params={"pollutant": "pm25"}), 404)
    run_id = analyse(db, BASE + timedelta(days=5))
    doc = client.get("/v1/hotspots", params={"pollutant": "pm25"}).json()
    assert doc["type"] == "FeatureCollection"
    assert doc["meta"]["run"]["id"] == run_id
    assert {f["properties"]["cell"] for f in doc["features"]} == {cell_of(*route_point(HOT))}
    props = doc["features"][0]["properties"]
    assert props["n_passes"] == 16  # 2 vehicles x 2 drives x 4 days
    assert props["vehicles"] == 2
    assert props["enhancement"] == pytest.approx(40.0, abs=2.5)
    assert "not compliance" in doc["meta"]["note"]
    ring = doc["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]


# --- vehicles, pollutants, health ----------------------------------------------------------------


def test_vehicles_show_last_position_and_state(
    db: psycopg.Connection[Any], client: TestClient
) -> None:
    db.execute(
        "INSERT INTO vehicle (vehicle, last_seen, last_seq, last_time, last_lat, last_lon, state)"
        " VALUES ('car-a', now(), 41, %s, 39.9, 116.41, 'online'),"
        " ('car-b', now() - interval '2 hours', 7, %s, 39.91, 116.42, 'offline'),"
        " ('car-c', now() - interval '20 minutes', NULL, NULL, NULL, NULL, NULL)",
        (BASE, BASE - timedelta(hours=2)),
    )
    body = client.get("/v1/vehicles").json()
    assert body["meta"]["found"] == 3
    by_id = {v["vehicle"]: v for v in body["results"]}
    a, b, c = by_id["car-a"], by_id["car-b"], by_id["car-c"]
    assert (a["state"], a["heard_recently"], a["last_seq"]) == ("online", True, 41)
    assert (a["lat"], a["lon"]) == (39.9, 116.41)
    assert datetime.fromisoformat(a["last_time"]) == BASE
    assert (b["state"], b["heard_recently"]) == ("offline", False)
    assert (c["state"], c["heard_recently"], c["lat"]) == (None, False, None)
    wide = client.get("/v1/vehicles", params={"online_window_s": 3600}).json()
    assert {v["vehicle"] for v in wide["results"] if v["heard_recently"]} == {"car-a", "car-c"}


def test_pollutants_list_every_channel_with_units_and_labels(client: TestClient) -> None:
    body = client.get("/v1/pollutants").json()
    assert body["meta"]["found"] == len(CHANNELS)
    by_name = {p["name"]: p for p in body["results"]}
    assert set(by_name) == set(CHANNELS)
    assert by_name["pm25"]["unit"] == "ug/m3"
    assert by_name["co2"]["label_zh"] == "二氧化碳"
    assert by_name["noise"]["energy_mean"] is True
    assert by_name["temperature"]["hotspots"] is False
    assert by_name["pm10"]["hotspot_floor"] == 20.0


def test_healthz_reports_the_database(db: psycopg.Connection[Any], client: TestClient) -> None:
    insert_readings(db, grid_rows())
    db.execute(
        "INSERT INTO dead_letter (topic, reason, detail, payload) VALUES ('t', 'r', 'd', '')"
    )
    db.execute("ANALYZE")
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "readings_estimate": 25,
        "dead_letters_estimate": 1,
    }


def test_without_a_database_healthz_fails_and_bad_input_is_still_a_400() -> None:
    settings = ApiSettings(
        database_url="postgresql://postgres@127.0.0.1:1/none", connect_timeout_s=2
    )
    with TestClient(create_app(settings)) as down:
        health = down.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "error", "database": "unavailable"}
        assert_problem(down.get("/v1/readings"), 503)
        assert_problem(down.get("/v1/readings", params={"bbox": "x"}), 400, "bbox")
        assert down.get("/v1/pollutants").status_code == 200


def test_the_api_connects_read_only(database_url: str) -> None:
    with Database(ApiSettings(database_url=database_url)).connect() as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
        assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/v1/readings", "/v1/cells", "/v1/hotspots", "/v1/vehicles", "/v1/pollutants"):
        assert path in spec["paths"]
    names = {p["name"] for p in spec["paths"]["/v1/readings"]["get"]["parameters"]}
    assert {"from", "to", "vehicle", "bbox", "limit", "cursor"} <= names
    # Every /v1 operation documents its problems: keys, roles, limits.
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method, operation in operations.items():
            assert {"400", "401", "403", "429"} <= operation["responses"].keys(), (path, method)
    # Swagger UI is served from this host once api/dashboard/build has installed it (see
    # tests/unit/api/test_dashboard.py); before, /docs says so and points to the document.
    docs = client.get("/docs")
    assert docs.status_code in (200, 503)
    assert "swagger" in docs.text.lower()


# --- bad input -----------------------------------------------------------------------------------


def forged_cursor(vehicle: str = "car-a", seq: int = 1) -> str:
    doc = [1, "2025-03-03T01:00:00+00:00", vehicle, seq]
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/v1/readings", {"from": "2025-03-04", "to": "2025-03-03"}, "from"),
        ("/v1/readings", {"from": "2025-03-04", "to": "2025-03-04"}, "from"),
        ("/v1/readings", {"from": "yesterday"}, "from"),
        ("/v1/readings", {"to": "2025-13-01"}, "to"),
        ("/v1/readings", {"bbox": "116.4,39.9,116.5"}, "bbox"),
        ("/v1/readings", {"bbox": "116.5,39.9,116.4,40.0"}, "bbox"),
        ("/v1/readings", {"bbox": "a,b,c,d"}, "bbox"),
        ("/v1/readings", {"bbox": "0,-91,1,0"}, "bbox"),
        ("/v1/readings", {"bbox": "nan,0,1,1"}, "bbox"),
        ("/v1/readings", {"cursor": "not-a-cursor"}, "cursor"),
        ("/v1/readings", {"cursor": "WzEsMiwzXQ"}, "cursor"),  # base64 of [1,2,3]
        ("/v1/readings", {"cursor": forged_cursor(vehicle="a\u0000b")}, "cursor"),
        ("/v1/readings", {"cursor": forged_cursor(seq=2**64)}, "cursor"),
        ("/v1/readings", {"from": "0001-01-01T00:00:00+14:00"}, "from"),
        ("/v1/readings", {"limit": 0}, "limit"),
        ("/v1/readings", {"limit": 10_001}, "limit"),
        ("/v1/readings", {"limit": "many"}, "limit"),
        ("/v1/readings", {"vehicle": "no/slashes"}, "vehicle"),
        ("/v1/cells", {}, "pollutant"),
        ("/v1/cells", {"pollutant": "plutonium"}, "pollutant"),
        ("/v1/cells", {"pollutant": "pm25", "resolution": 16}, "resolution"),
        ("/v1/hotspots", {"pollutant": "temperature"}, "pollutant"),
        ("/v1/hotspots", {"pollutant": "humidity"}, "pollutant"),
        ("/v1/hotspots", {"pollutant": "pm25", "min_passes": 0}, "min_passes"),
        ("/v1/hotspots", {"label": "hot"}, "label.0"),
        ("/v1/hotspots", {"sort": "name"}, "sort"),
        ("/v1/hotspots", {"format": "pdf"}, "format"),
        ("/v1/hotspots", {"limit": 0}, "limit"),
        ("/v1/hotspots", {"offset": -1}, "offset"),
        ("/v1/hotspots", {"run": 0}, "run"),
        ("/v1/hotspots", {"bbox": "1,2"}, "bbox"),
        ("/v1/hotspots", {"from": "2025-01-02", "to": "2025-01-01"}, "from"),
        ("/v1/hotspots", {"from": "yesterday"}, "from"),
        ("/v1/hotspots/abc", {}, "hotspot"),
        ("/v1/hotspots/1-2-3", {}, "hotspot"),
        ("/v1/hotspots/1-0", {"max_passes": -1}, "max_passes"),
        ("/v1/reports/inventory", {"pollutant": "humidity"}, "pollutant"),
        ("/v1/reports/inventory", {"top": 0}, "top"),
        ("/v1/reports/inventory", {"grid": 999}, "grid"),
        ("/v1/hotspot-runs", {"limit": 0}, "limit"),
        ("/v1/hotspot-runs/requests/0", {}, "request_id"),
        ("/v1/vehicles", {"online_window_s": 0}, "online_window_s"),
    ],
)
def test_bad_parameters_are_400_problems(
    client: TestClient, path: str, params: dict[str, Any], parameter: str
) -> None:
    assert_problem(client.get(path, params=params), 400, parameter)


def test_unknown_paths_are_404_problems(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing"), 404)


def test_a_plus_sign_lost_in_the_query_string_still_means_an_offset(
    db: psycopg.Connection[Any], client: TestClient
) -> None:
    insert_readings(db, grid_rows())
    # "+08:00" sent unescaped arrives as " 08:00"; 09:00+08:00 is 01:00Z, the first reading.
    response = client.get(
        "/v1/readings?from=2025-03-03T09:00:00+08:00&to=2025-03-03T09:00:10+08:00"
    )
    assert response.status_code == 200, response.text
    assert {r["time"] for r in response.json()["results"]} == {"2025-03-03T01:00:00Z"}
