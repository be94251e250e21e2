"""Moving readings from the disk outbox to the broker, deleting them only on PUBACK.

One sender thread owns the outbox side: it publishes outbox entries, keeps the message id of
each publish, and removes the readings a message carried when the broker's PUBACK for that id
arrives. paho calls `on_publish` with its own lock held, so the callback only queues the
acknowledgement; the sender thread does the rest. A second thread runs paho's network loop and
reconnects with capped exponential backoff and jitter. paho retransmits unacknowledged messages
itself after a reconnect, so the sender never publishes an entry twice in one connection; after
a restart everything still in the outbox is sent again (the ingest stores it once).

Catch-up: at each connect the outbox splits into the backlog (what was there) and live readings
(what arrives after). The sender alternates one live message and one backlog message, so a long
backlog drains oldest first without delaying the readings of the current patrol.

Size: no message exceeds `max_payload_bytes` (nor the broker's Maximum Packet Size from an
MQTT 5 CONNACK). A single reading that can never fit is moved to the outbox's rejected table.
PUBACKs with a failure reason (e.g. 0x87 Not authorized) are logged and counted per reason; the
readings stay in the outbox and are sent again after the next connect, because such refusals
come from broker configuration an operator can fix (docs/edge.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from edge.mqtt import (
    MqttSettings,
    closed_unanswered,
    connect_properties,
    connect_refused,
    make_client,
)
from edge.outbox import Entry, Outbox
from edge.topics import Topics
from edge.wire import SCHEMA_VERSION

log = logging.getLogger("envpatrol.edge.publisher")

# Bytes of an MQTT PUBLISH besides topic and payload (fixed header, packet id, properties).
PUBLISH_OVERHEAD = 32


@dataclass(slots=True)
class PublishCounters:
    messages: int = 0
    readings: int = 0
    acked_readings: int = 0
    rejected: int = 0  # PUBACKs with a failure reason code
    too_large: int = 0  # readings moved to the rejected table because no message could hold them
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "readings": self.readings,
            "acked_readings": self.acked_readings,
            "rejected": self.rejected,
            "rejected_reasons": dict(self.reasons),
            "too_large": self.too_large,
            "connects": self.connects,
            "disconnects": self.disconnects,
            "connect_failures": self.connect_failures,
        }


def batch_head(vehicle: str) -> bytes:
    return b'{"schema_version":%d,"vehicle":%s,"readings":[' % (
        SCHEMA_VERSION,
        json.dumps(vehicle).encode(),
    )


def batch_payload(vehicle: str, entries: list[Entry]) -> bytes:
    """Wrap stored reading objects into one v1 message without decoding them."""
    return batch_head(vehicle) + b",".join(e.payload for e in entries) + b"]}"


def fit_batch(head_size: int, entries: list[Entry], max_payload: int) -> int:
    """How many of `entries` (from the first) fit in one payload of at most `max_payload` bytes.

    0 means the first entry alone is too large for any message.
    """
    size = head_size + 2  # "]}"
    for count, entry in enumerate(entries):
        size += len(entry.payload) + (1 if count else 0)
        if size > max_payload:
            return count
    return len(entries)


def backoff_delay(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Capped exponential backoff with "equal jitter": half fixed, half random.

    Jitter keeps a fleet that lost the broker together from reconnecting in lockstep.
    """
    cap = min(high, low * 2.0 ** min(attempt, 30))
    return cap / 2 + rng.uniform(0, cap / 2)


