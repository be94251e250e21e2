"""Every /v1 route refuses query parameters it does not take, naming them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(database_url=database_url))) as test_client:
        yield test_client


def v1_get_paths(client: TestClient) -> dict[str, set[str]]:
    """Each GET path under /v1 of the OpenAPI document, with its query parameters."""
    paths = client.get("/openapi.json").json()["paths"]
    return {
        path: {p["name"] for p in spec["get"].get("parameters", []) if p["in"] == "query"}
        for path, spec in paths.items()
        if path.startswith("/v1") and "get" in spec
    }


def test_a_misspelled_parameter_is_a_400_on_every_route(client: TestClient) -> None:
    paths = v1_get_paths(client)
    assert len(paths) >= 10
    for template, known in paths.items():
        path = re.sub(r"\{[^}]+\}", "x", template)
        response = client.get(path, params={"polutant": "pm25", "zzz": "1"})
        assert response.status_code == 400, (template, response.text)
        body = response.json()
        assert body["parameter"] == "polutant", (template, body)
        assert "polutant, zzz" in body["detail"]
        for name in known:
            assert name in body["detail"], (template, name)


def test_known_parameters_still_pass(client: TestClient) -> None:
    assert client.get("/v1/readings", params={"limit": 5}).status_code == 200
    assert client.get("/v1/pollutants").status_code == 200
    response = client.get(
        "/v1/cells", params={"pollutant": "pm25", "bbox": "116.4,39.8,116.5,39.9"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["next_cursor"] is None
