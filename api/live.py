"""The live feed: vehicle positions and online state from the broker, as server-sent events.

Each `/v1/live` client gets its own asyncio MQTT subscription (aiomqtt, QoS 0, clean session) to
every vehicle's readings and status topics. A lost update costs nothing here (the next reading
comes 10 s later, and the stored data are the record), so QoS 0 and aiomqtt's early
acknowledgement are fine, unlike in the ingest. Events:

- `ready`: the subscription is in place (sent once, first);
- `position`: {vehicle, seq, time, lat, lon, values} for the newest reading with a valid fix in
  a readings message;
- `status`: {vehicle, state, time} from a vehicle's status message;
- `error`: the broker cannot be reached (the stream then ends; clients reconnect);
- a comment line every `HEARTBEAT_S` seconds keeps proxies from closing an idle stream.

A payload that does not decode is skipped, logged at debug level and counted in `LiveStats`;
the feed never stops for it (the ingest is where bad messages are kept and counted for
operators).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiomqtt
import orjson

from edge.mqtt import MqttSettings
from edge.topics import TopicError, Topics
from edge.wire import WireError, decode_message, format_time

log = logging.getLogger("envpatrol.api.live")

HEARTBEAT_S = 15.0


@dataclass(frozen=True, slots=True)
class LiveEvent:
    kind: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        """One SSE event (the JSON has no newline, so one data line)."""
        return b"event: " + self.kind.encode() + b"\ndata: " + orjson.dumps(self.data) + b"\n\n"


@dataclass
class LiveStats:
    delivered: int = 0
    skipped: int = 0


def events_from(topics: Topics, topic: str, payload: bytes) -> list[LiveEvent]:
    """What one MQTT message means for the feed; raises ValueError for one it cannot read."""
    vehicle, kind = topics.parse(topic)
    if kind == "readings":
        sender, readings = decode_message(payload)
        if sender != vehicle:
            raise ValueError(f"payload of {sender!r} on {vehicle!r}'s topic")
        fixed = [r for r in readings if r.position is not None and r.position.valid]
        if not fixed:
            return []
        newest = max(fixed, key=lambda r: (r.time, r.seq))
        assert newest.position is not None
        return [
            LiveEvent(
                "position",
                {
                    "vehicle": vehicle,
                    "seq": newest.seq,
                    "time": format_time(newest.time),
                    "lat": newest.position.lat,
                    "lon": newest.position.lon,
                    "values": newest.values,
                },
            )
        ]
    if kind == "status":
        doc = json.loads(payload)
        if not isinstance(doc, dict) or not isinstance(doc.get("state"), str):
            raise ValueError("a status message has a string `state`")
        return [
            LiveEvent(
                "status", {"vehicle": vehicle, "state": doc["state"], "time": doc.get("time")}
            )
        ]
    return []


def _tls(settings: MqttSettings) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.cert_file:
        context.load_cert_chain(settings.cert_file, settings.key_file or None)
    return context


def client_for(settings: MqttSettings) -> aiomqtt.Client:
    protocol = (
        aiomqtt.ProtocolVersion.V5 if settings.protocol == "5" else aiomqtt.ProtocolVersion.V311
    )
    return aiomqtt.Client(
        settings.host,
        settings.port,
        username=settings.username,
        password=settings.password,
        identifier=f"envpatrol-api-live-{secrets.token_hex(4)}",
        protocol=protocol,
        keepalive=settings.keepalive_s,
        tls_context=_tls(settings),
        timeout=10,
    )


async def feed(
    settings: MqttSettings, stats: LiveStats | None = None, heartbeat_s: float = HEARTBEAT_S
) -> AsyncIterator[bytes]:
    """SSE bytes until the consumer stops iterating (the HTTP client went away)."""
    stats = stats or LiveStats()
    topics = Topics(settings.topic_root)
    try:
        async with client_for(settings) as client:
            await client.subscribe(topics.all_of("readings"), qos=0)
            await client.subscribe(topics.all_of("status"), qos=0)
            yield LiveEvent(
                "ready", {"topics": [topics.all_of("readings"), topics.all_of("status")]}
            ).encode()
            # aiomqtt's iterator may be cancelled mid-wait and used again (unlike an async
            # generator), which the heartbeat timeout relies on.
            messages = client.messages
            while True:
                try:
                    message = await asyncio.wait_for(anext(messages), heartbeat_s)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                payload = message.payload if isinstance(message.payload, bytes) else b""
                try:
                    events = events_from(topics, message.topic.value, payload)
                except (ValueError, TopicError, WireError) as exc:
                    stats.skipped += 1
                    log.debug("live feed skipped a message on %s: %s", message.topic.value, exc)
                    continue
                for event in events:
                    stats.delivered += 1
                    yield event.encode()
    except aiomqtt.MqttError as exc:
        log.warning("live feed: broker %s: %s", settings.url, exc)
        yield LiveEvent("error", {"detail": f"the broker cannot be reached: {exc}"}).encode()
