"""Keys limited to areas: two sub-districts share one deployment and neither sees the other's
cases, grids or hotspots, on every route of the app (the table below must name them all).

The world: a street patrolled by two vehicles with a source in the west (route cell 1) and one
in the east (route cell 5), one analysis run finding both, a west grid of sub-district 西街道 and
an east grid of 东街道, a case with a photo in each grid, and keys of the district (no scope),
of the west (by sub-district) and of the east (by grid id). Reads need a key, as in production.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx import Response
from starlette.routing import BaseRoute, Mount, Route

from api import keys
from api.app import create_app
from api.keys_cli import apikey_command
from api.scopes import EXTENSION, KeyScope
from api.settings import ApiSettings
from store.scratch import scratch_database
from tests.integration.test_api import (
    BASE,
    analyse,
    assert_problem,
    cell_of,
    insert_readings,
    patrol_rows,
    roll_up,
    route_point,
)
from tests.integration.test_api_officers import JPEG, PNG, grid_upload

pytestmark = pytest.mark.integration

WEST_CELL, EAST_CELL = 1, 5
MISSING = 987_654


def two_sources() -> list[Any]:
    rows = patrol_rows(hot=40.0, extras=False)  # a source in route cell 5 (the east grid)
    west = route_point(WEST_CELL)
    for row in rows:
        if (row.lat, row.lon) == west:
            row.values["pm25"] += 40.0
    return rows


def subdistrict_grids() -> dict[str, Any]:
    upload = grid_upload()
    upload["features"][0]["properties"]["subdistrict"] = "西街道"
    upload["features"][1]["properties"]["subdistrict"] = "东街道"
    return upload


@dataclass
class World:
    client: TestClient
    url: str
    district: str  # admin key of the whole deployment
    district_read: str
    west: str  # admin key of sub-district 西街道
    west_read: str
    east: str  # admin key of the east grid, by its id
    grid: dict[str, int]  # west, east
    case: dict[str, int]
    photo: dict[str, int]
    hotspot: dict[str, str]
    site: dict[str, int]
    run_request: int
    ids: dict[str, int] = field(default_factory=dict)

    def get(self, key: str, path: str, **kwargs: Any) -> Response:
        response: Response = self.client.get(path, headers={"X-API-Key": key}, **kwargs)
        return response

    def call(self, method: str, key: str, path: str, **kwargs: Any) -> Response:
        headers = {"X-API-Key": key, **kwargs.pop("headers", {})}
        response: Response = self.client.request(method, path, headers=headers, **kwargs)
        return response


@pytest.fixture(scope="module")
def world(admin_url: str) -> Iterator[World]:
    with scratch_database(admin_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            insert_readings(conn, two_sources())
            roll_up(conn)
            analyse(conn, BASE + timedelta(days=5))
            district = keys.create(conn, "District office", "admin").key
            district_read = keys.create(conn, "District viewer", "read").key
        settings = ApiSettings(
            database_url=url, read_key_required=True, key_per_minute=0, anonymous_per_minute=0
        )
        with TestClient(create_app(settings)) as client:
            auth = {"X-API-Key": district}
            uploaded = client.post("/v1/grids", json=subdistrict_grids(), headers=auth)
            assert uploaded.status_code == 201, uploaded.text
            names = {f["properties"]["name"]: f["id"] for f in uploaded.json()["features"]}
            grid = {"west": names["西区网格"], "east": names["East grid"]}
            with psycopg.connect(url, autocommit=True) as conn:
                west = keys.create(
                    conn, "西街道 desk", "admin", KeyScope(subdistricts=frozenset({"西街道"}))
                ).key
                west_read = keys.create(
                    conn, "西街道 viewer", "read", KeyScope(subdistricts=frozenset({"西街道"}))
                ).key
                east = keys.create(
                    conn, "East grid worker", "admin", KeyScope(frozenset({grid["east"]}))
                ).key
            case, photo = {}, {}
            due = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
            for side, i in (("west", WEST_CELL), ("east", EAST_CELL)):
                opened = client.post(
                    "/v1/cases",
                    json={"pollutant": "pm25", "cell": cell_of(*route_point(i)),
                          "title": f"{side} source"},
                    headers=auth,
                )  # fmt: skip
                assert opened.status_code == 201, opened.text
                assert opened.json()["grid_id"] == grid[side]
                case[side] = opened.json()["id"]
                client.patch(
                    f"/v1/cases/{case[side]}",
                    json={"assignee": f"{side} team", "deadline": due},
                    headers=auth,
                )
                stored = client.post(
                    f"/v1/cases/{case[side]}/photos",
                    content=PNG,
                    headers={**auth, "Content-Type": "image/png"},
                )
                photo[side] = stored.json()["attachments"][0]["id"]
            spots = client.get(
                "/v1/hotspots", params={"format": "json", "grid": grid["west"]}, headers=auth
            ).json()["results"]
            assert len(spots) == 1
            east_spots = client.get(
                "/v1/hotspots", params={"format": "json", "grid": grid["east"]}, headers=auth
            ).json()["results"]
            assert len(east_spots) == 1
            hotspot = {"west": spots[0]["id"], "east": east_spots[0]["id"]}
            site = {"west": spots[0]["site"], "east": east_spots[0]["site"]}
            requested = client.post(
                "/v1/hotspot-runs",
                json={"from": "2025-03-03T00:00:00Z", "to": "2025-03-05T00:00:00Z"},
                headers=auth,
            )
            assert requested.status_code == 202, requested.text
            yield World(
                client, url, district, district_read, west, west_read, east, grid, case, photo,
                hotspot, site, requested.json()["id"],
            )  # fmt: skip


def assert_missing(
    hidden: Response, missing: Response, hidden_id: Any, missing_id: Any, noun: str
) -> None:
    """A thing outside the key's grids is answered exactly as one that does not exist (the
    detail naming `noun` and its id aside)."""
    assert hidden.status_code == missing.status_code, hidden.text
    assert hidden.headers["content-type"] == missing.headers["content-type"]
    shown = hidden.json()
    shown["detail"] = shown["detail"].replace(f"{noun} {hidden_id}", f"{noun} <id>")
    expected = missing.json()
    expected["detail"] = expected["detail"].replace(f"{noun} {missing_id}", f"{noun} <id>")
    assert shown == expected


# --- the probes: what a scoped key gets from each route -----------------------------------------


def cases_list(w: World) -> None:
    for params in ({}, {"overdue": "true"}, {"assignee": "east team"}, {"grid": w.grid["east"]}):
        found = w.get(w.west_read, "/v1/cases", params=params).json()
        assert all(c["grid_id"] == w.grid["west"] for c in found["results"]), params
        assert w.case["east"] not in [c["id"] for c in found["results"]]
        assert found["meta"]["total"] == len(found["results"])
    west = w.get(w.west_read, "/v1/cases", params={"overdue": "true"}).json()["results"]
    assert [c["id"] for c in west] == [w.case["west"]]
    east = w.get(w.east, "/v1/cases", params={"overdue": "true"}).json()["results"]
    assert [c["id"] for c in east] == [w.case["east"]]
    everything = w.get(w.district_read, "/v1/cases", params={"overdue": "true"}).json()
    assert {c["id"] for c in everything["results"]} == set(w.case.values())


def case_get(w: World) -> None:
    hidden = w.get(w.west_read, f"/v1/cases/{w.case['east']}")
    assert_missing(
        hidden, w.get(w.west_read, f"/v1/cases/{MISSING}"), w.case["east"], MISSING, "case"
    )
    assert_problem(hidden, 404)
    own = w.get(w.west_read, f"/v1/cases/{w.case['west']}").json()
    assert own["title"] == "west source"
    assert "(" not in own["created_by"]  # the district's key id is not shown to a scoped key
    assert w.get(w.east, f"/v1/cases/{w.case['east']}").status_code == 200
    assert w.get(w.district_read, f"/v1/cases/{w.case['east']}").status_code == 200


def case_create(w: World) -> None:
    body = {"pollutant": "pm25", "cell": cell_of(*route_point(EAST_CELL))}
    refused = w.call("POST", w.west, "/v1/cases", json=body)
    assert assert_problem(refused, 403, "cell")["type"].endswith("out-of-scope")
    outside = {"pollutant": "pm25", "cell": cell_of(39.95, 116.50)}  # in no grid at all
    assert_problem(w.call("POST", w.west, "/v1/cases", json=outside), 403, "cell")
    made = w.call("POST", w.west, "/v1/cases", json={**body, "cell": cell_of(*route_point(0))})
    assert made.status_code == 201, made.text
    assert made.json()["grid_id"] == w.grid["west"]
    w.ids["made"] = made.json()["id"]


def unchanged(w: World, side: str) -> Callable[[], None]:
    """A check that the case of `side` is as it was when this was called."""
    before = w.get(w.district, f"/v1/cases/{w.case[side]}").json()

    def check() -> None:
        assert w.get(w.district, f"/v1/cases/{w.case[side]}").json() == before

    return check


def case_update(w: World) -> None:
    same = unchanged(w, "east")
    path, body = f"/v1/cases/{w.case['east']}", {"note": "not yours"}
    hidden = w.call("PATCH", w.west, path, json=body)
    missing = w.call("PATCH", w.west, f"/v1/cases/{MISSING}", json=body)
    assert_missing(hidden, missing, w.case["east"], MISSING, "case")
    closing = w.call("PATCH", w.west, path, json={"status": "closed"})
    assert_missing(closing, missing, w.case["east"], MISSING, "case")
    same()
    own = w.call("PATCH", w.east, path, json={"note": "seen"})
    assert own.status_code == 200, own.text


def case_verify(w: World) -> None:
    same = unchanged(w, "east")
    hidden = w.call("POST", w.west, f"/v1/cases/{w.case['east']}/verify")
    missing = w.call("POST", w.west, f"/v1/cases/{MISSING}/verify")
    assert_missing(hidden, missing, w.case["east"], MISSING, "case")
    same()
    own = w.call("POST", w.west, f"/v1/cases/{w.case['west']}/verify")
    assert_problem(own, 409)  # found, but not treated


def photo_add(w: World) -> None:
    same = unchanged(w, "east")
    png = {"content": PNG, "headers": {"Content-Type": "image/png"}}
    hidden = w.call("POST", w.west, f"/v1/cases/{w.case['east']}/photos", **png)
    missing = w.call("POST", w.west, f"/v1/cases/{MISSING}/photos", **png)
    assert_missing(hidden, missing, w.case["east"], MISSING, "case")
    same()
    jpeg = {"content": JPEG, "headers": {"Content-Type": "image/jpeg"}}
    assert w.call("POST", w.west, f"/v1/cases/{w.case['west']}/photos", **jpeg).status_code == 201


def photo_get(w: World) -> None:
    east, photo = w.case["east"], w.photo["east"]
    hidden = w.get(w.west_read, f"/v1/cases/{east}/photos/{photo}")
    missing = w.get(w.west_read, f"/v1/cases/{east}/photos/{MISSING}")
    assert_missing(hidden, missing, photo, MISSING, "photo")
    assert hidden.status_code == 404
    assert w.get(w.east, f"/v1/cases/{east}/photos/{photo}").content == PNG
    own = w.get(w.west_read, f"/v1/cases/{w.case['west']}/photos/{w.photo['west']}")
    assert own.content == PNG


def grids_list(w: World) -> None:
    west = w.get(w.west_read, "/v1/grids").json()
    assert [f["id"] for f in west["features"]] == [w.grid["west"]]
    assert west["features"][0]["properties"]["subdistrict"] == "西街道"
    assert west["meta"]["found"] == 1
    assert [f["id"] for f in w.get(w.east, "/v1/grids").json()["features"]] == [w.grid["east"]]
    assert len(w.get(w.district_read, "/v1/grids").json()["features"]) == 2


def grid_get(w: World) -> None:
    hidden = w.get(w.west_read, f"/v1/grids/{w.grid['east']}")
    missing = w.get(w.west_read, f"/v1/grids/{MISSING}")
    assert_missing(hidden, missing, w.grid["east"], MISSING, "grid")
    assert w.get(w.west_read, f"/v1/grids/{w.grid['west']}").status_code == 200


def grid_upload_refused(w: World) -> None:
    for key in (w.west, w.east):
        refused = w.call("POST", key, "/v1/grids", json=subdistrict_grids())
        assert "without a scope" in assert_problem(refused, 403)["detail"]
    again = w.call("POST", w.district, "/v1/grids", json=subdistrict_grids())
    assert again.status_code == 201
    assert sorted(f["id"] for f in again.json()["features"]) == sorted(w.grid.values())


def grid_delete_refused(w: World) -> None:
    for key, side in ((w.west, "west"), (w.east, "east"), (w.west, "east")):
        assert_problem(w.call("DELETE", key, f"/v1/grids/{w.grid[side]}"), 403)
    assert w.get(w.district_read, f"/v1/grids/{w.grid['east']}").status_code == 200


def hotspots_list(w: World) -> None:
    for fmt in ("geojson", "json"):
        shown = w.get(w.west_read, "/v1/hotspots", params={"format": fmt}).json()
        items = shown["features"] if fmt == "geojson" else shown["results"]
        props = [i.get("properties", i) for i in items]
        assert [p["id"] for p in props] == [w.hotspot["west"]]
        assert {p["grid_name"] for p in props} == {"西区网格"}
        assert shown["meta"]["total"] == 1
    csv = w.get(w.west_read, "/v1/hotspots", params={"format": "csv"}).text
    assert cell_of(*route_point(WEST_CELL)) in csv
    assert cell_of(*route_point(EAST_CELL)) not in csv
    xlsx = w.get(w.west_read, "/v1/hotspots", params={"format": "xlsx"})
    assert xlsx.status_code == 200
    hidden = w.get(w.west_read, "/v1/hotspots", params={"grid": w.grid["east"]})
    missing = w.get(w.west_read, "/v1/hotspots", params={"grid": MISSING})
    assert_missing(hidden, missing, w.grid["east"], MISSING, "grid")
    everything = w.get(w.district_read, "/v1/hotspots", params={"format": "json"}).json()
    assert everything["meta"]["total"] == 2


def hotspot_get(w: World) -> None:
    hidden = w.get(w.west_read, f"/v1/hotspots/{w.hotspot['east']}")
    nowhere = "1-999"
    assert_missing(
        hidden, w.get(w.west_read, f"/v1/hotspots/{nowhere}"), w.hotspot["east"], nowhere, "hotspot"
    )
    own = w.get(w.west_read, f"/v1/hotspots/{w.hotspot['west']}").json()
    assert own["properties"]["grid_id"] == w.grid["west"]
    assert w.get(w.east, f"/v1/hotspots/{w.hotspot['east']}").status_code == 200


def site_get(w: World) -> None:
    hidden = w.get(w.west_read, f"/v1/sites/{w.site['east']}")
    assert_missing(
        hidden, w.get(w.west_read, f"/v1/sites/{MISSING}"), w.site["east"], MISSING, "site"
    )
    own = w.get(w.west_read, f"/v1/sites/{w.site['west']}").json()
    assert own["latest"]["grid_id"] == w.grid["west"]


def inventory(w: World) -> None:
    page = w.get(w.west_read, "/v1/reports/inventory").text
    assert "西区网格" in page
    assert "west source" in page
    assert "East grid" not in page
    assert "east source" not in page
    assert cell_of(*route_point(EAST_CELL)) not in page
    whole = w.get(w.district_read, "/v1/reports/inventory").text
    assert "East grid" in whole
    assert "east source" in whole
    hidden = w.get(w.west_read, "/v1/reports/inventory", params={"grid": w.grid["east"]})
    missing = w.get(w.west_read, "/v1/reports/inventory", params={"grid": MISSING})
    assert_missing(hidden, missing, w.grid["east"], MISSING, "grid")


def live(w: World) -> None:
    # Without a broker the feed is off for everyone; which hotspot events a scoped viewer gets
    # is tested in tests/unit/api/test_scopes.py.
    assert_problem(w.get(w.west_read, "/v1/live"), 503)


def run_request_refused(w: World) -> None:
    body = {"from": "2025-03-03T00:00:00Z", "to": "2025-03-04T00:00:00Z"}
    assert_problem(w.call("POST", w.west, "/v1/hotspot-runs", json=body), 403)


def same_for_everyone(
    where: str | Callable[[World], str], **params: Any
) -> Callable[[World], None]:
    """A route whose answer does not depend on the key's grids."""

    def probe(w: World) -> None:
        path = where if isinstance(where, str) else where(w)
        scoped = w.get(w.west_read, path, params=params)
        whole = w.get(w.district_read, path, params=params)
        assert scoped.status_code == whole.status_code, scoped.text
        if path != "/healthz":  # its timings differ
            assert scoped.content == whole.content

    return probe


