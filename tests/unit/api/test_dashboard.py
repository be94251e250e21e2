"""The dashboard and the docs are served from this host, never a CDN (no database needed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes.dashboard import STATIC_DIR
from api.settings import ApiSettings

NOWHERE = "postgresql://nobody@127.0.0.1:9/none"  # never connected to by these routes


def fake_vendor(root: Path) -> Path:
    (root / "leaflet").mkdir(parents=True)
    (root / "leaflet" / "leaflet.js").write_text("/* leaflet */")
    (root / "leaflet" / "leaflet.css").write_text("/* css */")
    (root / "swagger-ui").mkdir()
    (root / "swagger-ui" / "swagger-ui-bundle.js").write_text("/* swagger */")
    return root


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = ApiSettings(
        database_url=NOWHERE,
        static_dir=str(fake_vendor(tmp_path / "vendor")),
        tile_url="https://tiles.example.org/{z}/{x}/{y}.png",
        tile_datum="gcj02",
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_the_dashboard_page_and_its_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    scripts = re.findall(r'src="([^"]+)"', page.text)
    assert scripts == [
        "/vendor/leaflet/leaflet.js", "/static/datum.js", "/static/i18n.js", "/static/app.js",
    ]  # fmt: skip
    for path in [*scripts, "/static/style.css", "/vendor/leaflet/leaflet.css"]:
        response = client.get(path)
        assert response.status_code == 200, path
    assert client.get("/vendor/nothing.js").status_code == 404


def test_nothing_is_loaded_from_another_host() -> None:
    for path in STATIC_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path
        assert not re.search(r"https?://", text), path  # no address of another host at all


def test_docs_use_the_local_swagger_ui(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "cdn.jsdelivr" not in docs.text


def test_the_dashboard_config_carries_the_base_map_settings(client: TestClient) -> None:
    config = client.get("/dashboard/config.json").json()
    assert config["tile_datum"] == "gcj02"
    assert config["tile_url"].startswith("https://tiles.example.org/")
    assert config == {**config, "read_key_required": False, "live": False, "vendor": True}


def test_without_the_libraries_the_page_says_what_to_run(tmp_path: Path) -> None:
    settings = ApiSettings(database_url=NOWHERE, static_dir=str(tmp_path / "missing"))
    with TestClient(create_app(settings)) as bare:
        page = bare.get("/")
        assert page.status_code == 503
        assert "api/dashboard/build" in page.text
        docs = bare.get("/docs")
        assert docs.status_code == 503
        assert "/openapi.json" in docs.text
        assert bare.get("/dashboard/config.json").json()["vendor"] is False


def test_every_label_exists_in_both_languages() -> None:
    text = (STATIC_DIR / "i18n.js").read_text(encoding="utf-8")
    en, zh = text.split("    zh: {", 1)
    keys_en = set(re.findall(r"^\s{6}(\w+):", en.split("    en: {", 1)[1], re.M))
    keys_zh = set(re.findall(r"^\s{6}(\w+):", zh.split("  };", 1)[0], re.M))
    assert keys_en
    assert keys_en == keys_zh
    used = set(
        re.findall(r'data-i18n(?:-placeholder)?="(\w+)"', (STATIC_DIR / "index.html").read_text())
    )
    used |= set(re.findall(r'\bt\("(\w+)"\)', (STATIC_DIR / "app.js").read_text()))
    assert used <= keys_en, used - keys_en
