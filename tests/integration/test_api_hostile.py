"""Hostile requests against the real PostgreSQL: no value answers 5xx, no one locks out a key.

Path, query and body values come from hypothesis (integers far past 64 bits, NUL and other
control characters, lone surrogates sent as raw UTF-8 bytes, any unicode); every answer must be
below 500. The rate-limit scenarios use the limiter's own clock, so a window never ends
mid-test, and clients at different addresses over one app.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import keys
from api.app import create_app
from api.database import DbSession
from api.ratelimit import FixedWindowLimiter
from api.settings import ApiSettings
from tests.integration.test_api import HOT, assert_problem, cell_of, route_point
from tests.services import scratch_database

pytestmark = pytest.mark.integration

ATTACKER = ("198.51.100.7", 40000)
OFFICE = ("192.0.2.10", 40000)
HOSTILE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

ANY_CHARACTER = st.characters(exclude_categories=())  # lone surrogates included
HUGE = st.integers(min_value=-(2**200), max_value=2**200)
VALUES = (
    HUGE.map(str)
    | st.text(ANY_CHARACTER, max_size=30)
    | st.sampled_from(["\x00", "a\x00b", "\ud800", "-1", "1e400", "NaN", "inf", "٣", "𝟗𝟗"])
    | st.floats().map(str)
)


def encoded(value: str) -> str:
    """As an attacker would send it: the raw UTF-8 bytes, lone surrogates included."""
    return quote_from_bytes(value.encode("utf-8", "surrogatepass"), safe="")


@dataclass
class Hostile:
    client: TestClient
    admin: dict[str, str]
    read: dict[str, str]
    case_id: int


@pytest.fixture(scope="module")
def hostile(admin_url: str) -> Iterator[Hostile]:
    with scratch_database(admin_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            admin = {"X-API-Key": keys.create(conn, "Officer Wang", "admin").key}
            read = {"X-API-Key": keys.create(conn, "Integrator", "read").key}
        unlimited = ApiSettings(database_url=url, key_per_minute=0, anonymous_per_minute=0)
        with TestClient(create_app(unlimited), raise_server_exceptions=False) as client:
            opened = client.post(
                "/v1/cases",
                json={"pollutant": "pm25", "cell": cell_of(*route_point(HOT))},
                headers=admin,
            )
            assert opened.status_code == 201, opened.text
            yield Hostile(client, admin, read, opened.json()["id"])


def no_server_error(response: Any) -> None:
    assert response.status_code < 500, (response.request.url, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")


PATHS = [
    "/v1/cells/{}?pollutant=pm25",
    "/v1/cases/{}",
    "/v1/grids/{}",
    "/v1/hotspots/{}",
    "/v1/vehicles/{}",
    "/v1/vehicles/{}/track",
    "/v1/hotspot-runs/requests/{}",
]


@HOSTILE
@given(st.sampled_from(PATHS), VALUES)
def test_no_path_value_gets_a_server_error(hostile: Hostile, path: str, value: str) -> None:
    no_server_error(hostile.client.get(path.format(encoded(value)), headers=hostile.admin))


QUERIES = [
    ("/v1/readings", "from"),
    ("/v1/readings", "to"),
    ("/v1/readings", "vehicle"),
    ("/v1/readings", "limit"),
    ("/v1/readings", "cursor"),
    ("/v1/readings", "bbox"),
    ("/v1/cells?pollutant=pm25", "resolution"),
    ("/v1/cells", "pollutant"),
    ("/v1/cells/8a31aa5a9a47fff?pollutant=pm25", "pass_gap_s"),
    ("/v1/hotspots", "run"),
    ("/v1/hotspots", "stratum"),
    ("/v1/hotspots", "grid"),
    ("/v1/hotspots", "bbox"),
    ("/v1/cases", "pollutant"),
    ("/v1/cases", "offset"),
    ("/v1/reports/inventory", "bbox"),
    ("/v1/vehicles", "online_window_s"),
]


@HOSTILE
@given(st.sampled_from(QUERIES), VALUES)
def test_no_query_value_gets_a_server_error(
    hostile: Hostile, query: tuple[str, str], value: str
) -> None:
    path, name = query
    joiner = "&" if "?" in path else "?"
    url = f"{path}{joiner}{name}={encoded(value)}"
    no_server_error(hostile.client.get(url, headers=hostile.admin))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | HUGE | st.floats() | st.text(ANY_CHARACTER, max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(VALUES, inner, max_size=3),
    max_leaves=10,
)


def post_json(hostile: Hostile, method: str, path: str, body: Any) -> Any:
    # json.dumps writes lone surrogates as \\ud800 escapes and NaN as a bare token, as a hostile
    # client may.
    content = json.dumps(body).encode()
    headers = {**hostile.admin, "content-type": "application/json"}
    return hostile.client.request(method, path, content=content, headers=headers)


@HOSTILE
@given(VALUES, VALUES | st.none(), VALUES | st.none(), st.dictionaries(VALUES, JSON_VALUES))
def test_no_case_body_gets_a_server_error(
    hostile: Hostile, cell: str, title: str | None, note: str | None, hotspot: dict[str, Any]
) -> None:
    body = {"pollutant": "pm25", "cell": cell, "title": title, "note": note, "hotspot": hotspot}
    no_server_error(post_json(hostile, "POST", "/v1/cases", body))
    # The same values on the case that exists.
    body = {"pollutant": "pm25", "cell": cell_of(*route_point(HOT)), "title": title}
    no_server_error(post_json(hostile, "POST", "/v1/cases", {**body, "hotspot": hotspot}))
    update = {"note": note, "treated_at": cell}
    no_server_error(post_json(hostile, "PATCH", f"/v1/cases/{hostile.case_id}", update))


@HOSTILE
@given(VALUES, VALUES, st.dictionaries(VALUES, JSON_VALUES, max_size=3))
def test_no_grid_body_gets_a_server_error(
    hostile: Hostile, name: str, responsible: str, extra: dict[str, Any]
) -> None:
    ring = [[116.40, 39.90], [116.41, 39.90], [116.41, 39.91], [116.40, 39.90]]
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {**extra, "name": name, "responsible": responsible},
    }
    body = {"type": "FeatureCollection", "features": [feature]}
    no_server_error(post_json(hostile, "POST", "/v1/grids", body))


@pytest.mark.parametrize(
    ("method", "path", "body", "parameter"),
    [
        ("get", "/v1/cells/-1?pollutant=pm25", None, "cell"),
        ("get", "/v1/cells/10000000000000000?pollutant=pm25", None, "cell"),
        ("post", "/v1/cases", {"pollutant": "pm25", "cell": "-10000000000000"}, "cell"),
        ("post", "/v1/cases", {"pollutant": "pm25", "cell": "8a31aa5a9a47fff", "note": "a\x00"},
         "body.note"),
        ("post", "/v1/cases", {"pollutant": "pm25", "cell": "8a31aa5a9a47fff", "title": "a\x00"},
         "body.title"),
        ("post", "/v1/cases",
         {"pollutant": "pm25", "cell": "8a31aa5a9a47fff", "hotspot": {"cells": ["\x00"]}},
         "body.hotspot"),
        ("patch", "/v1/cases/1", {"note": "\x00"}, "body.note"),
    ],
)  # fmt: skip
def test_the_values_found_from_outside_are_400s_naming_the_parameter(
    hostile: Hostile, method: str, path: str, body: Any, parameter: str
) -> None:
    kwargs: dict[str, Any] = {"headers": hostile.admin}
    if body is not None:
        kwargs["json"] = body
    assert_problem(getattr(hostile.client, method)(path, **kwargs), 400, parameter)


def test_a_nul_in_a_grid_name_is_a_400(hostile: Hostile) -> None:
    ring = [[116.40, 39.90], [116.41, 39.90], [116.41, 39.91], [116.40, 39.90]]
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"name": "a\x00", "responsible": "b"},
    }
    response = hostile.client.post(
        "/v1/grids",
        json={"type": "FeatureCollection", "features": [feature]},
        headers=hostile.admin,
    )
    assert_problem(response, 400, "body.features.0.properties.name")


def test_data_errors_from_postgresql_are_400s(database_url: str) -> None:
    """Values that get past the checks and that PostgreSQL refuses: class 22 and class 54."""
    app = create_app(ApiSettings(database_url=database_url))

    def refused(sql: str) -> Callable[[DbSession], None]:
        def route(db: DbSession) -> None:
            db.connection().execute(sql)  # type: ignore[arg-type]

        return route

    app.add_api_route("/v1/division", refused("SELECT 1 / 0"))
    app.add_api_route("/v1/deep", refused("SELECT (repeat('[', 100000) || ']')::jsonb"))
    with TestClient(app, raise_server_exceptions=False) as client:
        body = assert_problem(client.get("/v1/division"), 400)
        assert "division by zero" in body["detail"]
        assert_problem(client.get("/v1/deep"), 400)


# --- keys: no lock-out, no bypass, no key ids for readers --------------------------------------


def limited_app(url: str, *, key: int, failed: int, anonymous: int = 100) -> FastAPI:
    frozen = FixedWindowLimiter(60, lambda: 30.0)  # one window for the whole test
    settings = ApiSettings(
        database_url=url,
        key_per_minute=key,
        anonymous_per_minute=anonymous,
        failed_auth_per_minute=failed,
    )
    return create_app(settings, limiter=frozen)


def made_up_secret(key: str) -> str:
    key_id = keys.key_id_of(key)
    return f"ep_{key_id}_{secrets.token_urlsafe(32)}"


def test_made_up_secrets_for_a_key_id_cannot_lock_the_key_out(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    admin = keys.create(db, "Officer Wang", "admin").key
    app = limited_app(database_url, key=10, failed=5)
    with TestClient(app, client=ATTACKER) as attacker, TestClient(app, client=OFFICE) as office:
        lock_out(attacker, office, admin)


def lock_out(attacker: TestClient, office: TestClient, admin: str) -> None:
    statuses = [
        attacker.get("/v1/cases", headers={"X-API-Key": made_up_secret(admin)}).status_code
        for _ in range(600)
    ]
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}
    refused = attacker.get("/v1/cases", headers={"X-API-Key": made_up_secret(admin)})
    assert "failed authentications" in assert_problem(refused, 429)["detail"]
    assert refused.headers["Retry-After"] == "30"
    # The real key has its whole budget, from anywhere.
    answered = [office.get("/v1/cases", headers={"X-API-Key": admin}) for _ in range(10)]
    assert [r.status_code for r in answered] == [200] * 10
    assert [r.headers["RateLimit-Remaining"] for r in answered] == [str(9 - i) for i in range(10)]
    assert_problem(office.get("/v1/cases", headers={"X-API-Key": admin}), 429)


def test_a_key_used_from_a_misused_address_keeps_working(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    """An office behind one address: someone there sprays made-up keys, the officer's works."""
    admin = keys.create(db, "Officer Wang", "admin").key
    app = limited_app(database_url, key=100, failed=3)
    with TestClient(app, client=OFFICE) as shared:
        misuse(shared, admin)