CELL = cell_of(*route_point(EAST_CELL))
WINDOW = {"pollutant": "pm25", "from": "2025-03-03T00:00:00Z", "to": "2025-03-08T00:00:00Z"}
Probe = Callable[[World], None]
# (method, path template) -> (what a scoped key gets, the probe showing it)
ROUTES: dict[tuple[str, str], tuple[str, Probe]] = {
    ("GET", "/v1/cases"): ("grids", cases_list),
    ("GET", "/v1/cases/{case_id}"): ("grids", case_get),
    ("POST", "/v1/cases"): ("grids", case_create),
    ("PATCH", "/v1/cases/{case_id}"): ("grids", case_update),
    ("POST", "/v1/cases/{case_id}/verify"): ("grids", case_verify),
    ("POST", "/v1/cases/{case_id}/photos"): ("grids", photo_add),
    ("GET", "/v1/cases/{case_id}/photos/{photo_id}"): ("grids", photo_get),
    ("GET", "/v1/grids"): ("grids", grids_list),
    ("GET", "/v1/grids/{grid_id}"): ("grids", grid_get),
    ("POST", "/v1/grids"): ("unscoped", grid_upload_refused),
    ("DELETE", "/v1/grids/{grid_id}"): ("unscoped", grid_delete_refused),
    ("GET", "/v1/hotspots"): ("grids", hotspots_list),
    ("GET", "/v1/hotspots/{hotspot}"): ("grids", hotspot_get),
    ("GET", "/v1/sites/{site_id}"): ("grids", site_get),
    ("GET", "/v1/reports/inventory"): ("grids", inventory),
    ("GET", "/v1/live"): ("grids", live),
    ("POST", "/v1/hotspot-runs"): ("unscoped", run_request_refused),
    ("GET", "/v1/hotspot-runs"): ("deployment", same_for_everyone("/v1/hotspot-runs")),
    ("GET", "/v1/hotspot-runs/requests/{request_id}"): (
        "deployment",
        same_for_everyone(lambda w: f"/v1/hotspot-runs/requests/{w.run_request}"),
    ),
    ("GET", "/v1/readings"): ("deployment", same_for_everyone("/v1/readings", limit=50)),
    ("GET", "/v1/cells"): ("deployment", same_for_everyone("/v1/cells", **WINDOW)),
    ("GET", "/v1/cells/{cell}"): ("deployment", same_for_everyone(f"/v1/cells/{CELL}", **WINDOW)),
    ("GET", "/v1/vehicles"): ("deployment", same_for_everyone("/v1/vehicles")),
    ("GET", "/v1/vehicles/{vehicle_id}"): ("deployment", same_for_everyone("/v1/vehicles/car-a")),
    ("GET", "/v1/vehicles/{vehicle_id}/track"): (
        "deployment",
        same_for_everyone("/v1/vehicles/car-a/track", **{k: WINDOW[k] for k in ("from", "to")}),
    ),
    ("GET", "/v1/streets"): ("deployment", same_for_everyone("/v1/streets")),
    ("GET", "/v1/pollutants"): ("deployment", same_for_everyone("/v1/pollutants")),
    ("GET", "/healthz"): ("deployment", same_for_everyone("/healthz")),
    ("GET", "/dashboard/config.json"): ("deployment", same_for_everyone("/dashboard/config.json")),
    ("GET", "/"): ("deployment", same_for_everyone("/")),
    ("GET", "/docs"): ("deployment", same_for_everyone("/docs")),
}


