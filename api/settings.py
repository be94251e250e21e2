"""The API's settings: one TOML file plus environment overrides, checked at start-up.

- `[database] url`: libpq URL of the read-only role; ENVPATROL_DATABASE_URL replaces it.
- `[database] admin_url`: libpq URL of the role that writes the officer-owned tables (grids,
  cases, API keys), normally `envpatrol_officer`; ENVPATROL_ADMIN_DATABASE_URL replaces it.
  Default: `url` (fine for a demo whose one role may write; in production give the officer role).
- `[database] read_url`: where the reads go, normally a streaming replica of `url`'s server (or a
  libpq multi-host URL ending in `target_session_attrs=prefer-standby`); ENVPATROL_READ_DATABASE_URL
  replaces it. Default: `url`, and then reads and writes share one server as before.
- `[database] max_replica_lag_s` (10): with a `read_url`, reads go to `url` (the primary) while
  the replica is further behind than this, or does not answer (api/database.py).
- `[database] statement_timeout_s` (30): a longer query is cancelled and answered with a 503.
- `[database] connect_timeout_s` (5).
- `[database] pool_size` (8): reader connections kept open between requests (0: none).
- `[api] host` ("127.0.0.1") and `port` (8080): where to listen.
- `[auth] read_key_required` (false): whether reads need an API key (`X-API-Key`). Writes always
  need an admin key. The production config sets it to true; the demo leaves reads open.
- `[rate_limit] key_per_minute` (600) and `anonymous_per_minute` (120): requests per minute per
  verified API key and per client address without a key; `failed_auth_per_minute` (30): keys
  that fail to verify per client address, past which that address's keyed requests are refused
  (except keys it used successfully in the last half minute); 0 switches that limit off.
- `[mqtt]` (optional; ENVPATROL_MQTT_URL also enables it): the broker the live feed subscribes to,
  as for the ingest (`url`, `topic_root`, `username`, `password_file`, TLS files).
- `[dashboard] tile_url` (""): base-map tile URL template ({z}/{x}/{y}); empty: no base map
  (offline). `tile_datum` ("wgs84" or "gcj02"): the datum the tiles are drawn in; with "gcj02"
  (AMap and other Chinese maps) the dashboard shifts every shape for display only.
  `tile_attribution` (""). `static_dir`: where `api/dashboard/build` put the front-end libraries
  (default: api/dashboard/vendor in the source tree). `streets_file` (""): a GeoJSON file of the
  area's streets (named lines, WGS-84; api/streets.py), drawn on the map with or without tiles
  and naming each hotspot's street; read and checked at start-up. `timezone` ("Asia/Shanghai"):
  the zone the page shows times in. `tile_provider` ("osm", "tianditu" with `tile_key`, or
  "amap"): a preset base map with its datum and attribution (api/tiles.py); `tile_url` wins.

Unknown keys are refused, so a typo cannot go unnoticed.
"""

from __future__ import annotations

import math
import os
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from edge.config import load_toml, mqtt_from
from edge.errors import SettingsError
from edge.mqtt import MqttSettings

DATABASE_URL_ENV = "ENVPATROL_DATABASE_URL"
ADMIN_DATABASE_URL_ENV = "ENVPATROL_ADMIN_DATABASE_URL"
READ_DATABASE_URL_ENV = "ENVPATROL_READ_DATABASE_URL"
MQTT_URL_ENV = "ENVPATROL_MQTT_URL"
TILE_DATUMS = ("wgs84", "gcj02")
TILE_PROVIDERS = ("osm", "tianditu", "amap")


@dataclass(frozen=True, slots=True)
class ApiSettings:
    database_url: str
    host: str = "127.0.0.1"
    port: int = 8080
    statement_timeout_s: float = 30.0
    connect_timeout_s: int = 5
    pool_size: int = 8
    admin_database_url: str | None = None
    read_database_url: str | None = None
    max_replica_lag_s: float = 10.0
    read_key_required: bool = False
    key_per_minute: int = 600
    anonymous_per_minute: int = 120
    failed_auth_per_minute: int = 30
    mqtt: MqttSettings | None = None
    tile_url: str = ""
    tile_datum: str = "wgs84"
    tile_attribution: str = ""
    static_dir: str | None = None
    streets_file: str = ""
    timezone: str = "Asia/Shanghai"
    tile_provider: str = ""  # a preset of api.tiles: osm, tianditu, amap; tile_url wins
    tile_key: str = ""  # the provider's key (Tianditu's tk)

    def __post_init__(self) -> None:
        if not self.database_url:
            raise SettingsError(
                "database.url", f"required: set it in the file or in {DATABASE_URL_ENV}"
            )
        if not 0 <= self.port <= 65535:
            raise SettingsError("api.port", f"must be 0..65535, got {self.port}")
        self._check_database()
        for key, value in (
            ("rate_limit.key_per_minute", self.key_per_minute),
            ("rate_limit.anonymous_per_minute", self.anonymous_per_minute),
            ("rate_limit.failed_auth_per_minute", self.failed_auth_per_minute),
        ):
            if value < 0:
                raise SettingsError(key, f"must be 0 (off) or more, got {value}")
        if self.tile_datum not in TILE_DATUMS:
            raise SettingsError("dashboard.tile_datum", f"must be one of {', '.join(TILE_DATUMS)}")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError(
                "dashboard.timezone", f"unknown time zone {self.timezone!r}"
            ) from exc
        if self.tile_provider and self.tile_provider not in TILE_PROVIDERS:
            raise SettingsError(
                "dashboard.tile_provider", f"must be one of {', '.join(TILE_PROVIDERS)}"
            )
        if self.tile_provider == "tianditu" and not self.tile_key and not self.tile_url:
            raise SettingsError("dashboard.tile_key", "Tianditu needs its key (tk)")
        if self.tile_url and not self.tile_url.startswith(("http://", "https://", "/")):
            raise SettingsError("dashboard.tile_url", "must be an http(s) URL or a local path")

    def _check_database(self) -> None:
        if not 0 <= self.pool_size <= 100:
            raise SettingsError("database.pool_size", "must be between 0 and 100")
        for name, seconds in (
            ("statement_timeout_s", self.statement_timeout_s),
            ("max_replica_lag_s", self.max_replica_lag_s),
        ):
            if not (math.isfinite(seconds) and seconds > 0):
                raise SettingsError(f"database.{name}", "must be a positive number")
        if self.connect_timeout_s < 1:
            raise SettingsError("database.connect_timeout_s", "must be at least 1")
        for key, url in (
            ("database.url", self.database_url),
            ("database.read_url", self.reader_url),
        ):
            if _session_attrs(url) == "read-write":
                # libpq judges read-write by default_transaction_read_only, which the API's
                # read sessions turn on: no server would ever match.
                raise SettingsError(
                    key,
                    "target_session_attrs=read-write never matches the API's read-only "
                    "sessions; use target_session_attrs=primary",
                )

    @property
    def writer_url(self) -> str:
        return self.admin_database_url or self.database_url

    @property
    def reader_url(self) -> str:
        """Where reads go: the replica when one is set, else the primary's reader URL."""
        return self.read_database_url or self.database_url

    @property
    def has_replica(self) -> bool:
        return bool(self.read_database_url) and self.read_database_url != self.database_url


