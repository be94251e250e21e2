"""The edge agent's settings: one TOML file plus environment overrides, checked at start-up.

Precedence, highest first (documented in docs/edge.md, tested in tests/unit/edge/test_config.py):

* `vehicle`: ENVPATROL_VEHICLE, then the file's `vehicle`.
* MQTT username: ENVPATROL_MQTT_USERNAME, then the user in ENVPATROL_MQTT_URL, then, when
  ENVPATROL_VEHICLE is set, that vehicle id (a vehicle id given in the environment re-identifies
  the whole vehicle, so a username the file wrote for its own vehicle is not used), then the user
  in the file's `[mqtt] url`, then `[mqtt] username`, then the vehicle id.
  Without a password the username is sent only when one was set explicitly.
* MQTT client id: always the effective vehicle id.
* Every other override: ENVPATROL_MQTT_URL, ENVPATROL_OUTBOX, ENVPATROL_TIME_SCALE,
  ENVPATROL_BOX_PORT, ENVPATROL_GPS_PORT replace their file setting.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edge.epoch import DEFAULT_EPOCH_TIMEOUT_S
from edge.errors import SettingsError
from edge.mqtt import MqttSettings, read_secret
from edge.quality import QualitySettings
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
    serial: str | None = None  # the box's serial number; None takes the first box seen
    # Ask the box who it is, where its profile names identity registers. Off for a box whose
    # firmware lacks them, and for replaying drives recorded before boxes were asked.
    identity: bool = True


@dataclass(frozen=True, slots=True)
class GpsSettings:
    source: str = "serial"  # "serial": NMEA on `port`; "gpsd": gpsd's JSON on `gpsd`
    port: str = "/dev/ttyUSB1"
    baudrate: int = 9600
    gpsd: str = "127.0.0.1:2947"
    max_fix_age_s: float = 5.0  # a fix older than this is "stale" for a reading
    max_hdop: float = 10.0  # fixes with a worse HDOP are not used
    min_satellites: int = 4  # fixes from fewer satellites are not used
    max_speed_mps: float = 70.0  # a fix implying a faster move than this is a jump, not used
    # An epoch the receiver left incomplete is judged after this long without a sentence.
    epoch_timeout_s: float = DEFAULT_EPOCH_TIMEOUT_S
    # Sentences without a checksum (a few old receivers send none) are dropped unless false.
    require_checksum: bool = True
    # A fix without satellites, HDOP or speed: "reject" (kept invalid) or "accept" (used).
    incomplete_fix: str = "reject"


DEFAULT_OUTBOX_MB = 256
DEFAULT_OUTBOX_DAYS = 30


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    """Bounds of the disk outbox; see edge.outbox for the eviction rule."""

    max_bytes: int = DEFAULT_OUTBOX_MB * 2**20
    max_age_s: float = DEFAULT_OUTBOX_DAYS * 86400.0


@dataclass(frozen=True, slots=True)
class PublishSettings:
    """How readings leave the outbox for the broker."""

    # Largest MQTT payload the agent sends. Mosquitto refuses (and, for MQTT 5, disconnects a
    # client over) anything above its message_size_limit; 64 KiB is well under the limits
    # deployments commonly set (256 KiB and up).
    max_payload_bytes: int = 65536
    batch_readings: int = 50  # readings per catch-up message (the wire allows 500)
    reconnect_min_s: float = 1.0  # first reconnect delay; doubles up to reconnect_max_s
    reconnect_max_s: float = 120.0


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
    outbox: OutboxLimits = field(default_factory=OutboxLimits)
    publish: PublishSettings = field(default_factory=PublishSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
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


def _types_of(cls: type) -> dict[str, type]:
    """Setting name -> the TOML type it takes, from a settings dataclass's defaults."""
    out: dict[str, type] = {}
    for f in fields(cls):
        default = f.default
        out[f.name] = type(default)
    return out


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise SettingsError(key, f"must be positive, got {value}")


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


_TOP = {
    "vehicle": str,
    "poll_interval_s": float,
    "time_scale": float,
    "health_interval_s": float,
    "record": str,
}
_SECTIONS = {"box", "gps", "mqtt", "outbox", "quality"}
_MQTT = {
    "url": str,
    "username": str,
    "password_file": str,
    "ca_file": str,
    "cert_file": str,
    "key_file": str,
    "protocol": str,
    "keepalive_s": int,
    "topic_root": str,
}
_PUBLISH = {
    "max_payload_bytes": int,
    "batch_readings": int,
    "reconnect_min_s": float,
    "reconnect_max_s": float,
}
_BOX = {
    "port": str,
    "profile": str,
    "address": int,
    "baudrate": int,
    "bytesize": int,
    "parity": str,
    "stopbits": int,
    "timeout_s": float,
    "retries": int,
    "serial": str,
    "identity": bool,
}
_OUTBOX = {"path": str, "max_mb": float, "max_age_days": float}