def api_routes(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """The app's own routes, also those of included routers (FastAPI keeps an included router
    as one entry of `app.routes`, the router's routes under `original_router`)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):
            inner = prefix + str(getattr(route.include_context, "prefix", ""))  # type: ignore[attr-defined]
            yield from api_routes(route.original_router.routes, inner)  # type: ignore[attr-defined]
        else:  # the OpenAPI document and the static files: no officer data
            assert isinstance(route, Route | Mount), route


def app_routes() -> dict[tuple[str, str], str | None]:
    """Every (method, path) the app serves, with the scope decision its operation declares."""
    app = create_app(ApiSettings(database_url="postgresql://nobody@127.0.0.1:9/none"))
    found = {}
    for path, route in api_routes(app.routes):
        declared = (route.openapi_extra or {}).get(EXTENSION)
        for method in route.methods or ():
            found[(method, path)] = declared
    documented = {
        (method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops
    }
    assert documented <= set(found), "the walk above missed some routes"
    return found


def test_every_route_declares_what_a_scoped_key_gets_and_is_probed_here() -> None:
    served = app_routes()
    undeclared = sorted(r for r, kind in served.items() if kind is None)
    assert not undeclared, f"routes without {EXTENSION} (see api/scopes.py): {undeclared}"
    assert set(served) == set(ROUTES), "a route was added or removed: give it a probe in ROUTES"
    assert {r: kind for r, (kind, _) in ROUTES.items()} == served


@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_a_scoped_key_sees_only_its_own_areas(world: World, route: tuple[str, str]) -> None:
    _, probe = ROUTES[route]
    probe(world)


def test_the_openapi_document_names_each_operations_scope(world: World) -> None:
    paths = world.client.get("/openapi.json").json()["paths"]
    assert paths["/v1/cases"]["get"][EXTENSION] == "grids"
    assert paths["/v1/grids"]["post"][EXTENSION] == "unscoped"
    assert paths["/v1/readings"]["get"][EXTENSION] == "deployment"


def test_a_key_made_before_scopes_sees_everything_and_one_whose_grids_go_sees_nothing(
    admin_url: str,
) -> None:
    with scratch_database(admin_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            old = keys.create(conn, "Made long ago", "admin").key
        with TestClient(create_app(ApiSettings(database_url=url))) as client:
            auth = {"X-API-Key": old}
            grids = client.post("/v1/grids", json=subdistrict_grids(), headers=auth).json()
            east = next(
                f["id"] for f in grids["features"] if f["properties"]["name"] == "East grid"
            )
            with psycopg.connect(url, autocommit=True) as conn:
                assert conn.execute("SELECT scope_grids FROM api_key").fetchone() == (None,)
                worker = keys.create(conn, "East worker", "read", KeyScope(frozenset({east}))).key
            opened = client.post(
                "/v1/cases",
                json={"pollutant": "pm25", "cell": cell_of(*route_point(EAST_CELL))},
                headers=auth,
            ).json()
            seen = client.get("/v1/cases", headers={"X-API-Key": worker}).json()
            assert [c["id"] for c in seen["results"]] == [opened["id"]]
            assert client.delete(f"/v1/grids/{east}", headers=auth).status_code == 204
            client.app.state.key_cache.forget(keys.key_id_of(worker))  # type: ignore[attr-defined]
            for path in ("/v1/cases", "/v1/grids"):
                response = client.get(path, headers={"X-API-Key": worker}).json()
                assert response.get("results", response.get("features")) == [], path
            assert_problem(
                client.get(f"/v1/cases/{opened['id']}", headers={"X-API-Key": worker}), 404
            )
            assert len(client.get("/v1/cases", headers=auth).json()["results"]) == 1


def test_apikey_command_makes_scoped_keys_and_refuses_unknown_grids(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVPATROL_DATABASE_URL", world.url)
    parser = argparse.ArgumentParser()
    run = apikey_command(parser)

    def apikey(*argv: str) -> tuple[int, str, str]:
        code = run(parser.parse_args(list(argv)))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = apikey("grids")
    assert code == 0
    assert f"{world.grid['west']}  西街道  西区网格" in out
    code, out, err = apikey(
        "create", "--name", "Both", "--grid", str(world.grid["east"]), "--subdistrict", "西街道"
    )
    assert code == 0, err
    made = keys.key_id_of(out.strip())
    assert made is not None
    assert f"scope: grids {world.grid['east']}; sub-districts 西街道" in err
    assert "read_key_required" in err  # this config lets anonymous callers read everything
    code, out, err = apikey("list")
    listed = [line for line in out.splitlines() if line.startswith(made)]
    assert listed == [listed[0]]
    assert f"[grids {world.grid['east']}; sub-districts 西街道]" in listed[0]
    assert "[whole deployment]" in out
    before = out.count("\n")
    for argv, problem in [
        (("--grid", str(MISSING)), f"--grid: no grid {MISSING}"),
        (("--subdistrict", "北街道"), "--subdistrict: no grid is in sub-district '北街道'"),
        (("--grid", "3,x"), "--grid: 'x' in '3,x' is not a grid id"),
        (("--grid", ""), "--grid"),
        (("--subdistrict", "a\tb"), "--subdistrict"),
    ]:
        code, out, err = apikey("create", "--name", "Bad", *argv)
        assert code == 2, argv
        assert problem in err, err
        assert out == ""
    assert apikey("list")[1].count("\n") == before  # nothing was stored