def _session_attrs(url: str) -> str | None:
    try:
        value = conninfo_to_dict(url).get("target_session_attrs")
    except psycopg.ProgrammingError:
        return None  # a malformed URL fails at the first connection, with libpq's message
    return None if value is None else str(value)


_TYPES: dict[str, dict[str, type]] = {
    "database": {
        "url": str,
        "admin_url": str,
        "read_url": str,
        "max_replica_lag_s": float,
        "statement_timeout_s": float,
        "connect_timeout_s": int,
        "pool_size": int,
    },
    "api": {"host": str, "port": int},
    "auth": {"read_key_required": bool},
    "rate_limit": {
        "key_per_minute": int,
        "anonymous_per_minute": int,
        "failed_auth_per_minute": int,
    },
    "dashboard": {
        "tile_url": str,
        "tile_datum": str,
        "tile_attribution": str,
        "static_dir": str,
        "streets_file": str,
        "timezone": str,
        "tile_provider": str,
        "tile_key": str,
    },
}


def _checked(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for section, table in doc.items():
        if section == "mqtt":
            continue  # checked by mqtt_from, as for the ingest
        if section not in _TYPES:
            raise SettingsError(section, "unknown section")
        if not isinstance(table, dict):
            raise SettingsError(section, "must be a table")
        out[section] = {}
        for key, raw in table.items():
            want = _TYPES[section].get(key)
            if want is None:
                raise SettingsError(f"{section}.{key}", "unknown setting")
            value = float(raw) if want is float and type(raw) is int else raw
            if want is bool:
                if not isinstance(value, bool):
                    raise SettingsError(f"{section}.{key}", f"must be true or false, got {raw!r}")
            elif not isinstance(value, want) or isinstance(value, bool):
                raise SettingsError(f"{section}.{key}", f"must be {want.__name__}, got {raw!r}")
            out[section][key] = value
    return out


def _mqtt(doc: Mapping[str, Any], environ: Mapping[str, str]) -> MqttSettings | None:
    section = doc.get("mqtt")
    if section is None and not environ.get(MQTT_URL_ENV):
        return None
    if section is not None and not isinstance(section, dict):
        raise SettingsError("mqtt", "must be a table")
    allowed = {"url", "topic_root", "username", "password_file", "ca_file", "cert_file"}
    allowed |= {"key_file", "protocol", "keepalive_s"}
    for key in section or {}:
        if key not in allowed:
            raise SettingsError(f"mqtt.{key}", "unknown setting")
    return mqtt_from(dict(section or {}), environ)


def load_api_settings(path: str | None, environ: Mapping[str, str] = os.environ) -> ApiSettings:
    """Settings from a TOML file (optional) and ENVPATROL_* variables (which win)."""
    doc = load_toml(path)
    sections = _checked(doc)
    database = sections.get("database", {})
    api = sections.get("api", {})
    url = environ.get(DATABASE_URL_ENV) or database.pop("url", "")
    database.pop("url", None)
    admin_url = environ.get(ADMIN_DATABASE_URL_ENV) or database.pop("admin_url", None)
    database.pop("admin_url", None)
    read_url = environ.get(READ_DATABASE_URL_ENV) or database.pop("read_url", None)
    database.pop("read_url", None)
    return ApiSettings(
        database_url=url,
        admin_database_url=admin_url,
        read_database_url=read_url,
        host=api.get("host", "127.0.0.1"),
        port=api.get("port", 8080),
        mqtt=_mqtt(doc, environ),
        **database,
        **sections.get("auth", {}),
        **sections.get("rate_limit", {}),
        **sections.get("dashboard", {}),
    )