def misuse(shared: TestClient, admin: str) -> None:
    assert shared.get("/v1/cases", headers={"X-API-Key": admin}).status_code == 200
    for _ in range(20):
        shared.get("/v1/cases", headers={"X-API-Key": made_up_secret(admin)})
    assert shared.get("/v1/cases", headers={"X-API-Key": admin}).status_code == 200


def test_made_up_key_ids_cannot_bypass_the_limit_or_load_the_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    find = keys.find

    def counted(conn: psycopg.Connection[Any], key_id: str) -> keys.StoredKey | None:
        lookups.append(key_id)
        return find(conn, key_id)

    monkeypatch.setattr(keys, "find", counted)
    app = limited_app(database_url, key=10, failed=5, anonymous=10)
    statuses = []
    with TestClient(app, client=ATTACKER) as attacker:
        for _ in range(200):
            made_up = f"ep_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"
            response = attacker.get("/v1/pollutants", headers={"X-API-Key": made_up})
            statuses.append(response.status_code)
        # Malformed keys are refused as well.
        assert_problem(attacker.get("/v1/pollutants", headers={"X-API-Key": "x"}), 429)
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}
    assert len(lookups) == 5


def test_a_read_key_sees_no_key_ids(database_url: str, db: psycopg.Connection[Any]) -> None:
    admin_key = keys.create(db, "Officer Wang", "admin")
    read_key = keys.create(db, "Integrator", "read")
    with TestClient(create_app(ApiSettings(database_url=database_url))) as client:
        admin = {"X-API-Key": admin_key.key}
        opened = client.post(
            "/v1/cases",
            json={"pollutant": "pm25", "cell": cell_of(*route_point(HOT)), "note": "seen"},
            headers=admin,
        )
        assert opened.status_code == 201, opened.text
        case_id = opened.json()["id"]
        patched = client.patch(f"/v1/cases/{case_id}", json={"note": "again"}, headers=admin)
        assert patched.status_code == 200, patched.text
        requested = client.post(
            "/v1/hotspot-runs",
            json={"from": "2025-03-01T00:00:00Z", "to": "2025-03-02T00:00:00Z"},
            headers=admin,
        )
        assert requested.status_code == 202, requested.text
        request_id = requested.json()["id"]
        routes = ["/v1/cases", f"/v1/cases/{case_id}", "/v1/hotspot-runs",
                  f"/v1/hotspot-runs/requests/{request_id}"]  # fmt: skip
        for who in ({"X-API-Key": read_key.key}, {}):
            for route in routes:
                response = client.get(route, headers=who)
                assert response.status_code == 200, response.text
                assert admin_key.key_id not in response.text, route
                assert "Officer Wang" in response.text, route
        case = client.get(f"/v1/cases/{case_id}", headers=admin).json()
        assert case["created_by"] == f"Officer Wang ({admin_key.key_id})"
        assert {e["actor"] for e in case["events"]} == {f"Officer Wang ({admin_key.key_id})"}
        runs = client.get("/v1/hotspot-runs", headers=admin).json()
        assert runs["requests"][0]["requested_by"] == f"Officer Wang ({admin_key.key_id})"
