"""Broker connection settings and the paho client built from them (shared with the ingest)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.errors import SettingsError

Protocol = Literal["5", "3.1.1"]


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    protocol: Protocol = "5"
    keepalive_s: int = 30
    topic_root: str = "envpatrol"

    @classmethod
    def from_url(cls, url: str, **overrides: object) -> MqttSettings:
        """`mqtt://[user[:password]@]host[:port]` or `mqtts://...` (TLS, default port 8883).

        A `?protocol=3.1.1` query selects MQTT 3.1.1 for brokers without MQTT 5.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise SettingsError("mqtt.url", f"scheme must be mqtt:// or mqtts://, got {url!r}")
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise SettingsError("mqtt.url", f"bad port in {url!r}") from exc
        protocol: Protocol = "5"
        for item in filter(None, parts.query.split("&")):
            key, _, value = item.partition("=")
            if key == "protocol" and value in ("5", "3.1.1"):
                protocol = value  # type: ignore[assignment]
            else:
                raise SettingsError("mqtt.url", f"unknown option {item!r}")
        base = cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            protocol=protocol,
        )
        return base.replace(**overrides)

    def replace(self, **changes: object) -> MqttSettings:
        from dataclasses import replace

        clean = {k: v for k, v in changes.items() if v is not None and v != ""}
        return replace(self, **clean)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        """The broker's address without credentials, for logs."""
        scheme = "mqtts" if self.tls else "mqtt"
        suffix = "?protocol=3.1.1" if self.protocol == "3.1.1" else ""
        return f"{scheme}://{self.host}:{self.port}{suffix}"


def read_secret(path: str | None, key: str) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(key, f"cannot read {path}: {exc.strerror}") from exc


def make_client(
    settings: MqttSettings,
    client_id: str,
    *,
    clean_start: bool = True,
    factory: type[paho.Client] = paho.Client,
) -> paho.Client:
    """A paho client (`factory`: paho's Client or a subclass) configured for `settings`; the
    caller sets callbacks and connects."""
    v5 = settings.protocol == "5"
    client = factory(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else clean_start,
    )
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        context = ssl.create_default_context(cafile=settings.ca_file)
        if settings.cert_file:
            context.load_cert_chain(settings.cert_file, settings.key_file or None)
        client.tls_set_context(context)
    client.reconnect_delay_set(1, 60)
    return client


def connect_properties(session_expiry_s: int = 0, receive_maximum: int | None = None) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if session_expiry_s:
        props.SessionExpiryInterval = session_expiry_s
    if receive_maximum:
        props.ReceiveMaximum = receive_maximum
    return props


# What a broker that speaks only MQTT 3.1.1 does with an MQTT 5 CONNECT: NATS answers
# "unacceptable protocol version"; RabbitMQ before 3.13 closes the connection unanswered.
_ONLY_311_HINT = (
    "a broker that speaks only MQTT 3.1.1 does that: add ?protocol=3.1.1 to the broker URL"
)
UNSUPPORTED_PROTOCOL_VERSION = 0x84


def connect_refused(settings: MqttSettings, reason: ReasonCode) -> str:
    """What to say when the broker's CONNACK refuses the connection."""
    text = f"the broker at {settings.url} refused the connection: {reason}"
    if settings.protocol == "5" and reason.value == UNSUPPORTED_PROTOCOL_VERSION:
        text += f" ({_ONLY_311_HINT})"
    return text


def closed_unanswered(settings: MqttSettings) -> str:
    """What to say when the broker closed the connection without a CONNACK."""
    text = f"the broker at {settings.url} closed the connection without answering CONNECT"
    if settings.protocol == "5":
        return f"{text} ({_ONLY_311_HINT})"
    return f"{text} (is it an MQTT broker, and is TLS as the URL says?)"