def load_edge_settings(path: str | None, environ: Mapping[str, str] = os.environ) -> EdgeSettings:
    """Build the settings from a TOML file (optional) and ENVPATROL_* environment variables."""
    doc = load_toml(path)
    unknown = set(doc) - set(_TOP) - _SECTIONS
    if unknown:
        raise SettingsError(sorted(unknown)[0], "unknown setting")
    top = _typed("", {k: v for k, v in doc.items() if k in _TOP}, _TOP)
    box = _typed("box", _section(doc, "box"), _BOX)
    gps = _typed("gps", _section(doc, "gps"), _types_of(GpsSettings))
    mqtt_all = _typed("mqtt", _section(doc, "mqtt"), {**_MQTT, **_PUBLISH})
    mqtt = {k: v for k, v in mqtt_all.items() if k in _MQTT}
    publish = {k: v for k, v in mqtt_all.items() if k in _PUBLISH}
    outbox = _typed("outbox", _section(doc, "outbox"), _OUTBOX)
    quality = _typed("quality", _section(doc, "quality"), _types_of(QualitySettings))

    vehicle = environ.get("ENVPATROL_VEHICLE") or top.get("vehicle")
    if not vehicle:
        raise SettingsError("vehicle", "required (or set ENVPATROL_VEHICLE)")
    try:
        check_vehicle(vehicle)
    except TopicError as exc:
        raise SettingsError("vehicle", str(exc)) from exc

    if environ.get("ENVPATROL_BOX_PORT"):
        box["port"] = environ["ENVPATROL_BOX_PORT"]
    if environ.get("ENVPATROL_GPS_PORT"):
        gps["port"] = environ["ENVPATROL_GPS_PORT"]
    gps_settings = _gps_settings(gps)
    publish_settings = _publish_settings(publish)
    quality_settings = QualitySettings(**quality)
    try:
        quality_settings.check()
    except ValueError as exc:
        raise SettingsError("quality", str(exc)) from exc

    time_scale_env = environ.get("ENVPATROL_TIME_SCALE")
    try:
        time_scale = float(time_scale_env) if time_scale_env else top.get("time_scale", 1.0)
    except ValueError as exc:
        raise SettingsError("ENVPATROL_TIME_SCALE", f"not a number: {time_scale_env!r}") from exc
    settings = EdgeSettings(
        vehicle=vehicle,
        mqtt=mqtt_from(
            mqtt,
            environ,
            default_username=vehicle,
            vehicle_from_env=bool(environ.get("ENVPATROL_VEHICLE")),
        ),
        box=_box_settings(box),
        gps=gps_settings,
        outbox_path=environ.get("ENVPATROL_OUTBOX") or outbox.get("path", DEFAULT_OUTBOX),
        poll_interval_s=top.get("poll_interval_s", 10.0),
        time_scale=time_scale,
        health_interval_s=top.get("health_interval_s", 60.0),
        outbox=_outbox_limits(outbox),
        publish=publish_settings,
        quality=quality_settings,
        record_path=environ.get("ENVPATROL_RECORD") or top.get("record"),
    )
    _positive("poll_interval_s", settings.poll_interval_s)
    _positive("time_scale", settings.time_scale)
    _positive("health_interval_s", settings.health_interval_s)
    return settings


def _box_settings(box: dict[str, Any]) -> BoxSettings:
    settings = BoxSettings(**box)
    if settings.parity not in (None, "N", "E", "O"):
        raise SettingsError("box.parity", "must be N, E or O")
    if settings.retries < 0:
        raise SettingsError("box.retries", "must be >= 0")
    _positive("box.timeout_s", settings.timeout_s)
    if settings.address is not None and not 1 <= settings.address <= 247:
        raise SettingsError("box.address", "must be 1..247")
    if settings.serial is not None and not (settings.serial.isprintable() and settings.serial):
        raise SettingsError("box.serial", "must be non-empty printable text")
    return settings


