"""The database sections shipped for a primary + streaming standby load as they are."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from api.settings import ApiSettings, load_api_settings
from edge.errors import SettingsError
from ingest.settings import load_ingest_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "postgres"


def test_the_api_section_names_a_replica_and_multi_host_urls() -> None:
    settings = load_api_settings(str(DEPLOY / "api.toml"), environ={})
    assert settings.has_replica
    assert conninfo_to_dict(settings.reader_url)["target_session_attrs"] == "prefer-standby"
    attrs = {settings.database_url: "primary", settings.writer_url: "read-write"}
    for url, want in attrs.items():
        params = conninfo_to_dict(url)
        assert params["target_session_attrs"] == want
        assert "," in str(params["host"])


def test_the_api_refuses_a_read_write_url_for_its_read_only_sessions() -> None:
    url = "postgresql://r@db1,db2/envpatrol?target_session_attrs=read-write"
    with pytest.raises(SettingsError, match="target_session_attrs=primary"):
        ApiSettings(database_url=url)
    with pytest.raises(SettingsError, match=r"database\.read_url"):
        ApiSettings(database_url="postgresql://r@db1/envpatrol", read_database_url=url)


def test_the_ingest_section_finds_the_primary_among_both_servers() -> None:
    settings = load_ingest_settings(str(DEPLOY / "ingest.toml"), environ={})
    params = conninfo_to_dict(settings.database_url)
    assert params["target_session_attrs"] == "read-write"
    assert str(params["host"]).count(",") == 1
    assert params["connect_timeout"] == "3"
