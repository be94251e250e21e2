"""The ingest's settings: the shipped file loads, and bad values are refused with their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import SettingsError
from ingest.settings import load_ingest_settings

SHIPPED = Path(__file__).resolve().parents[3] / "deploy" / "config" / "ingest.toml"
ENV = {"ENVPATROL_DATABASE_URL": "postgresql:///envpatrol"}


def shipped_without_secrets(tmp_path: Path, extra: str = "") -> Path:
    lines = [
        line
        for line in SHIPPED.read_text().splitlines()
        if not line.startswith(("password_file", "ca_file"))
    ]
    path = tmp_path / "ingest.toml"
    path.write_text("\n".join(lines).replace("mqtts://", "mqtt://") + "\n" + extra)
    return path


def test_the_shipped_file_loads(tmp_path: Path) -> None:
    settings = load_ingest_settings(str(shipped_without_secrets(tmp_path)), ENV)
    assert settings.batch_max_messages == 10_000
    assert settings.metrics_port == 9108
    assert settings.share_group == ""
    assert settings.compress_after_days == 7
    assert settings.adopt_peers is True
    assert settings.adopt_after_s == 15.0
    assert settings.peer_password_dir == ""


def test_a_fresh_database_gets_the_resolution_the_evaluation_supports() -> None:
    # Only a fresh database takes it: afterwards the resolution stored in `meta` rules.
    assert load_ingest_settings(None, ENV).h3_resolution == 10
    env = {**ENV, "ENVPATROL_H3_RESOLUTION": "11"}
    assert load_ingest_settings(None, env).h3_resolution == 11


def test_environment_overrides(tmp_path: Path) -> None:
    env = {**ENV, "ENVPATROL_INGEST_SHARE_GROUP": "ingest", "ENVPATROL_INGEST_METRICS_PORT": "0"}
    settings = load_ingest_settings(str(shipped_without_secrets(tmp_path)), env)
    assert settings.share_group == "ingest"
    assert settings.metrics_port == 0


def test_the_shipped_bounds_load(tmp_path: Path) -> None:
    settings = load_ingest_settings(str(shipped_without_secrets(tmp_path)), ENV)
    assert settings.inbox_max_bytes == 16 * 1024 * 1024
    assert settings.min_time.isoformat() == "2000-01-01T00:00:00+00:00"
    assert settings.database_backend == "auto"


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ('share_group = "a/b"', "ingest.share_group"),
        ("metrics_port = 70000", "ingest.metrics_port"),
        ("compress_after_days = 0", "ingest.compress_after_days"),
        ("db_timeout_s = 0", "ingest"),
        ("no_such_thing = 1", "ingest.no_such_thing"),
        ("adopt_after_s = -1", "ingest"),
        ('adopt_peers = "yes"', "ingest.adopt_peers"),
        ("h3_resolution = 16", "ingest.h3_resolution"),
        ("inbox_max_bytes = 1048575", "ingest.inbox_max_bytes"),
        ('min_time = "2000-01-01T00:00:00"', "ingest.min_time"),
        ('min_time = "noon"', "ingest.min_time"),
    ],
)
def test_bad_values_are_refused(tmp_path: Path, setting: str, key: str) -> None:
    text = shipped_without_secrets(tmp_path).read_text()
    name = setting.split(" =", maxsplit=1)[0]
    text = "\n".join(line for line in text.splitlines() if not line.startswith(name + " "))
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("[ingest]\n", f"[ingest]\n{setting}\n"))
    with pytest.raises(SettingsError) as info:
        load_ingest_settings(str(path), ENV)
    assert info.value.subject == key


def test_the_client_id_follows_the_broker_account_unless_fixed() -> None:
    # The shipped broker binds client ids to usernames: a worker's session is its account's.
    env = {**ENV, "ENVPATROL_MQTT_USERNAME": "envpatrol-ingest-2"}
    assert load_ingest_settings(None, env).client_id == "envpatrol-ingest-2"
    fixed = {**env, "ENVPATROL_INGEST_CLIENT_ID": "worker-a"}
    assert load_ingest_settings(None, fixed).client_id == "worker-a"


def test_a_share_group_over_mqtt_3_1_1_is_refused() -> None:
    # MQTT 3.1.1 has no shared subscriptions: a broker would take `$share/...` as a plain topic
    # (or refuse it) and the worker would wait for readings that never come.
    env = {
        **ENV,
        "ENVPATROL_MQTT_URL": "mqtt://127.0.0.1:1883?protocol=3.1.1",
        "ENVPATROL_INGEST_SHARE_GROUP": "ingest",
    }
    with pytest.raises(SettingsError) as info:
        load_ingest_settings(None, env)
    assert info.value.subject == "ingest.share_group"
    assert "MQTT 5" in str(info.value)
