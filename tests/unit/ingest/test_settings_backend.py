"""`[database] backend` in the ingest's settings, which `migrate`, `ingest` and `analyse` read."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import SettingsError
from ingest.settings import load_ingest_settings

URL = 'url = "postgresql:///envpatrol"\n'


def settings_file(tmp_path: Path, database: str) -> str:
    path = tmp_path / "ingest.toml"
    path.write_text("[database]\n" + URL + database)
    return str(path)


def test_auto_by_default(tmp_path: Path) -> None:
    assert load_ingest_settings(settings_file(tmp_path, ""), {}).database_backend == "auto"


@pytest.mark.parametrize("choice", ["auto", "timescale", "plain"])
def test_each_choice_is_read(tmp_path: Path, choice: str) -> None:
    path = settings_file(tmp_path, f'backend = "{choice}"\n')
    assert load_ingest_settings(path, {}).database_backend == choice


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = settings_file(tmp_path, 'backend = "timescale"\n')
    env = {"ENVPATROL_DATABASE_BACKEND": "plain"}
    assert load_ingest_settings(path, env).database_backend == "plain"


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('backend = "postgres"\n', "database.backend"),
        ('backend = "Timescale"\n', "database.backend"),
        ("backend = 1\n", "database.backend"),
        ('backnd = "plain"\n', "database.backnd"),
    ],
)
def test_bad_values_are_refused_with_their_key(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_ingest_settings(settings_file(tmp_path, line), {})
    assert raised.value.subject == key
