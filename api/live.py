"""The live feed: vehicle positions and online state from the broker, as server-sent events.

One `LiveHub` per API process holds the one broker connection of the feed (aiomqtt, QoS 0, clean
session) and fans what arrives out to every `/v1/live` viewer. Brokers that bind the client id to
the login (the shipped Mosquitto's `use_username_as_clientid`) allow one connection per account,
so a connection per viewer would have each viewer's connection replace the one before. The hub
connects when the first viewer comes and disconnects `IDLE_S` seconds after the last one left.

A lost update costs nothing here (the next reading comes soon, and the stored data are the
record), so QoS 0 and aiomqtt's early acknowledgement are fine, unlike in the ingest. Events:

- `ready`: the subscription is in place (sent once, first);
- `position`: {vehicle, seq, time, lat, lon, values} for the newest reading with a valid fix in
  a readings message;
- `status`: {vehicle, state, time} from a vehicle's status message;
- `hotspot`: {id, run_id, rank, pollutant, stratum, label, cell, lat, lon, level, unit} for each
  hotspot of a new analysis run with no hotspot of the same pollutant and stratum on any of its
  cells in the run before (hotspots.evidence.new_ranks). The hub polls `hotspot_run` every
  `HOTSPOT_POLL_S` seconds on the API's read connection while it is connected (the job needs no
  broker access, and a client that reconnects loses nothing it cannot read from /v1/hotspots);
  the runs already there when the hub connects are not announced;
- `error`: the broker cannot be reached or went away; the stream then ends and clients
  reconnect. The hub tries again only after a backoff (`Backoff`), doubling while attempts fail:
  a viewer that comes back sooner gets the `error` at once, without a connection attempt;
- a comment line after `HEARTBEAT_S` seconds without an event keeps proxies from closing an idle
  stream.

Each viewer has a bounded queue (`ViewerQueue`): a viewer that reads more slowly than events
come loses its oldest position events (counted in `LiveStats.dropped`); the hub never waits for
a viewer. A payload that does not decode is skipped, logged at debug level and counted in
`LiveStats.skipped`; the feed never stops for it (the ingest is where bad messages are kept and
counted for operators).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiomqtt
import orjson
import psycopg

from edge.errors import EnvpatrolError
from edge.mqtt import MqttSettings
from edge.topics import TopicError, Topics
from edge.wire import WireError, decode_message, format_time

__all__ = [
    "HEARTBEAT_S",
    "HOTSPOT_POLL_S",
    "IDLE_S",
    "VIEWER_QUEUE_EVENTS",
    "Backoff",
    "BrokerLostError",
    "BrokerMessage",
    "BrokerSource",
    "HotspotWatch",
    "LiveEvent",
    "LiveHub",
    "LiveStats",
    "MessageSource",
    "ViewerQueue",
    "events_from",
    "feed",
]

log = logging.getLogger("envpatrol.api.live")

HEARTBEAT_S = 15.0
HOTSPOT_POLL_S = 5.0
IDLE_S = 60.0
VIEWER_QUEUE_EVENTS = 256
HEARTBEAT = b": heartbeat\n\n"

BrokerMessage = tuple[str, bytes]  # topic, payload


@dataclass(frozen=True, slots=True)
class LiveEvent:
    kind: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        """One SSE event (the JSON has no newline, so one data line)."""
        return b"event: " + self.kind.encode() + b"\ndata: " + orjson.dumps(self.data) + b"\n\n"


@dataclass
class LiveStats:
    """The feed's counters since the process started: events written to viewers, messages
    skipped, events dropped for slow viewers, broker connections made."""

    delivered: int = 0
    skipped: int = 0
    dropped: int = 0
    connections: int = 0


class BrokerLostError(EnvpatrolError):
    """The broker (`subject`, its URL) cannot be reached, refused the login or went away."""


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


class ViewerQueue:
    """One viewer's events not yet written, at most `capacity` of them. When it is full, the
    oldest position event makes room: a newer position of the vehicle follows, while a state
    change or a hotspot would not come again (if the queue holds nothing but those, a new
    position is dropped, and anything else pushes out the oldest event). `close` ends the queue,
    with a last event that is never dropped."""

    def __init__(self, capacity: int, stats: LiveStats) -> None:
        if capacity < 1:
            raise ValueError("a viewer queue holds at least one event")
        self.capacity = capacity
        self.stats = stats
        self.dropped = 0
        self.closed = False
        self._events: deque[LiveEvent] = deque()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._events)

    def pending(self) -> list[LiveEvent]:
        return list(self._events)

    @property
    def finished(self) -> bool:
        """Closed, and its last event taken."""
        return self.closed and not self._events

    def put(self, event: LiveEvent) -> None:
        if self.closed:
            return
        if len(self._events) >= self.capacity and not self._drop_oldest_position():
            if event.kind == "position":
                self._count_drop()
                return
            self._events.popleft()
            self._count_drop()
        self._events.append(event)
        self._wake.set()

    def close(self, last: LiveEvent | None = None) -> None:
        if self.closed:
            return
        if last is not None:
            self._events.append(last)
        self.closed = True
        self._wake.set()

    async def next(self, timeout: float) -> LiveEvent | None:
        """The oldest event, waiting up to `timeout` seconds for one; None if none came (or the
        queue was closed without a last event)."""
        if not self._events and not self.closed:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        return self._events.popleft() if self._events else None

    def _drop_oldest_position(self) -> bool:
        for index, queued in enumerate(self._events):
            if queued.kind == "position":
                del self._events[index]
                self._count_drop()
                return True
        return False

    def _count_drop(self) -> None:
        self.dropped += 1
        self.stats.dropped += 1


@dataclass
class Backoff:
    """Seconds to wait before the next connection attempt: `first_s`, doubling up to `max_s`
    while attempts fail; `reset` after a connection holds."""

    first_s: float = 1.0
    max_s: float = 30.0
    _next_s: float = field(default=0.0, init=False)

    def next(self) -> float:
        delay = self._next_s or self.first_s
        self._next_s = min(delay * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._next_s = 0.0


class MessageSource(Protocol):
    """Where the hub's messages come from. `session` connects and subscribes to `filters`; the
    iterator it gives yields (topic, payload) until the connection ends, and then raises
    BrokerLostError. Connecting raises BrokerLostError too. Leaving the session disconnects."""

    def session(
        self, filters: Sequence[str]
    ) -> AbstractAsyncContextManager[AsyncIterator[BrokerMessage]]: ...


def _tls(settings: MqttSettings) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.cert_file:
        context.load_cert_chain(settings.cert_file, settings.key_file or None)
    return context


def client_for(settings: MqttSettings, identifier: str) -> aiomqtt.Client:
    protocol = (
        aiomqtt.ProtocolVersion.V5 if settings.protocol == "5" else aiomqtt.ProtocolVersion.V311
    )
    return aiomqtt.Client(
        settings.host,
        settings.port,
        username=settings.username,
        password=settings.password,
        identifier=identifier,
        protocol=protocol,
        keepalive=settings.keepalive_s,
        tls_context=_tls(settings),
        timeout=10,
    )


@dataclass
class BrokerSource:
    """The broker as a MessageSource: an aiomqtt connection per session. The client id only
    matters on brokers that do not replace it by the username; it is random so that two API
    processes there do not share a session."""

    settings: MqttSettings
    identifier: str = field(default_factory=lambda: f"envpatrol-api-live-{secrets.token_hex(4)}")

    @asynccontextmanager
    async def session(self, filters: Sequence[str]) -> AsyncIterator[AsyncIterator[BrokerMessage]]:
        try:
            async with client_for(self.settings, self.identifier) as client:
                for topic_filter in filters:
                    await client.subscribe(topic_filter, qos=0)
                yield self._messages(client)
        except aiomqtt.MqttError as exc:
            raise self._lost(exc) from exc

    async def _messages(self, client: aiomqtt.Client) -> AsyncIterator[BrokerMessage]:
        try:
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                yield message.topic.value, payload
        except aiomqtt.MqttError as exc:
            raise self._lost(exc) from exc

    def _lost(self, exc: aiomqtt.MqttError) -> BrokerLostError:
        # "Disconnected during message iteration" says less than its cause (e.g. the session
        # taken over by another login of the same account).
        cause = exc.__cause__ if isinstance(exc.__cause__, aiomqtt.MqttError) else exc
        return BrokerLostError(self.settings.url, str(cause))


async def _hotspot_events(watch: HotspotWatch | None) -> list[LiveEvent]:
    if watch is None:
        return []
    try:
        return await asyncio.to_thread(watch.poll)
    except psycopg.Error as exc:  # the feed goes on; the next poll tries again
        log.warning("live feed: cannot read hotspot runs: %s", exc)
        return []


def _error_event(problem: str) -> LiveEvent:
    return LiveEvent("error", {"detail": f"the broker cannot be reached: {problem}"})


class LiveHub:
    """One broker subscription shared by every viewer of the process. `join` gives a viewer its
    queue: `ready` first (once connected), then the events; `leave` when the viewer goes."""

    def __init__(
        self,
        source: MessageSource,
        topics: Topics,
        *,
        watch: HotspotWatch | None = None,
        stats: LiveStats | None = None,
        capacity: int = VIEWER_QUEUE_EVENTS,
        poll_s: float = HOTSPOT_POLL_S,
        idle_s: float = IDLE_S,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.topics = topics
        self.watch = watch
        self.stats = stats or LiveStats()
        self.capacity = capacity
        self.poll_s = poll_s
        self.idle_s = idle_s
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.filters = [topics.all_of("readings"), topics.all_of("status")]
        self.connected = False
        self._viewers: set[ViewerQueue] = set()
        self._wanted = asyncio.Event()  # a viewer waits for a connection
        self._emptied = asyncio.Event()  # the last viewer left
        self._last_left = 0.0
        self._retry_at = float("-inf")
        self._last_problem = ""
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def for_broker(
        cls,
        settings: MqttSettings,
        connect: Callable[[], psycopg.Connection[Any]] | None,
        stats: LiveStats | None = None,
    ) -> LiveHub:
        """The hub of an API process: the broker of `settings`, new hotspots read through
        `connect` (None: no hotspot events), the module's intervals as they are now."""
        return cls(
            BrokerSource(settings),
            Topics(settings.topic_root),
            watch=None if connect is None else HotspotWatch(connect),
            stats=stats,
            poll_s=HOTSPOT_POLL_S,
            idle_s=IDLE_S,
        )

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def join(self) -> ViewerQueue:
        queue = ViewerQueue(self.capacity, self.stats)
        if self._closed:
            queue.close()
        elif not self.connected and self.clock() < self._retry_at:
            queue.close(_error_event(self._last_problem))
        else:
            self._viewers.add(queue)
            if self.connected:
                queue.put(LiveEvent("ready", {"topics": self.filters}))
            else:
                self._wanted.set()
                if self._task is None:
                    self._task = asyncio.create_task(self._run(), name="live-hub")
        return queue

    def leave(self, queue: ViewerQueue) -> None:
        queue.close()
        self._viewers.discard(queue)
        if not self._viewers:
            self._last_left = self.clock()
            self._emptied.set()

    async def close(self) -> None:
        """Disconnect and end every viewer's stream (the app is stopping)."""
        self._closed = True
        for queue in list(self._viewers):
            self.leave(queue)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _publish(self, event: LiveEvent) -> None:
        for queue in self._viewers:
            queue.put(event)

    def _fail(self, problem: str) -> None:
        self.connected = False
        self._last_problem = problem
        delay = self.backoff.next()
        self._retry_at = self.clock() + delay
        log.warning("live feed: broker lost (%s); next attempt in %.0f s", problem, delay)
        error = _error_event(problem)
        for queue in list(self._viewers):
            queue.close(error)
            self.leave(queue)

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if not self._viewers:
                continue
            try:
                await self._session()
            except BrokerLostError as exc:
                self._fail(exc.problem)
            except Exception as exc:  # the hub must outlive anything a session meets
                log.exception("live feed: the broker session failed")
                self._fail(f"{type(exc).__name__}: {exc}")

    async def _session(self) -> None:
        await _hotspot_events(self.watch)  # takes note of the runs already there
        async with self.source.session(self.filters) as messages:
            self.connected = True
            self.stats.connections += 1
            self.backoff.reset()
            log.info("live feed: subscribed at the broker for %d viewer(s)", len(self._viewers))
            self._publish(LiveEvent("ready", {"topics": self.filters}))
            pump = asyncio.create_task(self._pump(messages), name="live-hub-pump")
            poll = asyncio.create_task(self._poll(), name="live-hub-poll")
            try:
                await self._hold(pump)
            finally:
                self.connected = False
                poll.cancel()
                pump.cancel()
                await asyncio.gather(poll, pump, return_exceptions=True)
            if not pump.cancelled():
                pump.result()  # raises what ended the connection
        log.info("live feed: no viewer for %.0f s, disconnected from the broker", self.idle_s)

    async def _hold(self, pump: asyncio.Task[None]) -> None:
        """Until the pump ends (the connection did) or no viewer came for `idle_s`."""
        while not pump.done():
            if self._viewers:
                self._emptied.clear()
                emptied = asyncio.create_task(self._emptied.wait())
                try:
                    await asyncio.wait({pump, emptied}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    emptied.cancel()
                continue
            idle_for = self.clock() - self._last_left
            if idle_for >= self.idle_s:
                return
            await asyncio.wait({pump}, timeout=self.idle_s - idle_for)

    async def _pump(self, messages: AsyncIterator[BrokerMessage]) -> None:
        async for topic, payload in messages:
            try:
                events = events_from(self.topics, topic, payload)
            except (ValueError, TopicError, WireError) as exc:
                self.stats.skipped += 1
                log.debug("live feed skipped a message on %s: %s", topic, exc)
                continue
            for event in events:
                self._publish(event)
        raise BrokerLostError("broker", "the connection ended")

    async def _poll(self) -> None:
        if self.watch is None:
            return
        while True:
            await asyncio.sleep(self.poll_s)
            for event in await _hotspot_events(self.watch):
                self._publish(event)


async def feed(
    hub: LiveHub,
    heartbeat_s: float = HEARTBEAT_S,
    shown: Callable[[LiveEvent], bool] | None = None,
) -> AsyncGenerator[bytes, None]:
    """One viewer's SSE bytes until the hub ends its stream or the consumer stops iterating (the
    HTTP client went away); `shown` drops the events this viewer may not see (a hotspot outside
    the grids its key is limited to)."""
    queue = hub.join()
    try:
        while not queue.finished:
            event = await queue.next(heartbeat_s)
            if event is not None and shown is not None and not shown(event):
                continue
            if event is not None:
                hub.stats.delivered += 1
                yield event.encode()
            elif not queue.finished:
                yield HEARTBEAT
    finally:
        hub.leave(queue)
