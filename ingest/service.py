"""The ingest service: MQTT messages in, batches committed to PostgreSQL, acknowledgements out.

paho runs its network loop in a thread and hands each message to a queue. The main loop takes a
batch (bounded by count and time), writes it in one transaction, and only after COMMIT sends the
PUBACKs (manual acknowledgement). A crash before COMMIT leaves the messages unacknowledged in the
broker's persistent session, which delivers them again; the insert ignores what is already
stored. A database outage stops acknowledgements, not the service: the batch is retried.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as paho
import psycopg
from paho.mqtt.reasoncodes import ReasonCode

from edge.mqtt import connect_properties, make_client
from edge.topics import TopicError, Topics
from edge.wire import Reading
from ingest.migrate import migrate
from ingest.settings import IngestSettings
from ingest.validate import Rejection, check_readings_message
from ingest.writer import DeadLetter, StatusUpdate, Writer

log = logging.getLogger("envpatrol.ingest")


@dataclass
class IngestCounters:
    messages: int = 0
    readings_offered: int = 0
    readings_inserted: int = 0
    batches: int = 0
    dead_letters: int = 0
    db_errors: int = 0


class IngestService:
    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.topics = Topics(settings.mqtt.topic_root)
        self.counters = IngestCounters()
        self.dead_by_reason: dict[str, int] = {}
        self._inbox: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._connected = threading.Event()
        self.client = make_client(settings.mqtt, settings.client_id, clean_start=False)
        self.client.manual_ack_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self._writer: Writer | None = None

    # -- MQTT ----------------------------------------------------------------------------------

    def _on_connect(
        self, client: paho.Client, _userdata: Any, flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the ingest: %s", reason)
            return
        session = getattr(flags, "session_present", False)
        log.info("connected to %s (session present: %s)", self.settings.mqtt.url, session)
        client.subscribe(
            [(self.topics.all_of(kind), 1) for kind in ("readings", "status", "health")]
        )
        self._connected.set()

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        self._connected.clear()
        log.warning("disconnected from broker: %s", reason)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        self._inbox.put(message)

    def connect(self) -> None:
        v5 = self.settings.mqtt.protocol == "5"
        props = (
            connect_properties(
                session_expiry_s=self.settings.session_expiry_s,
                receive_maximum=min(65535, self.settings.batch_max_messages * 2),
            )
            if v5
            else None
        )
        self.client.connect_async(
            self.settings.mqtt.host,
            self.settings.mqtt.port,
            self.settings.mqtt.keepalive_s,
            clean_start=False if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=props,
        )
        self.client.loop_start()

    # -- database ------------------------------------------------------------------------------

    def _open_writer(self) -> Writer:
        conn = psycopg.connect(self.settings.database_url, autocommit=False)
        backend = migrate(conn, self.settings.h3_resolution)
        conn.autocommit = False
        row = conn.execute("SELECT value FROM meta WHERE key = 'h3_resolution'").fetchone()
        conn.commit()
        resolution = int(str(row[0])) if row else self.settings.h3_resolution
        if resolution != self.settings.h3_resolution:
            log.warning(
                "database cells are at H3 resolution %d; using it (configured %d)",
                resolution,
                self.settings.h3_resolution,
            )
        writer = Writer(conn, resolution, plain=backend == "plain")
        writer.prepare()
        log.info("database ready (%s, H3 resolution %d)", backend, resolution)
        return writer

    # -- main loop -----------------------------------------------------------------------------

    def next_batch(self, stop: threading.Event) -> list[paho.MQTTMessage]:
        try:
            first = self._inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.batch_max_wait_s
        while len(batch) < self.settings.batch_max_messages and not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._inbox.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def sort(
        self, batch: list[paho.MQTTMessage]
    ) -> tuple[list[Reading], list[DeadLetter], list[StatusUpdate]]:
        readings: list[Reading] = []
        dead: list[DeadLetter] = []
        statuses: list[StatusUpdate] = []
        now = datetime.now(UTC)
        for message in batch:
            payload = bytes(message.payload)
            topic = message.topic
            try:
                vehicle, kind = self.topics.parse(topic)
            except TopicError as exc:
                dead.append(DeadLetter(topic, "bad_topic", str(exc), payload, now))
                continue
            if kind == "readings":
                result = check_readings_message(self.topics, topic, payload, orjson.loads)
                if isinstance(result, Rejection):
                    dead.append(DeadLetter(topic, result.reason, result.detail, payload, now))
                else:
                    readings.extend(result)
                continue
            if not payload:
                continue  # a cleared retained message
            try:
                doc = json.loads(payload)
            except ValueError as exc:
                dead.append(DeadLetter(topic, "malformed_json", str(exc)[:200], payload, now))
                continue
            if not isinstance(doc, dict):
                dead.append(
                    DeadLetter(topic, "not_an_object", f"{kind} must be an object", payload, now)
                )
                continue
            statuses.append(StatusUpdate(vehicle, kind, doc))
        return readings, dead, statuses

    def run(self, stop: threading.Event) -> None:
        self.connect()
        try:
            while not stop.is_set():
                batch = self.next_batch(stop)
                if batch:
                    self._process(batch, stop)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            if self._writer is not None:
                self._writer.conn.close()

    def _process(self, batch: list[paho.MQTTMessage], stop: threading.Event) -> None:
        readings, dead, statuses = self.sort(batch)
        backoff = 0.5
        while True:
            try:
                if self._writer is None:
                    self._writer = self._open_writer()
                started = time.monotonic()
                result = self._writer.write(readings, dead, statuses)
                break
            except psycopg.OperationalError as exc:
                self.counters.db_errors += 1
                log.error("database unavailable (%s); retrying in %.1fs", exc, backoff)
                if self._writer is not None:
                    self._writer.conn.close()
                self._writer = None
                if stop.wait(backoff):
                    return  # not acknowledged: the broker delivers these again
                backoff = min(backoff * 2, 10.0)
        for message in batch:
            if message.qos > 0:
                self.client.ack(message.mid, message.qos)
        self.counters.messages += len(batch)
        self.counters.batches += 1
        self.counters.readings_offered += result.offered
        self.counters.readings_inserted += result.inserted
        self.counters.dead_letters += len(dead)
        for d in dead:
            self.dead_by_reason[d.reason] = self.dead_by_reason.get(d.reason, 0) + 1
            log.warning("dead letter on %s: %s: %s", d.topic, d.reason, d.detail[:200])
        log.debug(
            "batch: %d messages, %d readings (%d new), %d dead, %.1f ms",
            len(batch),
            result.offered,
            result.inserted,
            len(dead),
            (time.monotonic() - started) * 1000,
        )
