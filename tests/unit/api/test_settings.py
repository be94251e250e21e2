"""The API's settings: TOML and environment, and the command's refusal of bad ones."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from api.cli import api_command
from api.settings import ApiSettings, load_api_settings
from edge.errors import SettingsError


def test_settings_from_toml_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "api.toml"
    path.write_text(
        '[database]\nurl = "postgresql://reader@db/envpatrol"\nstatement_timeout_s = 5\n'
        '[api]\nhost = "0.0.0.0"\nport = 9000\n',
        encoding="utf-8",
    )
    settings = load_api_settings(str(path), environ={})
    assert settings == ApiSettings(
        database_url="postgresql://reader@db/envpatrol",
        host="0.0.0.0",
        port=9000,
        statement_timeout_s=5.0,
    )
    env = {"ENVPATROL_DATABASE_URL": "postgresql://other@db/x"}
    assert load_api_settings(str(path), environ=env).database_url == "postgresql://other@db/x"
    assert load_api_settings(None, environ=env).port == 8080


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[api]\nport = 8080\n", "database.url"),
        ('[database]\nurl = "x"\n[api]\nport = "80"\n', "api.port"),
        ('[database]\nurl = "x"\npassword = "y"\n', "database.password"),
        ('[databse]\nurl = "x"\n', "databse"),
    ],
)
def test_bad_settings_name_their_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "api.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_api_settings(str(path), environ={})
    assert caught.value.subject == key


def test_api_command_refuses_bad_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENVPATROL_DATABASE_URL", raising=False)
    parser = argparse.ArgumentParser()
    run = api_command(parser)
    assert run(parser.parse_args(["--config", str(tmp_path / "missing.toml")])) == 2
    assert "cannot read" in capsys.readouterr().err
    assert run(parser.parse_args(["--port", "9000"])) == 2
    assert "database.url" in capsys.readouterr().err


def test_the_shipped_config_loads() -> None:
    shipped = Path(__file__).parents[3] / "deploy" / "config" / "api.toml"
    settings = load_api_settings(str(shipped), {"ENVPATROL_DATABASE_URL": "postgresql://x@h/d"})
    assert settings.streets_file == ""
    assert settings.read_key_required
