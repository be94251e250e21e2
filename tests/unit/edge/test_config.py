"""Edge settings: the file, the environment overrides and their precedence, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import load_edge_settings
from edge.errors import SettingsError

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "edge.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def with_password(tmp_path: Path, body: str) -> str:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n", encoding="utf-8")
    return write(tmp_path, body.replace("@PW@", str(secret)))


FILE_WITH_USERNAME = """
vehicle = "patrol-01"
[mqtt]
url = "mqtt://broker:1883"
username = "patrol-01"
password_file = "@PW@"
"""


def test_vehicle_from_the_environment_also_replaces_the_files_username(tmp_path: Path) -> None:
    path = with_password(tmp_path, FILE_WITH_USERNAME)
    settings = load_edge_settings(path, {"ENVPATROL_VEHICLE": "patrol-07"})
    assert settings.vehicle == "patrol-07"
    assert settings.mqtt.username == "patrol-07"
    assert settings.mqtt.password == "s3cret"


def test_without_environment_the_files_username_is_used(tmp_path: Path) -> None:
    path = with_password(
        tmp_path, FILE_WITH_USERNAME.replace('username = "patrol-01"', 'username = "acct-9"')
    )
    settings = load_edge_settings(path, {})
    assert (settings.vehicle, settings.mqtt.username) == ("patrol-01", "acct-9")


def test_explicit_environment_username_outranks_everything(tmp_path: Path) -> None:
    path = with_password(tmp_path, FILE_WITH_USERNAME)
    env = {
        "ENVPATROL_VEHICLE": "patrol-07",
        "ENVPATROL_MQTT_USERNAME": "fleet-7",
        "ENVPATROL_MQTT_URL": "mqtt://urluser:pw@other:1884",
    }
    settings = load_edge_settings(path, env)
    assert settings.mqtt.username == "fleet-7"
    assert (settings.mqtt.host, settings.mqtt.port) == ("other", 1884)


def test_user_in_the_environment_url_outranks_the_environment_vehicle(tmp_path: Path) -> None:
    path = with_password(tmp_path, FILE_WITH_USERNAME)
    env = {"ENVPATROL_VEHICLE": "patrol-07", "ENVPATROL_MQTT_URL": "mqtt://urluser:pw@other"}
    assert load_edge_settings(path, env).mqtt.username == "urluser"


def test_user_in_the_file_url_is_replaced_by_the_environment_vehicle(tmp_path: Path) -> None:
    path = with_password(
        tmp_path,
        'vehicle = "patrol-01"\n[mqtt]\nurl = "mqtt://patrol-01@broker"\npassword_file = "@PW@"\n',
    )
    assert load_edge_settings(path, {}).mqtt.username == "patrol-01"
    assert load_edge_settings(path, {"ENVPATROL_VEHICLE": "p-2"}).mqtt.username == "p-2"


def test_username_defaults_to_the_vehicle_when_a_password_is_set(tmp_path: Path) -> None:
    path = with_password(tmp_path, 'vehicle = "patrol-01"\n[mqtt]\npassword_file = "@PW@"\n')
    assert load_edge_settings(path, {}).mqtt.username == "patrol-01"
    assert load_edge_settings(path, {"ENVPATROL_VEHICLE": "p-3"}).mqtt.username == "p-3"


def test_no_password_no_implicit_username(tmp_path: Path) -> None:
    path = write(tmp_path, 'vehicle = "patrol-01"\n')
    assert load_edge_settings(path, {}).mqtt.username is None


def test_other_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, 'vehicle = "v"\n[box]\nport = "/dev/a"\n[gps]\nport = "/dev/b"\n')
    settings = load_edge_settings(
        path,
        {
            "ENVPATROL_BOX_PORT": "/dev/x",
            "ENVPATROL_GPS_PORT": "/dev/y",
            "ENVPATROL_OUTBOX": "/srv/envpatrol/o.sqlite3",
            "ENVPATROL_TIME_SCALE": "50",
        },
    )
    assert (settings.box.port, settings.gps.port) == ("/dev/x", "/dev/y")
    assert settings.outbox_path == "/srv/envpatrol/o.sqlite3"
    assert settings.time_scale == 50.0


def test_new_sections_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'vehicle = "v"\n[outbox]\nmax_mb = 64\nmax_age_days = 7\n'
        "[mqtt]\nmax_payload_bytes = 16384\nbatch_readings = 20\n"
        "reconnect_min_s = 2\nreconnect_max_s = 60\n"
        '[quality]\nwarmup_s = 60\nstuck_s = 600\n[gps]\nsource = "gpsd"\ngpsd = "gps.local:2947"\n',
    )
    s = load_edge_settings(path, {})
    assert s.outbox.max_bytes == 64 * 2**20
    assert s.outbox.max_age_s == 7 * 86400
    assert (s.publish.max_payload_bytes, s.publish.batch_readings) == (16384, 20)
    assert (s.publish.reconnect_min_s, s.publish.reconnect_max_s) == (2.0, 60.0)
    assert (s.quality.warmup_s, s.quality.stuck_s) == (60.0, 600.0)
    assert (s.gps.source, s.gps.gpsd) == ("gpsd", "gps.local:2947")


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        ("", {}, "vehicle"),
        ('vehicle = "v"\ncolour = 1\n', {}, "colour"),
        ('vehicle = "v"\n[box]\nbaud = 1\n', {}, "box.baud"),
        ('vehicle = "v"\n[box]\nparity = "X"\n', {}, "box.parity"),
        ('vehicle = "v"\n[box]\naddress = 300\n', {}, "box.address"),
        ('vehicle = "v"\n[box]\ntimeout_s = "fast"\n', {}, "box.timeout_s"),
        ('vehicle = "v"\n[gps]\nsource = "usb"\n', {}, "gps.source"),
        ('vehicle = "v"\n[gps]\nsource = "gpsd"\ngpsd = "nohost"\n', {}, "gps.gpsd"),
        ('vehicle = "v"\n[mqtt]\nmax_payload_bytes = 100\n', {}, "mqtt.max_payload_bytes"),
        ('vehicle = "v"\n[mqtt]\nbatch_readings = 501\n', {}, "mqtt.batch_readings"),
        ('vehicle = "v"\n[mqtt]\nca_file = "/nonexistent/ca.crt"\n', {}, "mqtt.ca_file"),
        (
            'vehicle = "v"\n[mqtt]\nreconnect_min_s = 9\nreconnect_max_s = 1\n',
            {},
            "mqtt.reconnect_max_s",
        ),
        ('vehicle = "v"\n[outbox]\nmax_mb = 0.5\n', {}, "outbox.max_mb"),
        ('vehicle = "v"\n[quality]\nspike_step_fraction = 2.0\n', {}, "quality"),
        ('vehicle = "v"\n[quality]\nwarmup_from = "ignition"\n', {}, "quality"),
        ('vehicle = "v"\n', {"ENVPATROL_TIME_SCALE": "x"}, "ENVPATROL_TIME_SCALE"),
        ('vehicle = "bad vehicle"\n', {}, "vehicle"),
        ("vehicle = [", {}, "config"),
    ],
)
def test_bad_settings_name_the_key(
    tmp_path: Path, text: str, env: dict[str, str], key: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load_edge_settings(write(tmp_path, text), env)
    assert info.value.subject == key


def test_shipped_example_is_valid_apart_from_its_machine_files(tmp_path: Path) -> None:
    text = (REPO / "deploy" / "config" / "edge.toml").read_text(encoding="utf-8")
    (tmp_path / "ca.crt").write_text("x", encoding="utf-8")
    (tmp_path / "pw").write_text("pw\n", encoding="utf-8")
    text = text.replace("/etc/envpatrol/ca.crt", str(tmp_path / "ca.crt"))
    text = text.replace("/etc/envpatrol/mqtt-password", str(tmp_path / "pw"))
    settings = load_edge_settings(write(tmp_path, text), {"ENVPATROL_VEHICLE": "patrol-42"})
    assert settings.vehicle == "patrol-42"
    assert settings.mqtt.username == "patrol-42"
    assert settings.mqtt.tls
