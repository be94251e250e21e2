"""The live feed: vehicle positions and online state from the broker, as server-sent events.

Each `/v1/live` client gets its own asyncio MQTT subscription (aiomqtt, QoS 0, clean session) to
every vehicle's readings and status topics. A lost update costs nothing here (the next reading
comes 10 s later, and the stored data are the record), so QoS 0 and aiomqtt's early
acknowledgement are fine, unlike in the ingest. Events:

- `ready`: the subscription is in place (sent once, first);
- `position`: {vehicle, seq, time, lat, lon, values} for the newest reading with a valid fix in
  a readings message;
- `status`: {vehicle, state, time} from a vehicle's status message;
- `hotspot`: {id, run_id, rank, pollutant, stratum, label, cell, lat, lon, level, unit} for each
  hotspot of a new analysis run with no hotspot of the same pollutant and stratum on any of its
  cells in the run before (hotspots.evidence.new_ranks). The feed polls `hotspot_run` every
  `HOTSPOT_POLL_S` seconds on the API's read connection (the job needs no broker access, and a
  client that reconnects loses nothing it cannot read from /v1/hotspots); the runs already there
  when the stream opens are not announced;
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
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import orjson
import psycopg

from edge.mqtt import MqttSettings
from edge.topics import TopicError, Topics
from edge.wire import WireError, decode_message, format_time

log = logging.getLogger("envpatrol.api.live")

HEARTBEAT_S = 15.0
HOTSPOT_POLL_S = 5.0


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


@dataclass
class HotspotWatch:
    """New-hotspot events from the job's runs: `poll` compares the newest run with the one
    announced last (the first poll only takes note of it)."""

    connect: Callable[[], psycopg.Connection[Any]]
    last_run: int | None = None
    primed: bool = False

    def poll(self) -> list[LiveEvent]:
        from hotspots import evidence, results

        with self.connect() as conn:
            runs = results.recent_runs(conn, 2)
            newest = runs[0] if runs else None
            if not self.primed or newest is None or newest.id == self.last_run:
                self.primed = True
                self.last_run = None if newest is None else newest.id
                return []
            previous = runs[1].id if len(runs) > 1 else None
            self.last_run = newest.id
            ranks = set(evidence.new_ranks(conn, newest.id, previous))
            spots = results.hotspots_of_run(conn, newest)
        return [
            LiveEvent(
                "hotspot",
                {
                    "id": f"{s.run_id}-{s.rank}",
                    "run_id": s.run_id,
                    "rank": s.rank,
                    "pollutant": s.pollutant,
                    "stratum": s.stratum,
                    "label": s.label,
                    "cell": s.peak_cell,
                    "lat": s.lat,
                    "lon": s.lon,
                    "level": s.level,
                    "unit": s.unit,
                },
            )
            for s in spots
            if s.rank in ranks
        ]


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


async def _hotspot_events(watch: HotspotWatch | None) -> list[LiveEvent]:
    if watch is None:
        return []
    try:
        return await asyncio.to_thread(watch.poll)
    except psycopg.Error as exc:  # the feed goes on; the next poll tries again
        log.warning("live feed: cannot read hotspot runs: %s", exc)
        return []


async def feed(
    settings: MqttSettings,
    stats: LiveStats | None = None,
    heartbeat_s: float = HEARTBEAT_S,
    watch: HotspotWatch | None = None,
    poll_s: float = HOTSPOT_POLL_S,
) -> AsyncIterator[bytes]:
    """SSE bytes until the consumer stops iterating (the HTTP client went away)."""
    stats = stats or LiveStats()
    await _hotspot_events(watch)  # takes note of the runs already there
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
            last_beat = last_poll = time.monotonic()
            while True:
                now = time.monotonic()
                if watch is not None and now - last_poll >= poll_s:
                    last_poll = now
                    for event in await _hotspot_events(watch):
                        stats.delivered += 1
                        yield event.encode()
                wait = heartbeat_s - (now - last_beat)
                if watch is not None:
                    wait = min(wait, poll_s - (now - last_poll))
                try:
                    message = await asyncio.wait_for(anext(messages), max(0.01, wait))
                except TimeoutError:
                    if time.monotonic() - last_beat >= heartbeat_s:
                        last_beat = time.monotonic()
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
