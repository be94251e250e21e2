"""The edge agent's settings: one TOML file plus environment overrides, checked at start-up."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.mqtt import MqttSettings, SettingsError, read_secret
from edge.topics import TopicError, check_root, check_vehicle


@dataclass(frozen=True, slots=True)
class BoxSettings:
    port: str = "/dev/ttyUSB0"
    profile: str = "default-multi"
    address: int | None = None  # overrides the profile's device address
    baudrate: int | None = None  # overrides the profile's line settings
    bytesize: int | None = None
    parity: str | None = None
    stopbits: int | None = None
    timeout_s: float = 0.5
    retries: int = 2


@dataclass(frozen=True, slots=True)
class GpsSettings:
    port: str = "/dev/ttyUSB1"
    baudrate: int = 9600
    max_fix_age_s: float = 5.0  # a fix older than this is "stale" for a reading


DEFAULT_OUTBOX = "/var/lib/envpatrol/outbox.sqlite3"


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    vehicle: str
    mqtt: MqttSettings
    box: BoxSettings = field(default_factory=BoxSettings)
    gps: GpsSettings = field(default_factory=GpsSettings)
    outbox_path: str = DEFAULT_OUTBOX
    poll_interval_s: float = 10.0
    # Simulated drives run faster than the wall clock: sim seconds per wall second. A real
    # vehicle leaves this at 1.
    time_scale: float = 1.0
    health_interval_s: float = 60.0
    # Drive recording (edge/recording.py): a .jsonl.gz file to record the serial traffic,
    # fixes and readings to; None records nothing.
    record_path: str | None = None


def _section(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise SettingsError(name, "must be a table")
    return value


def _typed(section: str, data: dict[str, Any], types: dict[str, type]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in types:
            raise SettingsError(f"{section}.{key}" if section else key, "unknown setting")
        want = types[key]
        typed = value
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            typed = float(value)
        if not isinstance(typed, want) or (want is int and isinstance(typed, bool)):
            raise SettingsError(
                f"{section}.{key}" if section else key, f"must be {want.__name__}, got {value!r}"
            )
        out[key] = typed
    return out


def load_toml(path: str | None) -> dict[str, Any]:
    """A service's TOML configuration file, or an empty document when no file is given."""
    if not path:
        return {}
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError("config", f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError("config", f"{path} is not valid TOML: {exc}") from exc


def load_edge_settings(path: str | None, environ: Mapping[str, str] = os.environ) -> EdgeSettings:
    """Build the settings from a TOML file (optional) and ENVPATROL_* environment variables."""
    doc = load_toml(path)
    top = _typed(
        "",
        {k: v for k, v in doc.items() if not isinstance(v, dict)},
        {
            "vehicle": str,
            "poll_interval_s": float,
            "time_scale": float,
            "health_interval_s": float,
            "record": str,
        },
    )
    box = _typed(
        "box",
        _section(doc, "box"),
        {
            "port": str,
            "profile": str,
            "address": int,
            "baudrate": int,
            "bytesize": int,
            "parity": str,
            "stopbits": int,
            "timeout_s": float,
            "retries": int,
        },
    )
    gps = _typed(
        "gps", _section(doc, "gps"), {"port": str, "baudrate": int, "max_fix_age_s": float}
    )
    mqtt = _typed(
        "mqtt",
        _section(doc, "mqtt"),
        {
            "url": str,
            "username": str,
            "password_file": str,
            "ca_file": str,
            "cert_file": str,
            "key_file": str,
            "protocol": str,
            "keepalive_s": int,
            "topic_root": str,
        },
    )
    outbox = _typed("outbox", _section(doc, "outbox"), {"path": str})
    unknown = (
        set(doc)
        - {"vehicle", "poll_interval_s", "time_scale", "health_interval_s", "record"}
        - {
            "box",
            "gps",
            "mqtt",
            "outbox",
        }
    )
    if unknown:
        raise SettingsError(sorted(unknown)[0], "unknown setting")

    vehicle = environ.get("ENVPATROL_VEHICLE") or top.get("vehicle")
    if not vehicle:
        raise SettingsError("vehicle", "required (or set ENVPATROL_VEHICLE)")
    try:
        check_vehicle(vehicle)
    except TopicError as exc:
        raise SettingsError("vehicle", str(exc)) from exc

    mqtt_settings = mqtt_from(mqtt, environ, default_username=vehicle)
    box_settings = BoxSettings(**box)
    if box_settings.parity not in (None, "N", "E", "O"):
        raise SettingsError("box.parity", "must be N, E or O")
    if box_settings.retries < 0 or box_settings.timeout_s <= 0:
        raise SettingsError("box", "retries must be >= 0 and timeout_s > 0")
    settings = EdgeSettings(
        vehicle=vehicle,
        mqtt=mqtt_settings,
        box=box_settings,
        gps=GpsSettings(**gps),
        outbox_path=environ.get("ENVPATROL_OUTBOX") or outbox.get("path", DEFAULT_OUTBOX),
        poll_interval_s=top.get("poll_interval_s", 10.0),
        time_scale=float(environ.get("ENVPATROL_TIME_SCALE") or top.get("time_scale", 1.0)),
        health_interval_s=top.get("health_interval_s", 60.0),
        record_path=environ.get("ENVPATROL_RECORD") or top.get("record"),
    )
    if settings.poll_interval_s <= 0 or settings.time_scale <= 0:
        raise SettingsError("poll_interval_s", "poll_interval_s and time_scale must be positive")
    return settings


def mqtt_from(
    section: dict[str, Any], environ: Mapping[str, str], default_username: str | None = None
) -> MqttSettings:
    """MQTT settings from a `[mqtt]` table, with ENVPATROL_MQTT_URL taking precedence."""
    url = environ.get("ENVPATROL_MQTT_URL") or section.get("url") or "mqtt://127.0.0.1:1883"
    base = MqttSettings.from_url(url)
    protocol = section.get("protocol")
    if protocol is not None and protocol not in ("5", "3.1.1"):
        raise SettingsError("mqtt.protocol", "must be '5' or '3.1.1'")
    root = section.get("topic_root", "envpatrol")
    try:
        check_root(root)
    except TopicError as exc:
        raise SettingsError("mqtt.topic_root", str(exc)) from exc
    username = base.username or section.get("username") or default_username
    password = base.password or read_secret(section.get("password_file"), "mqtt.password_file")
    if password is None:
        username = base.username or section.get("username")
    return base.replace(
        username=username,
        password=password,
        ca_file=section.get("ca_file"),
        cert_file=section.get("cert_file"),
        key_file=section.get("key_file"),
        protocol=protocol,
        keepalive_s=section.get("keepalive_s"),
        topic_root=root,
    )
