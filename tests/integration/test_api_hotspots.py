"""The hotspot routes over the analysis job's stored runs, against the real PostgreSQL: the list
and its filters, formats and paging, one hotspot's evidence and history, run requests, the
inventory report, and the no-run problem."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from api import keys
from api.app import create_app
from api.settings import ApiSettings
from hotspots.analysis.passes import PassTable
from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.synthetic import (
    SHUANGJING,
    Source,
    SyntheticWorld,
    as_stored,
    generate,
    offset,
)
from hotspots.job import JobSettings, run_once, serve_pending
from ingest import pass_store
from store.analysis_meta import read_analysis
from tests.integration.test_api import assert_problem
from tests.services import scratch_database

pytestmark = pytest.mark.integration

SOURCE = offset(SHUANGJING, -125.0, 125.0)


@dataclass
class Stored:
    client: TestClient
    url: str
    first: int  # run ids
    second: int
    end: datetime
    admin_key: str
    read_key: str


def store_source_passes(
    conn: psycopg.Connection[Any], *, days: int, pollutants: tuple[str, ...], seed: int
) -> PassTable:
    """Two vehicles' synthetic passes past a PM2.5 source at SOURCE, stored as the ingest
    keeps them; the table."""
    resolution = read_analysis(conn).resolution
    table = generate(
        SyntheticWorld(
            resolution=resolution,
            vehicles=2,
            days=days,
            trips_per_day=2,
            pollutants=pollutants,
            sources=(Source(*SOURCE, "pm25", 40.0, 40.0),),
            seed=seed,
        )
    )
    with conn.transaction(), conn.cursor() as cur:
        pass_store.store(cur, resolution, as_stored(table))
    return table


@pytest.fixture(scope="module")
def stored(admin_url: str) -> Iterator[Stored]:
    """Synthetic passes with a PM2.5 source, analysed twice (so the second run has history)."""
    with scratch_database(admin_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            table = store_source_passes(conn, days=12, pollutants=("pm25", "noise"), seed=4)
            end = datetime.fromtimestamp(float(table.end.max()), UTC) + timedelta(hours=1)
            # synthetic passes carry no sensor lag, so the job does not undo one; then a
            # hotspot's level is the median of its peak cell's stored pass values
            job = JobSettings(window=timedelta(days=30), analysis=AnalysisSettings(pass_lag=False))
            first = run_once(conn, job, now=end).run_id
            second = run_once(conn, job, now=end).run_id
            admin = keys.create(conn, "Officer Wang", "admin").key
            read = keys.create(conn, "Integrator", "read").key
        with TestClient(create_app(ApiSettings(database_url=url))) as client:
            yield Stored(client, url, first, second, end, admin, read)


def test_without_any_run_hotspots_and_reports_are_404_problems(database_url: str) -> None:
    with TestClient(create_app(ApiSettings(database_url=database_url))) as client:
        for path in ("/v1/hotspots", "/v1/reports/inventory"):
            body = assert_problem(client.get(path), 404)
            assert body["type"].endswith("no-hotspot-run")
            assert "has not run yet" in body["detail"]
        assert client.get("/v1/hotspot-runs").json()["results"] == []


def test_the_list_is_the_newest_run_most_severe_first(stored: Stored) -> None:
    doc = stored.client.get("/v1/hotspots").json()
    assert doc["type"] == "FeatureCollection"
    meta = doc["meta"]
    assert meta["run"]["id"] == stored.second
    assert meta["total"] == meta["run"]["hotspots"] == meta["found"] > 0
    # Across pollutants by severity (index points the place adds), those without one last.
    severities = [f["properties"]["severity"] for f in doc["features"]]
    rated = [s for s in severities if s is not None]
    assert severities[: len(rated)] == rated
    assert rated == sorted(rated, reverse=True)
    in_run_order = stored.client.get("/v1/hotspots", params={"sort": "rank"}).json()
    ranks = [f["properties"]["rank"] for f in in_run_order["features"]]
    assert ranks == sorted(ranks)
    assert sorted(ranks) == sorted(f["properties"]["rank"] for f in doc["features"])
    top = doc["features"][0]
    assert top["id"] == f"{stored.second}-{ranks[0]}" == top["properties"]["id"]
    assert top["geometry"]["type"] in ("Polygon", "MultiPolygon")
    props = top["properties"]
    assert props["cell"] in props["cells"]
    assert props["reasons"]
    assert props["profile"].keys() >= {"all_day"}
    assert props["n_drives"] > 0
    assert "drives" not in props  # the list of drives is evidence: GET /v1/hotspots/{id}


def test_filters_sort_paging_and_format(stored: Stored) -> None:
    get = stored.client.get
    pm25 = get("/v1/hotspots", params={"pollutant": "pm25", "stratum": "all_day"}).json()
    assert pm25["features"]
    assert {f["properties"]["pollutant"] for f in pm25["features"]} == {"pm25"}
    assert {f["properties"]["stratum"] for f in pm25["features"]} == {"all_day"}
    lat, lon = pm25["features"][0]["properties"]["lat"], pm25["features"][0]["properties"]["lon"]
    assert abs(lat - SOURCE[0]) < 0.001
    assert abs(lon - SOURCE[1]) < 0.001

    labels = {f["properties"]["label"] for f in get("/v1/hotspots").json()["features"]}
    for label in labels:
        only = get("/v1/hotspots", params={"label": label}).json()["features"]
        assert only
        assert {f["properties"]["label"] for f in only} == {label}
    both = get("/v1/hotspots", params=[("label", "persistent"), ("label", "candidate")]).json()
    assert {f["properties"]["label"] for f in both["features"]} <= {"persistent", "candidate"}

    assert get("/v1/hotspots", params={"min_passes": 100_000}).json()["features"] == []
    assert get("/v1/hotspots", params={"pollutant": "no2"}).json()["features"] == []
    near = f"{SOURCE[1] - 0.002},{SOURCE[0] - 0.002},{SOURCE[1] + 0.002},{SOURCE[0] + 0.002}"
    assert get("/v1/hotspots", params={"bbox": near}).json()["features"]
    assert get("/v1/hotspots", params={"bbox": "0,0,1,1"}).json()["features"] == []
    assert_problem(get("/v1/hotspots", params={"stratum": "breakfast"}), 400, "stratum")
    assert_problem(get("/v1/hotspots", params={"grid": 5}), 400, "grid")

    by_excess = get("/v1/hotspots", params={"sort": "excess"}).json()["features"]
    excess = [f["properties"]["excess"] for f in by_excess]
    assert excess == sorted(excess, reverse=True)
    by_passes = get("/v1/hotspots", params={"sort": "n_passes"}).json()["features"]
    passes = [f["properties"]["n_passes"] for f in by_passes]
    assert passes == sorted(passes, reverse=True)

    every = get("/v1/hotspots", params={"format": "json"}).json()
    assert "features" not in every
    ids = [r["id"] for r in every["results"]]
    page = get("/v1/hotspots", params={"format": "json", "limit": 1}).json()
    assert page["meta"]["found"] == 1
    assert page["meta"]["total"] == len(ids)
    assert [r["id"] for r in page["results"]] == ids[:1]
    past = get("/v1/hotspots", params={"format": "json", "offset": len(ids)}).json()
    assert (past["meta"]["found"], past["meta"]["total"], past["results"]) == (0, len(ids), [])


def test_a_time_range_picks_the_newest_run_whose_window_holds_it(stored: Stored) -> None:
    get = stored.client.get
    inside = {"from": (stored.end - timedelta(days=5)).isoformat(), "to": stored.end.isoformat()}
    assert get("/v1/hotspots", params=inside).json()["meta"]["run"]["id"] == stored.second
    assert get("/v1/hotspots", params={"run": stored.first}).json()["meta"]["run"]["id"] == (
        stored.first
    )
    later = {"to": (stored.end + timedelta(days=3)).isoformat()}
    body = assert_problem(get("/v1/hotspots", params=later), 404)
    assert "POST /v1/hotspot-runs" in body["detail"]
    assert_problem(get("/v1/hotspots", params={"run": 424242}), 404)


def test_one_hotspot_with_its_evidence_and_history(stored: Stored) -> None:
    get = stored.client.get
    top = get("/v1/hotspots", params={"pollutant": "pm25", "stratum": "all_day"}).json()
    feature = top["features"][0]
    detail = get(f"/v1/hotspots/{feature['id']}").json()
    assert detail["id"] == feature["id"]
    assert detail["properties"] == feature["properties"]
    evidence = detail["evidence"]
    assert {c["cell"] for c in evidence["cells"]} == set(feature["properties"]["cells"])
    assert sum(c["passes"] for c in evidence["cells"]) == evidence["passes_total"] > 0
    passes = evidence["passes"]
    assert len(passes) == evidence["passes_total"]
    assert all(p["cell"] in feature["properties"]["cells"] for p in passes)
    assert all("all_day" in p["strata"] for p in passes)
    starts = [p["start"] for p in passes]
    assert starts == sorted(starts)
    peak = [p["value"] for p in passes if p["cell"] == feature["properties"]["cell"]]
    assert float(np.median(peak)) == pytest.approx(feature["properties"]["level"], rel=0.01)
    assert evidence["profile"] == feature["properties"]["profile"]
    assert evidence["band"]["indicative"] is True
    assert len(evidence["drives"]) == feature["properties"]["n_drives"] > 0
    assert "drives" not in feature["properties"]
    assert [h["run_id"] for h in evidence["history"]] == [stored.first]
    assert evidence["history"][0]["label"]

    few = get(f"/v1/hotspots/{feature['id']}", params={"max_passes": 3}).json()["evidence"]
    assert few["passes"] == passes[-3:]
    assert_problem(get(f"/v1/hotspots/{stored.second}-99999"), 404)
    assert_problem(get("/v1/hotspots/1-x"), 400, "hotspot")


def test_a_run_for_a_window_is_requested_and_answered_later(stored: Stored) -> None:
    client = stored.client
    start = stored.end - timedelta(days=10)
    body = {"from": start.isoformat(), "to": stored.end.isoformat()}
    assert_problem(client.post("/v1/hotspot-runs", json=body), 401)
    read = {"X-API-Key": stored.read_key}
    assert_problem(client.post("/v1/hotspot-runs", json=body, headers=read), 403)
    auth = {"X-API-Key": stored.admin_key}
    made = client.post("/v1/hotspot-runs", json=body, headers=auth)
    assert made.status_code == 202, made.text
    request = made.json()
    assert request["status"] == "pending"
    assert request["run_id"] is None
    assert request["requested_by"].startswith("Officer Wang")

    with psycopg.connect(stored.url, autocommit=True) as conn:
        (served,) = serve_pending(conn, JobSettings())
    assert served.status == "done"
    answered = client.get(f"/v1/hotspot-runs/requests/{request['id']}").json()
    assert answered["status"] == "done"
    run = client.get("/v1/hotspots", params={"run": answered["run_id"]}).json()["meta"]["run"]
    assert datetime.fromisoformat(run["window_start"]) == start
    listed = client.get("/v1/hotspot-runs").json()
    assert listed["results"][0]["id"] == answered["run_id"]
    assert listed["requests"][0]["id"] == request["id"]

    for bad, parameter in (
        ({"from": body["to"], "to": body["from"]}, "from"),
        ({"from": "2020-01-01", "to": "2099-01-01"}, "to"),
        ({"from": "2000-01-01", "to": "2020-01-01"}, "from"),
        ({"from": "soon", "to": body["to"]}, "from"),
    ):
        assert_problem(client.post("/v1/hotspot-runs", json=bad, headers=auth), 400, parameter)
    assert_problem(client.post("/v1/hotspot-runs", json={"from": "x"}, headers=auth), 400)
    assert_problem(client.get("/v1/hotspot-runs/requests/4242"), 404)


def test_the_inventory_report_is_printable_html_with_a_map(stored: Stored) -> None:
    response = stored.client.get("/v1/reports/inventory", params={"pollutant": "pm25"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.count("<svg") == 1
    assert 'class="hotspots"' in page
    assert "@media print" in page
    assert "Hotspots, ranked" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "Cases and verification" in page
    near = f"{SOURCE[1] - 0.002},{SOURCE[0] - 0.002},{SOURCE[1] + 0.002},{SOURCE[0] + 0.002}"
    boxed = stored.client.get("/v1/reports/inventory", params={"bbox": near}).text
    assert "label-" in boxed
    empty = stored.client.get("/v1/reports/inventory", params={"bbox": "0,0,1,1"}).text
    assert "No hotspot in this period and area." in empty


def test_evidence_of_a_run_without_stored_cell_figures_reads_every_pass(stored: Stored) -> None:
    get = stored.client.get
    feature = get("/v1/hotspots", params={"pollutant": "pm25"}).json()["features"][0]
    now = get(f"/v1/hotspots/{feature['id']}").json()["evidence"]
    run_id, rank = (int(x) for x in feature["id"].split("-"))
    with psycopg.connect(stored.url, autocommit=True) as conn:
        saved = conn.execute(
            "SELECT cell, passes, median FROM hotspot_cell WHERE run_id = %s AND rank = %s",
            (run_id, rank),
        ).fetchall()
        conn.execute(
            "UPDATE hotspot_cell SET passes = NULL, median = NULL WHERE run_id = %s AND rank = %s",
            (run_id, rank),
        )
        try:
            before = get(f"/v1/hotspots/{feature['id']}").json()["evidence"]
        finally:
            for cell, passes, median in saved:
                conn.execute(
                    "UPDATE hotspot_cell SET passes = %s, median = %s"
                    " WHERE run_id = %s AND rank = %s AND cell = %s",
                    (passes, median, run_id, rank, cell),
                )
    assert before["passes_total"] == now["passes_total"]
    assert before["passes"] == now["passes"]
    assert [(c["cell"], c["passes"]) for c in before["cells"]] == [
        (c["cell"], c["passes"]) for c in now["cells"]
    ]
    for old, new in zip(before["cells"], now["cells"], strict=True):
        assert old["median"] == pytest.approx(new["median"])


def test_a_place_keeps_its_site_across_runs_and_after_pruning(stored: Stored) -> None:
    get = stored.client.get
    first = get("/v1/hotspots", params={"run": stored.first}).json()["features"]
    second = get("/v1/hotspots", params={"run": stored.second}).json()["features"]

    def key(feature: dict[str, Any]) -> tuple[str, str, str]:
        p = feature["properties"]
        return (p["pollutant"], p["stratum"], p["cell"])

    sites_first = {key(f): f["properties"]["site"] for f in first}
    sites_second = {key(f): f["properties"]["site"] for f in second}
    assert sites_first == sites_second  # the same analysis twice: every place keeps its site
    assert None not in sites_second.values()
    assert len(set(sites_second.values())) == len(sites_second)  # one site per listed place
    top = second[0]["properties"]
    site = get(f"/v1/sites/{top['site']}").json()
    assert site["pollutant"] == top["pollutant"]
    assert site["runs"] >= 2  # other tests of this module may have added runs
    listed = [h["run_id"] for h in site["history"]]
    assert listed.index(stored.second) < listed.index(stored.first)
    assert top["id"] in [h["id"] for h in site["history"]]
    assert_problem(get("/v1/sites/999999999"), 404)
    assert_problem(get("/v1/sites/0"), 400, "site_id")


def test_a_site_outlives_its_runs(admin_url: str) -> None:
    with scratch_database(admin_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            table = store_source_passes(conn, days=10, pollutants=("pm25",), seed=5)
            end = datetime.fromtimestamp(float(table.end.max()), UTC) + timedelta(hours=1)
            job = JobSettings(
                window=timedelta(days=30), keep_runs=1, analysis=AnalysisSettings(pass_lag=False)
            )
            run_once(conn, job, now=end)
            first_sites = {r[0] for r in conn.execute("SELECT site_id FROM hotspot").fetchall()}
            run_once(conn, job, now=end)  # prunes the first run
            assert conn.execute("SELECT count(*) FROM hotspot_run").fetchone() == (1,)
        with TestClient(create_app(ApiSettings(database_url=url))) as client:
            for site_id in first_sites:
                site = client.get(f"/v1/sites/{site_id}").json()
                assert site["runs"] == 2
                assert len(site["history"]) == 1  # the pruned run is gone, the site is not


def street_file(path: Path, lat: float, lon: float, zh: str, en: str) -> Path:
    """A street file of one east-west street through (lat, lon), about 500 m long."""
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[lon - 0.003, lat], [lon + 0.003, lat]],
                },
                "properties": {"name": zh, "name:en": en},
            }
        ],
    }
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def test_hotspots_name_their_street_from_the_street_layer(stored: Stored, tmp_path: Path) -> None:
    lat, lon = SOURCE
    streets = street_file(tmp_path / "streets.geojson", lat, lon, "测试街", "Test Street")
    settings = ApiSettings(database_url=stored.url, streets_file=str(streets))
    with TestClient(create_app(settings)) as client:
        layer = client.get("/v1/streets").json()
        assert layer["features"][0]["properties"]["name:en"] == "Test Street"
        spots = client.get("/v1/hotspots", params={"pollutant": "pm25"}).json()["features"]
        near = [f for f in spots if abs(f["properties"]["lat"] - lat) < 0.0004]
        assert near
        assert {f["properties"]["street"] for f in near} == {"测试街"}
        site = client.get(f"/v1/sites/{near[0]['properties']['site']}").json()
        assert site["latest"]["street"] == "测试街"
    # Without a street file, no street and an empty layer.
    assert stored.client.get("/v1/streets").json()["features"] == []
    plain = stored.client.get("/v1/hotspots", params={"pollutant": "pm25"}).json()["features"]
    assert {f["properties"]["street"] for f in plain} == {None}


def test_hotspots_as_csv_with_units(stored: Stored) -> None:
    response = stored.client.get("/v1/hotspots", params={"format": "csv", "pollutant": "pm25"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    text = response.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    listed = stored.client.get("/v1/hotspots", params={"format": "json", "pollutant": "pm25"})
    assert [r["id"] for r in rows] == [h["id"] for h in listed.json()["results"]]
    assert {r["unit"] for r in rows} == {"ug/m3"}
    assert all(r["site"] for r in rows)


def test_hotspots_page_by_cursor(stored: Stored) -> None:
    get = stored.client.get
    every = get("/v1/hotspots", params={"format": "json", "limit": 1000}).json()["results"]
    seen: list[str] = []
    params: dict[str, Any] = {"format": "json", "limit": 2}
    for _ in range(100):
        page = get("/v1/hotspots", params=params).json()
        seen.extend(h["id"] for h in page["results"])
        token = page["meta"]["next_cursor"]
        if token is None:
            break
        params = {"format": "json", "limit": 2, "cursor": token}
    assert seen == [h["id"] for h in every]
    # A token is refused by another query, and garbage is a 400 naming it.
    first = get("/v1/hotspots", params={"format": "json", "limit": 1}).json()["meta"]
    if first["next_cursor"]:
        other = get(
            "/v1/hotspots",
            params={"format": "json", "pollutant": "noise", "cursor": first["next_cursor"]},
        )
        assert_problem(other, 400, "cursor")
    assert_problem(get("/v1/hotspots", params={"cursor": "not-a-cursor"}), 400, "cursor")


def test_hotspots_as_an_excel_workbook(stored: Stored) -> None:
    response = stored.client.get("/v1/hotspots", params={"format": "xlsx", "pollutant": "pm25"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    with zipfile.ZipFile(io.BytesIO(response.content)) as book:
        strings = book.read("xl/sharedStrings.xml").decode()
    listed = stored.client.get("/v1/hotspots", params={"format": "json", "pollutant": "pm25"})
    for name in ("severity", "street", "unit", "ug/m3", listed.json()["results"][0]["id"]):
        assert name in strings
