"""The ingest's settings: a TOML file plus ENVPATROL_* environment overrides."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from edge.config import load_toml, mqtt_from
from edge.errors import SettingsError
from edge.mqtt import MqttSettings
from ingest.validate import DEFAULT_MAX_FUTURE_S, DEFAULT_MIN_TIME, MAX_PAYLOAD_BYTES
from store.migrate import BACKEND_CHOICES, BackendChoice

DEFAULT_CLIENT_ID = "envpatrol-ingest-1"
_GROUP = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600
# Per batch the database pays a cost per vehicle and per cell (passes, rollups, positions) as
# well as per reading: draining a fleet's backlog of one-reading messages, large batches store
# many more readings a second than small ones (docs/performance.md, Ingest). Live traffic closes batches by time long before either bound.
DEFAULT_BATCH_MESSAGES = 10_000
# Received messages not yet committed, in bytes (docs/storage.md, "Ingest memory").
DEFAULT_INBOX_MAX_BYTES = 16 * 1024 * 1024
MIN_INBOX_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class IngestSettings:
    database_url: str
    mqtt: MqttSettings
    # `[database] backend`: "auto", "timescale" or "plain" (store.migrate, docs/storage.md).
    database_backend: BackendChoice = "auto"
    client_id: str = DEFAULT_CLIENT_ID
    # H3 resolution of the cells of a fresh database (docs/hotspots.md, "Default resolution").
    # A migrated database keeps its own (`meta`, store.analysis_meta), which every reader and
    # the analysis use; only `envpatrol rebuild` changes it.
    h3_resolution: int = 10
    batch_max_messages: int = DEFAULT_BATCH_MESSAGES
    batch_max_wait_s: float = 0.5
    # A batch also closes once it holds this many readings (a catch-up message carries up to
    # hundreds): bounded transactions, and the next batch parsed while this one commits.
    batch_max_readings: int = 50_000
    session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S
    # MQTT 5 shared subscription group for the readings: several workers, each with its own
    # stable client id, then split the readings between them. Empty: a plain subscription.
    share_group: str = ""
    # With a share_group: a worker whose status has said "offline" (stopped, or lost: its last
    # will) for adopt_after_s has its session adopted by one surviving worker, which stores
    # what the broker queued for it and has the broker remove that session, so that its share
    # of the readings goes to the workers alive (ingest/workers.py, docs/reliability.md).
    adopt_peers: bool = True
    adopt_after_s: float = 15.0
    # Broker passwords of the other workers' accounts, one file per account named by its
    # username (a broker binding client ids to usernames lets only a worker's own account
    # resume its session). Empty, or no file for a worker: this worker's own password.
    peer_password_dir: str = ""
    # Prometheus /metrics on this port (0: none), on metrics_host.
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    # A database round trip that takes longer than this is abandoned: the connection is cut, the
    # batch retried on a new one (a silently dead network path never errors by itself).
    db_timeout_s: float = 60.0
    # The database server drops an ingest connection whose host has vanished within about twice
    # this (TCP keep-alive and user timeout on the server's side): its open transaction is rolled
    # back and its locks, which the other workers' batches wait on, released. 0: the server's
    # defaults (over two hours on Linux).
    db_keepalive_s: int = 10
    # Plain PostgreSQL: readings older than this many days are dropped, a daily partition at a
    # time (0: keep everything). TimescaleDB: see 0004_partitions.timescale.sql.
    retention_days: int = 0
    # TimescaleDB: chunks are compressed once this old (longer than the longest offline period).
    compress_after_days: int = 7
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    # Readings stamped further ahead of the ingest's clock than this are rejected.
    max_future_s: float = DEFAULT_MAX_FUTURE_S
    # Received messages not yet committed may hold this many bytes: beyond it QoS 0 messages
    # are dropped, oldest first, and once the rest fills it the socket is not read.
    inbox_max_bytes: int = DEFAULT_INBOX_MAX_BYTES
    # Readings older than this are rejected; the default lets historical drives be loaded.
    min_time: datetime = DEFAULT_MIN_TIME


def load_ingest_settings(
    path: str | None, environ: Mapping[str, str] = os.environ
) -> IngestSettings:
    doc = load_toml(path)
    # [hotspots] is the analysis job's (hotspots.settings), in the same file.
    unknown = set(doc) - {"mqtt", "database", "ingest", "hotspots"}
    if unknown:
        raise SettingsError(sorted(unknown)[0], "unknown setting")
    mqtt_doc = dict(doc.get("mqtt", {}))
    client_id = environ.get("ENVPATROL_INGEST_CLIENT_ID") or mqtt_doc.pop("client_id", None)
    mqtt = mqtt_from(mqtt_doc, environ)
    db = doc.get("database", {})
    if set(db) - {"url", "backend"}:
        raise SettingsError(
            f"database.{sorted(set(db) - {'url', 'backend'})[0]}", "unknown setting"
        )
    url = environ.get("ENVPATROL_DATABASE_URL") or db.get("url")
    if not url:
        raise SettingsError("database.url", "required (or set ENVPATROL_DATABASE_URL)")
    backend = environ.get("ENVPATROL_DATABASE_BACKEND") or db.get("backend", "auto")
    if backend not in BACKEND_CHOICES:
        raise SettingsError("database.backend", 'must be "auto", "timescale" or "plain"')
    ingest = doc.get("ingest", {})
    allowed = {
        "h3_resolution",
        "batch_max_messages",
        "batch_max_wait_s",
        "batch_max_readings",
        "session_expiry_s",
        "share_group",
        "adopt_peers",
        "adopt_after_s",
        "peer_password_dir",
        "metrics_port",
        "metrics_host",
        "db_timeout_s",
        "db_keepalive_s",
        "retention_days",
        "compress_after_days",
        "max_payload_bytes",
        "max_future_s",
        "min_time",
        "inbox_max_bytes",
    }
    if set(ingest) - allowed:
        raise SettingsError(f"ingest.{sorted(set(ingest) - allowed)[0]}", "unknown setting")
    resolution = int(environ.get("ENVPATROL_H3_RESOLUTION") or ingest.get("h3_resolution", 10))
    if not 0 <= resolution <= 15:
        raise SettingsError("ingest.h3_resolution", "must be 0..15")
    settings = IngestSettings(
        database_url=url,
        mqtt=mqtt,
        database_backend=backend,
        # A broker that binds client ids to accounts uses the username: the same session here.
        client_id=client_id or mqtt.username or DEFAULT_CLIENT_ID,
        h3_resolution=resolution,
        batch_max_messages=int(ingest.get("batch_max_messages", DEFAULT_BATCH_MESSAGES)),
        batch_max_wait_s=float(ingest.get("batch_max_wait_s", 0.5)),
        batch_max_readings=int(ingest.get("batch_max_readings", 50_000)),
        session_expiry_s=int(ingest.get("session_expiry_s", DEFAULT_SESSION_EXPIRY_S)),
        share_group=str(
            environ.get("ENVPATROL_INGEST_SHARE_GROUP") or ingest.get("share_group", "")
        ),
        adopt_peers=_flag("ingest.adopt_peers", ingest.get("adopt_peers", True)),
        adopt_after_s=float(ingest.get("adopt_after_s", 15.0)),
        peer_password_dir=str(ingest.get("peer_password_dir", "")),
        metrics_port=int(
            environ.get("ENVPATROL_INGEST_METRICS_PORT") or ingest.get("metrics_port", 0)
        ),
        metrics_host=str(ingest.get("metrics_host", "127.0.0.1")),
        db_timeout_s=float(ingest.get("db_timeout_s", 60.0)),
        db_keepalive_s=int(ingest.get("db_keepalive_s", 10)),
        retention_days=int(ingest.get("retention_days", 0)),
        compress_after_days=int(ingest.get("compress_after_days", 7)),
        max_payload_bytes=int(ingest.get("max_payload_bytes", MAX_PAYLOAD_BYTES)),
        max_future_s=float(ingest.get("max_future_s", DEFAULT_MAX_FUTURE_S)),
        inbox_max_bytes=int(ingest.get("inbox_max_bytes", DEFAULT_INBOX_MAX_BYTES)),
        min_time=_moment("ingest.min_time", ingest.get("min_time", DEFAULT_MIN_TIME)),
    )
    if settings.share_group:
        _check_share_group(settings.share_group, mqtt)
    if not 0 <= settings.metrics_port <= 65535:
        raise SettingsError("ingest.metrics_port", "must be 0..65535")
    if settings.inbox_max_bytes < MIN_INBOX_MAX_BYTES:
        raise SettingsError("ingest.inbox_max_bytes", f"must be at least {MIN_INBOX_MAX_BYTES}")
    if settings.compress_after_days < 1:
        raise SettingsError("ingest.compress_after_days", "must be at least 1")
    if (
        settings.db_timeout_s <= 0
        or settings.retention_days < 0
        or settings.max_future_s < 0
        or settings.adopt_after_s < 0
        or settings.db_keepalive_s < 0
    ):
        raise SettingsError(
            "ingest",
            "db_timeout_s > 0; retention_days, max_future_s, adopt_after_s, db_keepalive_s >= 0",
        )
    if (
        settings.batch_max_messages < 1
        or settings.batch_max_readings < 1
        or settings.batch_max_wait_s <= 0
    ):
        raise SettingsError(
            "ingest",
            "batch_max_messages >= 1, batch_max_readings >= 1 and batch_max_wait_s > 0 required",
        )
    return settings


def _flag(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(key, "must be true or false")
    return value


def _check_share_group(group: str, mqtt: MqttSettings) -> None:
    if not _GROUP.fullmatch(group):
        raise SettingsError("ingest.share_group", "letters, digits, - and _ only")
    if mqtt.protocol != "5":
        # MQTT 3.1.1 has no shared subscriptions: one worker per broker (docs/broker.md).
        raise SettingsError("ingest.share_group", "needs MQTT 5; the broker URL asks for 3.1.1")


def _moment(key: str, value: object) -> datetime:
    """A TOML offset date-time, or an ISO 8601 string with an offset."""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        raise SettingsError(key, "an ISO 8601 date-time with an offset") from None
    if moment.tzinfo is None:
        raise SettingsError(key, "needs an offset (e.g. Z)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise SettingsError(key, "beyond the range of UTC times") from None
