"""API keys and roles, rate limits, management grids and cases, against the real PostgreSQL."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import h3
import psycopg
import pytest
from fastapi.testclient import TestClient

from api import keys
from api.app import create_app
from api.keys_cli import apikey_command
from api.ratelimit import FixedWindowLimiter
from api.settings import ApiSettings
from hotspots.verification import BeforeAfterRequest, BeforeAfterResult, stored_before_after
from tests.integration.test_api import (
    BASE,
    HOT,
    analyse,
    assert_problem,
    cell_of,
    insert_readings,
    patrol_rows,
    route_point,
)
from tests.services import scratch_database

pytestmark = pytest.mark.integration


@pytest.fixture
def admin_key(db: psycopg.Connection[Any]) -> str:
    return keys.create(db, "Officer Wang", "admin").key


@pytest.fixture
def read_key(db: psycopg.Connection[Any]) -> str:
    return keys.create(db, "Integrator", "read").key


def make_client(database_url: str, **settings: Any) -> TestClient:
    return TestClient(create_app(ApiSettings(database_url=database_url, **settings)))


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with make_client(database_url) as test_client:
        yield test_client


@dataclass
class Shared:
    """One database for the many bad-request cases, which must leave it as they found it."""

    client: TestClient
    admin_key: str
    read_key: str


@pytest.fixture(scope="module")
def shared(admin_url: str) -> Iterator[Shared]:
    with scratch_database(admin_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            admin = keys.create(conn, "Officer Wang", "admin").key
            read = keys.create(conn, "Integrator", "read").key
        with make_client(url) as test_client:
            open_case(test_client, admin)  # case 1
            yield Shared(test_client, admin, read)


def square(lon: float, lat: float, half: float) -> dict[str, Any]:
    ring = [
        [lon - half, lat - half],
        [lon + half, lat - half],
        [lon + half, lat + half],
        [lon - half, lat + half],
        [lon - half, lat - half],
    ]
    return {"type": "Polygon", "coordinates": [ring]}


def grid_upload() -> dict[str, Any]:
    """Two grids side by side along the test street: west holds route cells 0..3, east 4..7."""
    lat, lon0 = route_point(0)
    _, lon7 = route_point(7)
    middle = (lon0 + lon7) / 2 + 0.0001
    west = [[lon0 - 0.01, lat - 0.01], [middle, lat - 0.01], [middle, lat + 0.01],
            [lon0 - 0.01, lat + 0.01], [lon0 - 0.01, lat - 0.01]]  # fmt: skip
    east = [[middle, lat - 0.01], [lon7 + 0.01, lat - 0.01], [lon7 + 0.01, lat + 0.01],
            [middle, lat + 0.01], [middle, lat - 0.01]]  # fmt: skip
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [west]},
                "properties": {"name": "西区网格", "responsible": "李明", "code": "W1"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [east]},
                "properties": {"name": "East grid", "responsible": "王芳"},
            },
        ],
    }


# --- keys and roles -----------------------------------------------------------------------------


def test_reads_are_open_by_default_and_writes_need_an_admin_key(
    client: TestClient, read_key: str, admin_key: str
) -> None:
    assert client.get("/v1/pollutants").status_code == 200
    body = assert_problem(client.post("/v1/grids", json=grid_upload()), 401)
    assert "admin API key" in body["detail"]
    forbidden = client.post("/v1/grids", json=grid_upload(), headers={"X-API-Key": read_key})
    assert "not admin" in assert_problem(forbidden, 403)["detail"]
    created = client.post("/v1/grids", json=grid_upload(), headers={"X-API-Key": admin_key})
    assert created.status_code == 201, created.text


def test_when_reads_need_a_key_every_v1_route_checks_it(
    database_url: str, read_key: str, db: psycopg.Connection[Any]
) -> None:
    with make_client(database_url, read_key_required=True) as closed:
        for path in ("/v1/pollutants", "/v1/vehicles", "/v1/grids", "/v1/cases"):
            assert_problem(closed.get(path), 401)
            assert closed.get(path, headers={"X-API-Key": read_key}).status_code == 200, path
        assert closed.get("/healthz").status_code == 200  # probes need no key
        assert_problem(closed.get("/v1/pollutants", headers={"X-API-Key": "nonsense"}), 401)
        forged = read_key[:-4] + ("AAAA" if not read_key.endswith("AAAA") else "BBBB")
        assert_problem(closed.get("/v1/pollutants", headers={"X-API-Key": forged}), 401)
        key_id = keys.key_id_of(read_key)
        assert key_id is not None
        keys.revoke(db, key_id)
        closed.app.state.key_cache.forget(key_id)  # type: ignore[attr-defined]
        revoked = closed.get("/v1/pollutants", headers={"X-API-Key": read_key})
        assert "revoked" in assert_problem(revoked, 401)["detail"]


def test_keys_are_stored_only_as_hashes(db: psycopg.Connection[Any], admin_key: str) -> None:
    rows = db.execute("SELECT key_id, secret_hash FROM api_key").fetchall()
    assert len(rows) == 1
    assert admin_key not in str(rows)
    assert rows[0][1] == keys.hash_key(admin_key)


def test_apikey_command_creates_lists_and_revokes(
    database_url: str, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("ENVPATROL_DATABASE_URL", database_url)
    parser = argparse.ArgumentParser()
    run = apikey_command(parser)
    assert run(parser.parse_args(["create", "--role", "admin", "--name", "Desk 3"])) == 0
    key = capsys.readouterr().out.strip()
    key_id = keys.key_id_of(key)
    assert key_id is not None
    stored = keys.find(db, key_id)
    assert stored is not None
    assert (stored.role, stored.name) == ("admin", "Desk 3")
    assert run(parser.parse_args(["list"])) == 0
    listed = capsys.readouterr().out
    assert key_id in listed
    assert key not in listed
    assert run(parser.parse_args(["revoke", key_id])) == 0
    assert run(parser.parse_args(["revoke", key_id])) == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["create", "--role", "root", "--name", "x"])


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}"))


def test_database_roles_reader_reads_officer_writes_only_officer_tables(database_url: str) -> None:
    with psycopg.connect(database_url) as probe:
        roles = {r[0] for r in probe.execute("SELECT rolname FROM pg_roles")}
    if not {"envpatrol_reader", "envpatrol_officer"} <= roles:
        pytest.skip("the migrating user could not create the roles here")
    try:
        reader = psycopg.connect(as_role(database_url, "envpatrol_reader"), autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("this server does not let the test log in as the roles")
    with reader:
        reader.execute("SELECT count(*) FROM hotspot_case")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("INSERT INTO api_key VALUES ('x', 'x', 'read', 'x')")
        reader.execute("SELECT count(*) FROM hotspot_run_request")
    with psycopg.connect(as_role(database_url, "envpatrol_officer"), autocommit=True) as officer:
        keys.create(officer, "by officer role", "read")
        officer.execute("SELECT count(*) FROM reading")
        # Officers request analysis runs; the job, not the officer, writes the runs.
        officer.execute(
            "INSERT INTO hotspot_run_request (requested_by, window_start, window_end)"
            " VALUES ('by officer role', now() - interval '1 day', now())"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            officer.execute("DELETE FROM hotspot_run")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            officer.execute("DELETE FROM reading")


# --- rate limits --------------------------------------------------------------------------------


def test_rate_limits_per_key_and_address_with_headers(database_url: str, read_key: str) -> None:
    now = [30.0]
    limiter = FixedWindowLimiter(60, lambda: now[0])
    settings = ApiSettings(database_url=database_url, key_per_minute=3, anonymous_per_minute=2)
    with TestClient(create_app(settings, limiter=limiter)) as limited:
        first = limited.get("/v1/pollutants")
        assert first.headers["RateLimit-Limit"] == "2"
        assert first.headers["RateLimit-Remaining"] == "1"
        assert first.headers["RateLimit-Reset"] == "30"
        limited.get("/v1/pollutants")
        refused = limited.get("/v1/pollutants")
        body = assert_problem(refused, 429)
        assert "2 requests per minute" in body["detail"]
        assert refused.headers["Retry-After"] == "30"
        # A key has its own, larger budget.
        keyed = [limited.get("/v1/pollutants", headers={"X-API-Key": read_key}) for _ in range(4)]
        assert [r.status_code for r in keyed] == [200, 200, 200, 429]
        assert keyed[0].headers["RateLimit-Limit"] == "3"
        assert limited.get("/healthz").status_code == 200  # not limited
        now[0] = 60.0
        assert limited.get("/v1/pollutants").status_code == 200


# --- grids --------------------------------------------------------------------------------------


def test_grids_upload_list_get_replace_delete(client: TestClient, admin_key: str) -> None:
    auth = {"X-API-Key": admin_key}
    created = client.post("/v1/grids", json=grid_upload(), headers=auth)
    assert created.status_code == 201, created.text
    doc = created.json()
    assert doc["meta"]["found"] == 2
    west = doc["features"][0]
    assert west["properties"]["name"] == "西区网格"
    assert west["properties"]["responsible"] == "李明"
    assert west["properties"]["extra"] == {"code": "W1"}
    listed = client.get("/v1/grids").json()
    assert sorted(f["properties"]["name"] for f in listed["features"]) == ["East grid", "西区网格"]
    one = client.get(f"/v1/grids/{west['id']}").json()
    assert one["geometry"] == west["geometry"]
    # Re-uploading a name replaces that grid.
    again = grid_upload()
    again["features"] = again["features"][:1]
    again["features"][0]["properties"]["responsible"] = "赵强"
    replaced = client.post("/v1/grids", json=again, headers=auth).json()
    assert replaced["features"][0]["id"] == west["id"]
    assert client.get(f"/v1/grids/{west['id']}").json()["properties"]["responsible"] == "赵强"
    assert client.delete(f"/v1/grids/{west['id']}", headers=auth).status_code == 204
    assert_problem(client.get(f"/v1/grids/{west['id']}"), 404)
    assert_problem(client.delete(f"/v1/grids/{west['id']}", headers=auth), 404)


def bad_uploads() -> list[tuple[Any, str | None]]:
    open_ring = grid_upload()
    open_ring["features"][1]["geometry"]["coordinates"][0].pop()
    twice = grid_upload()
    twice["features"][1]["properties"]["name"] = "西区网格"
    nameless = grid_upload()
    del nameless["features"][0]["properties"]["name"]
    point = grid_upload()
    point["features"][0]["geometry"] = {"type": "Point", "coordinates": [116.4, 39.9]}
    return [
        (open_ring, "features[1].geometry.coordinates[0]"),
        (twice, "features[1].properties.name"),
        (nameless, "body.features.0.properties.name"),
        (point, "features[0].geometry.type"),
        ({"type": "FeatureCollection", "features": []}, "body.features"),
        ({"type": "Feature"}, None),
        ([1, 2, 3], None),
        ("not json", None),
    ]


@pytest.mark.parametrize(("body", "parameter"), bad_uploads())
def test_bad_grid_uploads_are_400_and_store_nothing(
    shared: Shared, body: Any, parameter: str | None
) -> None:
    client = shared.client
    auth = {"X-API-Key": shared.admin_key}
    if isinstance(body, str):
        response = client.post(
            "/v1/grids", content=body, headers={**auth, "content-type": "application/json"}
        )
    else:
        response = client.post("/v1/grids", json=body, headers=auth)
    assert_problem(response, 400, parameter)
    assert client.get("/v1/grids").json()["features"] == []


@pytest.mark.parametrize("path", ["/v1/grids/0", "/v1/grids/abc", "/v1/grids/99999999999999999999"])
def test_bad_grid_ids_are_400(shared: Shared, path: str) -> None:
    assert_problem(shared.client.get(path), 400)


def test_hotspots_are_tagged_with_their_grid_and_filtered_by_it(
    db: psycopg.Connection[Any], client: TestClient, admin_key: str
) -> None:
    insert_readings(db, patrol_rows(hot=40.0))
    analyse(db, BASE + timedelta(days=5))
    grids = client.post("/v1/grids", json=grid_upload(), headers={"X-API-Key": admin_key}).json()
    ids = {f["properties"]["name"]: f["id"] for f in grids["features"]}
    params = {"pollutant": "pm25", "stratum": "all_day"}
    spots = client.get("/v1/hotspots", params=params).json()
    assert [f["properties"]["cell"] for f in spots["features"]] == [cell_of(*route_point(HOT))]
    props = spots["features"][0]["properties"]
    assert (props["grid_id"], props["grid_name"]) == (ids["East grid"], "East grid")
    east = client.get("/v1/hotspots", params={**params, "grid": ids["East grid"]}).json()
    assert east["meta"]["grid"] == ids["East grid"]
    assert len(east["features"]) == 1
    west = client.get("/v1/hotspots", params={**params, "grid": ids["西区网格"]}).json()
    assert west["features"] == []
    assert_problem(client.get("/v1/hotspots", params={**params, "grid": 999}), 400, "grid")
    lat, lon = route_point(HOT)
    around = f"{lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}"
    assert (
        len(client.get("/v1/hotspots", params={**params, "bbox": around}).json()["features"]) == 1
    )
    away = f"{lon + 0.01},{lat - 0.001},{lon + 0.02},{lat + 0.001}"
    assert client.get("/v1/hotspots", params={**params, "bbox": away}).json()["features"] == []
    assert_problem(client.get("/v1/hotspots", params={**params, "bbox": "1,2"}), 400, "bbox")
    by_passes = client.get("/v1/hotspots", params={"sort": "n_passes"})
    counts = [f["properties"]["n_passes"] for f in by_passes.json()["features"]]
    assert counts  # the order itself is tested with more hotspots in test_api_hotspots
    assert counts == sorted(counts, reverse=True)
    assert_problem(client.get("/v1/hotspots", params={**params, "sort": "name"}), 400, "sort")
    assert_problem(client.get("/v1/hotspots", params={**params, "grid": "x"}), 400, "grid")


# --- cases --------------------------------------------------------------------------------------


def treated_patrol(db: psycopg.Connection[Any], *, effective: bool) -> None:
    """Four days of passes over a source; from day 4 on it is gone (or not) after treatment."""
    before = patrol_rows(hot=40.0, days=4)
    after = patrol_rows(hot=0.0 if effective else 40.0, days=4)
    shift = timedelta(days=4)
    last_seq = max(r.seq for r in before)
    for r in after:
        r.time += shift
        r.seq += last_seq
    insert_readings(db, before + after)
    analyse(db, BASE + timedelta(days=9))  # the passes the before/after test reads


def open_case(client: TestClient, key: str) -> dict[str, Any]:
    response = client.post(
        "/v1/cases",
        json={"pollutant": "pm25", "cell": cell_of(*route_point(HOT)), "note": "seen on 16 passes"},
        headers={"X-API-Key": key},
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("effective", [True, False])
def test_a_case_goes_from_open_to_verified_and_closed(
    db: psycopg.Connection[Any], client: TestClient, admin_key: str, effective: bool
) -> None:
    treated_patrol(db, effective=effective)
    client.post("/v1/grids", json=grid_upload(), headers={"X-API-Key": admin_key})
    auth = {"X-API-Key": admin_key}
    case = open_case(client, admin_key)
    assert case["status"] == "open"
    assert case["grid_id"] is not None
    assert case["created_by"] == f"Officer Wang ({keys.key_id_of(admin_key)})"
    assert case["allowed_next"] == ["closed", "dispatched"]
    assert [e["kind"] for e in case["events"]] == ["created"]
    assert case["events"][0]["note"] == "seen on 16 passes"
    path = f"/v1/cases/{case['id']}"

    # Skipping a step is a conflict, and verify needs a treated case.
    assert_problem(client.patch(path, json={"status": "treated"}, headers=auth), 409)
    assert_problem(client.post(f"{path}/verify", headers=auth), 409)
    assert_problem(client.patch(path, json={"status": "verified"}, headers=auth), 409)

    assert client.patch(path, json={"status": "dispatched"}, headers=auth).status_code == 200
    treated_on = (BASE + timedelta(days=4)).isoformat()
    treated = client.patch(
        path, json={"status": "treated", "treated_at": treated_on, "note": "hood fitted"},
        headers=auth,
    ).json()  # fmt: skip
    assert treated["status"] == "treated"
    assert treated["treated_at"].startswith(treated_on[:19])

    verified = client.post(f"{path}/verify", json={"window_days": 10}, headers=auth)
    assert verified.status_code == 200, verified.text
    result = verified.json()["verification"]
    assert verified.json()["status"] == "verified"
    assert result["provisional"] is False
    assert result["passes_before"] == 16
    assert result["passes_after"] == 16
    assert result["cells"] == [cell_of(*route_point(HOT))]
    assert result["interval_low"] <= result["change"] <= result["interval_high"]
    assert result["confidence"] == 0.95
    if effective:
        assert result["verdict"] == "decreased"
        assert result["change"] == pytest.approx(-40.0, abs=8)
        assert result["interval_high"] < 0
        assert result["p_value"] < 0.01
    else:
        assert result["verdict"] == "no-significant-change"
    client.patch(path, json={"status": "closed", "note": "done"}, headers=auth)
    final = client.get(path).json()
    assert final["status"] == "closed"
    kinds = [(e["kind"], e["to_status"]) for e in final["events"]]
    assert kinds == [
        ("created", "open"),
        ("status", "dispatched"),
        ("status", "treated"),
        ("note", None),
        ("verification", "verified"),
        ("status", "closed"),
    ]
    listed = client.get("/v1/cases", params={"status": "closed"}).json()
    assert listed["meta"]["total"] == 1
    assert listed["results"][0]["id"] == case["id"]
    assert client.get("/v1/cases", params={"status": "open"}).json()["results"] == []


def test_verify_without_passes_says_so(client: TestClient, admin_key: str) -> None:
    auth = {"X-API-Key": admin_key}
    case = open_case(client, admin_key)
    path = f"/v1/cases/{case['id']}"
    client.patch(path, json={"status": "dispatched"}, headers=auth)
    client.patch(path, json={"status": "treated"}, headers=auth)  # treated now by default
    result = client.post(f"{path}/verify", headers=auth).json()["verification"]
    assert result["verdict"] == "insufficient-data"
    assert result["p_value"] is None


def test_the_verify_test_is_a_parameter_of_the_app(database_url: str, admin_key: str) -> None:
    calls: list[BeforeAfterRequest] = []

    def fake_analysis(
        conn: psycopg.Connection[Any], request: BeforeAfterRequest
    ) -> BeforeAfterResult:
        calls.append(request)
        return stored_before_after(conn, request)

    app = create_app(ApiSettings(database_url=database_url), before_after=fake_analysis)
    with TestClient(app) as custom:
        auth = {"X-API-Key": admin_key}
        case = open_case(custom, admin_key)
        path = f"/v1/cases/{case['id']}"
        custom.patch(path, json={"status": "dispatched"}, headers=auth)
        custom.patch(path, json={"status": "treated", "treated_at": "2025-03-05"}, headers=auth)
        custom.post(f"{path}/verify", json={"window_days": 2, "min_passes": 5}, headers=auth)
    assert [(c.cell, c.pollutant, c.window, c.min_passes) for c in calls] == [
        (cell_of(*route_point(HOT)), "pm25", timedelta(days=2), 5)
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/v1/cases", {"pollutant": "pm25", "cell": "nonsense-cell-xx"}, 400),
        ("post", "/v1/cases", {"pollutant": "humidity", "cell": "8a31aa5a9a47fff"}, 400),
        ("post", "/v1/cases", {"pollutant": "nope", "cell": "8a31aa5a9a47fff"}, 400),
        ("post", "/v1/cases", {"cell": "8a31aa5a9a47fff"}, 400),
        ("post", "/v1/cases", {"pollutant": "pm25", "cell": "8b31aa5a9a47fff"}, 400),
        ("patch", "/v1/cases/1", {}, 400),
        ("patch", "/v1/cases/1", {"status": "finished"}, 400),
        ("patch", "/v1/cases/1", {"treated_at": "yesterday"}, 400),
        ("patch", "/v1/cases/1", {"treated_at": "2999-01-01"}, 400),
        ("patch", "/v1/cases/424242", {"note": "x"}, 404),
        ("post", "/v1/cases/424242/verify", None, 404),
        ("post", "/v1/cases/1/verify", {"window_days": -1}, 400),
        ("get", "/v1/cases/0", None, 400),
        ("get", "/v1/cases?status=lost", None, 400),
        ("get", "/v1/cases?limit=0", None, 400),
        ("get", "/v1/cases?pollutant=nope", None, 400),
    ],
)
def test_bad_case_requests_are_4xx(
    shared: Shared, method: str, path: str, body: Any, status: int
) -> None:
    kwargs: dict[str, Any] = {"headers": {"X-API-Key": shared.admin_key}}
    if body is not None:
        kwargs["json"] = body
    assert_problem(getattr(shared.client, method)(path, **kwargs), status)
    assert shared.client.get("/v1/cases/1").json()["status"] == "open"


def test_case_writes_need_an_admin_key(shared: Shared) -> None:
    client, read_key = shared.client, shared.read_key
    assert_problem(client.post("/v1/cases", json={"pollutant": "pm25", "cell": "x"}), 401)
    headers = {"X-API-Key": read_key}
    assert_problem(client.patch("/v1/cases/1", json={"note": "x"}, headers=headers), 403)
    assert_problem(client.post("/v1/cases/1/verify", headers=headers), 403)
    assert h3.is_valid_cell(cell_of(*route_point(HOT)))


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def test_a_case_is_assigned_with_a_deadline_and_listed_when_overdue(
    client: TestClient, admin_key: str
) -> None:
    auth = {"X-API-Key": admin_key}
    case = open_case(client, admin_key)
    path = f"/v1/cases/{case['id']}"
    assert (case["assignee"], case["deadline"], case["overdue"]) == (None, None, False)
    due = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    given = client.patch(
        path,
        json={"assignee": "城管三队", "assignee_kind": "department", "deadline": due},
        headers=auth,
    )
    assert given.status_code == 200, given.text
    body = given.json()
    assert (body["assignee"], body["assignee_kind"], body["overdue"]) == (
        "城管三队",
        "department",
        True,
    )
    assert body["events"][-1]["kind"] == "assignment"
    assert body["events"][-1]["detail"]["assignee"] == "城管三队"
    overdue = client.get("/v1/cases", params={"overdue": "true"}).json()["results"]
    assert [c["id"] for c in overdue] == [case["id"]]
    assert client.get("/v1/cases", params={"assignee": "城管三队"}).json()["meta"]["total"] == 1
    # Treated: no longer overdue; a cleared deadline is none.
    client.patch(path, json={"status": "dispatched"}, headers=auth)
    client.patch(path, json={"status": "treated"}, headers=auth)
    assert client.get("/v1/cases", params={"overdue": "true"}).json()["results"] == []
    cleared = client.patch(path, json={"deadline": ""}, headers=auth).json()
    assert cleared["deadline"] is None
    assert_problem(client.patch(path, json={"deadline": "soon"}, headers=auth), 400, "deadline")
    assert_problem(
        client.patch(path, json={"assignee_kind": "mayor"}, headers=auth), 400, "body.assignee_kind"
    )


def test_each_treatment_renews_the_date_and_a_new_dispatch_drops_the_old_verdict(
    db: psycopg.Connection[Any], client: TestClient, admin_key: str
) -> None:
    treated_patrol(db, effective=True)
    auth = {"X-API-Key": admin_key}
    case = open_case(client, admin_key)
    path = f"/v1/cases/{case['id']}"
    client.patch(path, json={"status": "dispatched"}, headers=auth)
    first_date = (BASE + timedelta(days=4)).isoformat()
    client.patch(path, json={"status": "treated", "treated_at": first_date}, headers=auth)
    first = client.post(f"{path}/verify", json={"window_days": 10}, headers=auth).json()
    assert first["verification"] is not None
    again = client.patch(path, json={"status": "dispatched"}, headers=auth).json()
    assert again["verification"] is None  # the history keeps it
    assert any(e["kind"] == "verification" for e in again["events"])
    second_date = (BASE + timedelta(days=6)).isoformat()
    retreated = client.patch(
        path, json={"status": "treated", "treated_at": second_date}, headers=auth
    ).json()
    assert retreated["treated_at"].startswith(second_date[:19])
    second = client.post(f"{path}/verify", json={"window_days": 10}, headers=auth).json()
    assert second["verification"]["treated_at"] != first["verification"]["treated_at"]
    # Without a date, a new treatment is dated now.
    client.patch(path, json={"status": "dispatched"}, headers=auth)
    now_treated = client.patch(path, json={"status": "treated"}, headers=auth).json()
    treated_at = datetime.fromisoformat(now_treated["treated_at"])
    assert abs((treated_at - datetime.now(UTC)).total_seconds()) < 120


def test_photos_are_checked_stored_with_the_case_and_served(
    client: TestClient, admin_key: str, read_key: str
) -> None:
    auth = {"X-API-Key": admin_key}
    case = open_case(client, admin_key)
    path = f"/v1/cases/{case['id']}/photos"
    stored = client.post(
        path, params={"name": "before.png"}, content=PNG,
        headers={**auth, "Content-Type": "image/png"},
    )  # fmt: skip
    assert stored.status_code == 201, stored.text
    photo = stored.json()["attachments"][0]
    assert (photo["name"], photo["media_type"], photo["size"]) == (
        "before.png",
        "image/png",
        len(PNG),
    )
    assert stored.json()["events"][-1]["kind"] == "attachment"
    served = client.get(photo["url"], headers={"X-API-Key": read_key})
    assert served.status_code == 200
    assert served.content == PNG
    assert served.headers["content-type"] == "image/png"
    # Type checked against the bytes; unsupported types, empty and oversized bodies refused.
    lying = client.post(path, content=JPEG, headers={**auth, "Content-Type": "image/png"})
    assert_problem(lying, 400, "body")
    assert_problem(
        client.post(path, content=b"GIF89a", headers={**auth, "Content-Type": "image/gif"}),
        415,
        "content-type",
    )
    assert_problem(
        client.post(path, content=b"", headers={**auth, "Content-Type": "image/png"}), 400
    )
    huge = PNG + b"\x00" * (5 * 1024 * 1024)
    assert_problem(
        client.post(path, content=huge, headers={**auth, "Content-Type": "image/png"}), 413
    )
    # Only admins upload.
    assert (
        client.post(
            path, content=PNG, headers={"X-API-Key": read_key, "Content-Type": "image/png"}
        ).status_code
        == 403
    )
    assert_problem(client.get(f"/v1/cases/{case['id']}/photos/999999"), 404)
    after = client.get(f"/v1/cases/{case['id']}").json()
    assert len(after["attachments"]) == 1


def test_cases_page_by_cursor(client: TestClient, admin_key: str) -> None:
    opened = [open_case(client, admin_key)["id"] for _ in range(3)]
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 1}
    for _ in range(10):
        page = client.get("/v1/cases", params=params).json()
        seen.extend(c["id"] for c in page["results"])
        assert page["meta"]["total"] == 3
        if page["meta"]["next_cursor"] is None:
            break
        params = {"limit": 1, "cursor": page["meta"]["next_cursor"]}
    assert sorted(seen) == sorted(opened)
    assert len(seen) == 3
    token = client.get("/v1/cases", params={"limit": 1}).json()["meta"]["next_cursor"]
    assert_problem(
        client.get("/v1/cases", params={"status": "closed", "cursor": token}), 400, "cursor"
    )
