"""The ingest's settings: a TOML file plus ENVPATROL_* environment overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from edge.config import load_toml, mqtt_from
from edge.mqtt import MqttSettings, SettingsError

DEFAULT_CLIENT_ID = "envpatrol-ingest-1"
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class IngestSettings:
    database_url: str
    mqtt: MqttSettings
    client_id: str = DEFAULT_CLIENT_ID
    h3_resolution: int = 10
    batch_max_messages: int = 1000
    batch_max_wait_s: float = 0.5
    session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S


def load_ingest_settings(
    path: str | None, environ: Mapping[str, str] = os.environ
) -> IngestSettings:
    doc = load_toml(path)
    unknown = set(doc) - {"mqtt", "database", "ingest"}
    if unknown:
        raise SettingsError(sorted(unknown)[0], "unknown setting")
    mqtt_doc = dict(doc.get("mqtt", {}))
    client_id = environ.get("ENVPATROL_INGEST_CLIENT_ID") or mqtt_doc.pop("client_id", None)
    mqtt = mqtt_from(mqtt_doc, environ)
    db = doc.get("database", {})
    url = environ.get("ENVPATROL_DATABASE_URL") or db.get("url")
    if not url:
        raise SettingsError("database.url", "required (or set ENVPATROL_DATABASE_URL)")
    ingest = doc.get("ingest", {})
    allowed = {"h3_resolution", "batch_max_messages", "batch_max_wait_s", "session_expiry_s"}
    if set(ingest) - allowed:
        raise SettingsError(f"ingest.{sorted(set(ingest) - allowed)[0]}", "unknown setting")
    resolution = int(environ.get("ENVPATROL_H3_RESOLUTION") or ingest.get("h3_resolution", 10))
    if not 0 <= resolution <= 15:
        raise SettingsError("ingest.h3_resolution", "must be 0..15")
    settings = IngestSettings(
        database_url=url,
        mqtt=mqtt,
        client_id=client_id or DEFAULT_CLIENT_ID,
        h3_resolution=resolution,
        batch_max_messages=int(ingest.get("batch_max_messages", 1000)),
        batch_max_wait_s=float(ingest.get("batch_max_wait_s", 0.5)),
        session_expiry_s=int(ingest.get("session_expiry_s", DEFAULT_SESSION_EXPIRY_S)),
    )
    if settings.batch_max_messages < 1 or settings.batch_max_wait_s <= 0:
        raise SettingsError("ingest", "batch_max_messages >= 1 and batch_max_wait_s > 0 required")
    return settings
