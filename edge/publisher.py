"""Moving readings from the disk outbox to the broker, deleting them only on PUBACK.

One sender thread owns the conversation with paho: it publishes outbox entries in order, keeps
the message id of each publish, and removes the readings a message carried when the broker's
PUBACK for that id arrives. paho calls `on_publish` with its own lock held, so the callback only
queues the acknowledgement; the sender thread does the rest. paho retransmits unacknowledged
messages itself after a reconnect, so the sender never publishes an entry twice in one process;
after a restart everything still in the outbox is sent again (the ingest stores it once).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from edge.mqtt import MqttSettings, connect_properties, make_client
from edge.outbox import Entry, Outbox
from edge.topics import Topics
from edge.wire import SCHEMA_VERSION

log = logging.getLogger("envpatrol.edge.publisher")


@dataclass(slots=True)
class PublishCounters:
    messages: int = 0
    readings: int = 0
    acked_readings: int = 0
    rejected: int = 0
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0


def batch_payload(vehicle: str, entries: list[Entry]) -> bytes:
    """Wrap stored reading objects into one v1 message without decoding them."""
    head = b'{"schema_version":%d,"vehicle":%s,"readings":[' % (
        SCHEMA_VERSION,
        json.dumps(vehicle).encode(),
    )
    return head + b",".join(e.payload for e in entries) + b"]}"


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
    ) -> None:
        self.settings = settings
        self.vehicle = vehicle
        self.topics = Topics(settings.topic_root)
        self.outbox = outbox
        self._status = status
        self.max_inflight = max_inflight
        self.max_batch = max_batch
        self.counters = PublishCounters()
        self.last_error = ""
        self._events: queue.Queue[tuple[str, int, ReasonCode | None]] = queue.Queue()
        self._inflight: dict[int, list[int]] = {}
        self._cursor = 0  # highest seq handed to paho in this process
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)
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
        self.client.max_inflight_messages_set(max_inflight)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        props = connect_properties() if self.settings.protocol == "5" else None
        self.client.connect_async(
            self.settings.host, self.settings.port, self.settings.keepalive_s, properties=props
        )
        self.client.loop_start()
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
        self.client.disconnect()
        self.client.loop_stop()

    def wake(self) -> None:
        """Tell the sender that the outbox has something new."""
        self._events.put(("wake", 0, None))

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

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

    # -- paho callbacks (network thread) ------------------------------------------------------

    def _on_connect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            self.counters.connect_failures += 1
            self.last_error = f"broker refused connection: {reason}"
            log.warning(self.last_error)
            return
        self.counters.connects += 1
        self._connected.set()
        log.info("connected to %s", self.settings.url)
        self.publish_status()
        self._events.put(("wake", 0, None))

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        self.counters.connect_failures += 1
        self.last_error = f"cannot reach broker {self.settings.url}"

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if self._connected.is_set():
            self.counters.disconnects += 1
            log.warning("disconnected from broker: %s", reason)
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
            self._send()

    def _acknowledged(self, mid: int, reason: ReasonCode | None) -> None:
        seqs = self._inflight.pop(mid, None)
        if seqs is None:
            return
        if reason is not None and reason.is_failure:
            # The broker refused the message (e.g. "Not authorized"): it stays in the outbox and
            # is retried after the next restart; the refusal is counted and reported in status.
            self.counters.rejected += 1
            self.last_error = f"broker rejected readings {seqs[0]}..{seqs[-1]}: {reason}"
            log.error(self.last_error)
            return
        self.outbox.remove(seqs)
        self.counters.acked_readings += len(seqs)

    def _send(self) -> None:
        while self._connected.is_set() and len(self._inflight) < self.max_inflight:
            entries = self.outbox.peek(self._cursor, self.max_batch)
            if not entries:
                return
            payload = batch_payload(self.vehicle, entries)
            info = self.client.publish(self.topics.of(self.vehicle, "readings"), payload, qos=1)
            if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
                self.last_error = f"publish failed: {paho.error_string(info.rc)}"
                return
            # Even with MQTT_ERR_NO_CONN paho keeps the message and sends it on reconnect.
            self._inflight[info.mid] = [e.seq for e in entries]
            self._cursor = entries[-1].seq
            self.counters.messages += 1
            self.counters.readings += len(entries)