class Publisher:
    def __init__(
        self,
        settings: MqttSettings,
        vehicle: str,
        outbox: Outbox,
        status: Callable[[str], dict[str, Any]],
        *,
        max_inflight: int = 20,
        max_batch: int = 50,
        max_payload_bytes: int = 65536,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 120.0,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.vehicle = vehicle
        self.topics = Topics(settings.topic_root)
        self.outbox = outbox
        self._status = status
        self.max_inflight = max_inflight
        self.max_batch = max_batch
        self.max_payload_bytes = max_payload_bytes
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._rng = rng or random.Random()
        self.counters = PublishCounters()
        self.last_error = ""
        self._topic = self.topics.of(vehicle, "readings")
        self._head = batch_head(vehicle)
        self._broker_limit: int | None = None  # from the CONNACK's Maximum Packet Size
        self._events: queue.Queue[tuple[str, int, ReasonCode | None]] = queue.Queue()
        self._inflight: dict[int, list[int]] = {}
        # Backlog: (backlog_cursor, boundary]; live: above live_cursor (>= boundary).
        self._backlog_cursor = 0
        self._boundary = 0
        self._live_cursor = 0
        self._turn_live = True
        self._rewind = threading.Event()
        self._connected = threading.Event()
        self._stopping = threading.Event()  # the sender stops
        self._shutdown = threading.Event()  # the network loop stops
        self._attempt = 0  # reconnect attempts since the last accepted connect
        self._answered = False  # whether the broker answered this connection's CONNECT
        self._thread = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)
        self._network = threading.Thread(target=self._loop, name="mqtt-network", daemon=True)
        self.client = make_client(settings, client_id=vehicle)
        self.client.will_set(
            self.topics.of(vehicle, "status"),
            json.dumps(status("offline")).encode(),
            qos=1,
            retain=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        # paho writes to the socket from whichever thread publishes when it runs no loop thread
        # of its own; with this hook set it only queues, and the network thread writes. Without
        # it the sender and the network thread write one socket at once and corrupt the stream.
        self.client.on_socket_register_write = self._written_by_network_loop
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._network.start()
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say goodbye (retained offline status) and disconnect."""
        self._stopping.set()
        self._events.put(("wake", 0, None))
        self._thread.join(timeout=timeout)
        if self._connected.is_set():
            info = self.client.publish(
                self.topics.of(self.vehicle, "status"),
                json.dumps(self._status("offline")).encode(),
                qos=1,
                retain=True,
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=timeout)
        self._shutdown.set()
        self._network.join(timeout=timeout)

    def wake(self) -> None:
        """Tell the sender that the outbox has something new."""
        self._events.put(("wake", 0, None))

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def payload_limit(self) -> int:
        """The largest payload sent: the configured limit or what the broker announced."""
        if self._broker_limit is None:
            return self.max_payload_bytes
        room = self._broker_limit - PUBLISH_OVERHEAD - len(self._topic.encode())
        return min(self.max_payload_bytes, room)

    def publish_status(self) -> None:
        if self._connected.is_set():
            self.client.publish(
                self.topics.of(self.vehicle, "status"),
                json.dumps(self._status("online")).encode(),
                qos=1,
                retain=True,
            )

    def publish_health(self, health: dict[str, Any]) -> None:
        if self._connected.is_set():
            self.client.publish(
                self.topics.of(self.vehicle, "health"), json.dumps(health).encode(), qos=0
            )

    # -- network thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        props = connect_properties() if self.settings.protocol == "5" else None
        while not self._shutdown.is_set():
            self._answered = False
            try:
                self.client.connect(
                    self.settings.host,
                    self.settings.port,
                    self.settings.keepalive_s,
                    properties=props,
                )
            except (OSError, ValueError) as exc:
                self.counters.connect_failures += 1
                self.last_error = f"cannot reach broker {self.settings.url}: {exc}"
            else:
                said_goodbye = False
                while self.client.loop(timeout=0.5) == paho.MQTT_ERR_SUCCESS:
                    if self._shutdown.is_set() and not said_goodbye:
                        self.client.disconnect()
                        said_goodbye = True
                self._connected.clear()
            if self._shutdown.is_set():
                return
            delay = backoff_delay(
                self._attempt, self.reconnect_min_s, self.reconnect_max_s, self._rng
            )
            self._attempt += 1
            log.info("reconnecting to %s in %.1fs", self.settings.url, delay)
            self._shutdown.wait(delay)

    # -- paho callbacks (network thread) ------------------------------------------------------

    def _written_by_network_loop(self, _client: paho.Client, _userdata: Any, _sock: Any) -> None:
        """Nothing to do: the network loop selects for writing whenever paho has output."""

    def _on_connect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._answered = True
        if reason.is_failure:
            self.counters.connect_failures += 1
            self.last_error = connect_refused(self.settings, reason)
            log.warning(self.last_error)
            return
        self.counters.connects += 1
        self._attempt = 0
        limit = getattr(props, "MaximumPacketSize", None) if props is not None else None
        self._broker_limit = int(limit) if isinstance(limit, int) else None
        self._connected.set()
        log.info("connected to %s", self.settings.url)
        self.publish_status()
        self._rewind.set()
        self._events.put(("wake", 0, None))

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        self.counters.connect_failures += 1
        self.last_error = f"cannot reach broker {self.settings.url}"

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if self._connected.is_set():
            self.counters.disconnects += 1
            if not self._stopping.is_set():
                self.last_error = f"disconnected from broker: {reason}"
                log.warning(self.last_error)
        elif not self._answered and not self._stopping.is_set():
            self.counters.connect_failures += 1
            self.last_error = closed_unanswered(self.settings)
            log.warning(self.last_error)
        self._connected.clear()

    def _on_publish(
        self, _client: paho.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any
    ) -> None:
        self._events.put(("ack", mid, reason))

    # -- sender thread --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                kind, mid, reason = self._events.get(timeout=1.0)
            except queue.Empty:
                kind, mid, reason = "wake", 0, None
            if kind == "ack":
                self._acknowledged(mid, reason)
            try:
                if self._rewind.is_set():
                    self._rewind.clear()
                    self._start_catch_up()
                self._send()
            except Exception as exc:  # the sender must outlive a full disk or a closed outbox
                self.last_error = f"sender: {exc!r}"
                log.exception("sending readings failed")
                self._stopping.wait(1.0)

    def _start_catch_up(self) -> None:
        """After a connect: everything in the outbox not already in flight is backlog."""
        self._backlog_cursor = 0
        self._boundary = self.outbox.last_seq()
        self._live_cursor = self._boundary

    def _acknowledged(self, mid: int, reason: ReasonCode | None) -> None:
        seqs = self._inflight.pop(mid, None)
        if seqs is None:
            return
        if reason is not None and reason.is_failure:
            # The broker refused the message (e.g. "Not authorized"): it stays in the outbox
            # and is sent again after the next connect; the refusal is counted and reported.
            self.counters.rejected += 1
            self.counters.reasons[str(reason)] += 1
            self.last_error = f"broker rejected readings {seqs[0]}..{seqs[-1]}: {reason}"
            log.error(self.last_error)
            return
        self.outbox.remove(seqs)
        self.counters.acked_readings += len(seqs)

    def _in_flight(self) -> set[int]:
        return {seq for seqs in self._inflight.values() for seq in seqs}

    def _next_batch(self) -> list[Entry]:
        """The next message's readings, alternating live and backlog while both have some.

        Readings already in flight (paho retransmits them after a reconnect) are skipped.
        """
        flying = self._in_flight()
        for live in (self._turn_live, not self._turn_live):
            while True:
                if live:
                    entries = self.outbox.peek(self._live_cursor, self.max_batch)
                elif self._backlog_cursor < self._boundary:
                    entries = self.outbox.peek(
                        self._backlog_cursor, self.max_batch, self._boundary + 1
                    )
                    if not entries:
                        self._backlog_cursor = self._boundary
                else:
                    entries = []
                if not entries:
                    break
                fresh = [e for e in entries if e.seq not in flying]
                if fresh:
                    self._turn_live = not live
                    return fresh
                self._advance(live, entries[-1].seq)
        return []

    def _advance(self, live: bool, seq: int) -> None:
        if live:
            self._live_cursor = max(self._live_cursor, seq)
        else:
            self._backlog_cursor = max(self._backlog_cursor, seq)

    def _send(self) -> None:
        while self._connected.is_set() and len(self._inflight) < self.max_inflight:
            entries = self._next_batch()
            if not entries:
                return
            live = entries[0].seq > self._boundary
            count = fit_batch(len(self._head), entries, self.payload_limit)
            if count == 0:
                too_big = entries[0]
                moved = self.outbox.reject([too_big.seq], "too_large", time.time())
                self.counters.too_large += moved
                self.last_error = (
                    f"reading {too_big.seq} ({len(too_big.payload)} bytes) exceeds the "
                    f"{self.payload_limit}-byte message limit; moved to the rejected table"
                )
                log.error(self.last_error)
                self._advance(live, too_big.seq)
                continue
            batch = entries[:count]
            info = self.client.publish(self._topic, batch_payload(self.vehicle, batch), qos=1)
            if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
                self.last_error = f"publish failed: {paho.error_string(info.rc)}"
                return
            # Even with MQTT_ERR_NO_CONN paho keeps the message and sends it on reconnect.
            self._inflight[info.mid] = [e.seq for e in batch]
            self._advance(live, batch[-1].seq)
            self.counters.messages += 1
            self.counters.readings += len(batch)