def _outbox_limits(outbox: dict[str, Any]) -> OutboxLimits:
    limits = OutboxLimits(
        max_bytes=int(outbox.get("max_mb", DEFAULT_OUTBOX_MB) * 2**20),
        max_age_s=outbox.get("max_age_days", DEFAULT_OUTBOX_DAYS) * 86400,
    )
    if limits.max_bytes < 2**20:
        raise SettingsError("outbox.max_mb", "must be at least 1")
    _positive("outbox.max_age_days", limits.max_age_s)
    return limits


def _gps_settings(gps: dict[str, Any]) -> GpsSettings:
    settings = GpsSettings(**gps)
    if settings.source not in ("serial", "gpsd"):
        raise SettingsError("gps.source", "must be 'serial' or 'gpsd'")
    if settings.source == "gpsd":
        host, _, port = settings.gpsd.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError("gps.gpsd", f"must be host:port, got {settings.gpsd!r}")
    _positive("gps.max_fix_age_s", settings.max_fix_age_s)
    _positive("gps.max_hdop", settings.max_hdop)
    _positive("gps.max_speed_mps", settings.max_speed_mps)
    if settings.min_satellites < 0:
        raise SettingsError("gps.min_satellites", "must be >= 0")
    if not 0 < settings.epoch_timeout_s <= 5:
        raise SettingsError("gps.epoch_timeout_s", "must be in (0, 5]")
    if settings.incomplete_fix not in ("reject", "accept"):
        raise SettingsError("gps.incomplete_fix", "must be 'reject' or 'accept'")
    return settings


def _publish_settings(publish: dict[str, Any]) -> PublishSettings:
    settings = PublishSettings(**publish)
    if settings.max_payload_bytes < 4096:
        raise SettingsError("mqtt.max_payload_bytes", "must be at least 4096")
    if not 1 <= settings.batch_readings <= 500:
        raise SettingsError("mqtt.batch_readings", "must be 1..500 (the wire's limit)")
    _positive("mqtt.reconnect_min_s", settings.reconnect_min_s)
    if settings.reconnect_max_s < settings.reconnect_min_s:
        raise SettingsError("mqtt.reconnect_max_s", "must be >= reconnect_min_s")
    return settings


def mqtt_from(
    section: dict[str, Any],
    environ: Mapping[str, str],
    default_username: str | None = None,
    *,
    vehicle_from_env: bool = False,
) -> MqttSettings:
    """MQTT settings from a `[mqtt]` table, with ENVPATROL_MQTT_* taking precedence.

    `default_username` is the vehicle id on a vehicle; `vehicle_from_env` says it came from
    ENVPATROL_VEHICLE, which then outranks the file's username (see the module docstring).
    """
    env_url = environ.get("ENVPATROL_MQTT_URL")
    file_url = section.get("url")
    url = env_url or file_url or "mqtt://127.0.0.1:1883"
    base = MqttSettings.from_url(url)
    protocol = section.get("protocol")
    if protocol is not None and protocol not in ("5", "3.1.1"):
        raise SettingsError("mqtt.protocol", "must be '5' or '3.1.1'")
    keepalive = section.get("keepalive_s")
    if keepalive is not None and not 5 <= keepalive <= 65535:
        raise SettingsError("mqtt.keepalive_s", "must be 5..65535")
    root = section.get("topic_root", "envpatrol")
    try:
        check_root(root)
    except TopicError as exc:
        raise SettingsError("mqtt.topic_root", str(exc)) from exc
    for key in ("ca_file", "cert_file", "key_file"):
        name = section.get(key)
        if name and not Path(name).is_file():
            raise SettingsError(f"mqtt.{key}", f"no such file: {name}")
    if section.get("key_file") and not section.get("cert_file"):
        raise SettingsError("mqtt.key_file", "needs mqtt.cert_file")
    file_user = (MqttSettings.from_url(file_url).username if file_url else None) or section.get(
        "username"
    )
    explicit = (
        environ.get("ENVPATROL_MQTT_USERNAME")
        or (base.username if env_url else None)
        or (default_username if vehicle_from_env and file_user else None)
        or file_user
    )
    password = base.password or read_secret(section.get("password_file"), "mqtt.password_file")
    username = explicit or default_username if password is not None else explicit
    return base.replace(
        username=username,
        password=password,
        ca_file=section.get("ca_file"),
        cert_file=section.get("cert_file"),
        key_file=section.get("key_file"),
        protocol=protocol,
        keepalive_s=keepalive,
        topic_root=root,
    )
