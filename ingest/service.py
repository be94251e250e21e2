"""The ingest service: MQTT messages in, batches committed to PostgreSQL, acknowledgements out.

paho runs its network loop in a thread and hands each message to an inbox. A parsing thread takes
a batch (bounded by messages, readings and time) and decodes and validates it while the main loop
writes the previous batch in one transaction and, only after its COMMIT, sends that batch's
PUBACKs (manual acknowledgement). A crash before COMMIT leaves the messages unacknowledged in the
broker's persistent session, which delivers them again; the insert ignores what is already
stored. A database outage stops acknowledgements, not the service: the batch is retried, and
the broker holds further messages back once Receive Maximum of them are unacknowledged.

Acknowledgements belong to a connection: messages received before a reconnect are stored but not
acknowledged on the new connection (their packet ids may by then name other messages); the broker
delivers them again and the insert ignores them. Each message carries the connection it came on
(`Received.connection`).

Workers of a shared subscription keep retained statuses with a last will, and a surviving worker
adopts the session of one that is lost (`ingest.workers`, `adopt`): an `IngestService` made with
`adopted_by` resumes that session under its client id, stores what it holds, and ends it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import start_http_server

from edge.errors import SettingsError
from edge.mqtt import (
    closed_unanswered,
    connect_properties,
    connect_refused,
    make_client,
    read_secret,
)
from edge.topics import TopicError, Topics
from ingest.decode import Row, decode_rows, reading_dead_letters
from ingest.inbox import Inbox
from ingest.metrics import IngestMetrics
from ingest.mqtt_client import IngestClient, Received, droppable, footprint, topic_text
from ingest.settings import IngestSettings
from ingest.validate import Limits, Rejection, check_document, undecodable
from ingest.workers import (
    Workers,
    WorkerStatus,
    drain_topic,
    parse_status,
    status_topic,
    worker_of,
    workers_filter,
)
from ingest.writer import (
    REFUSED,
    DeadLetter,
    Rows,
    StatusUpdate,
    Writer,
    connect,
    refusal,
    refused,
)
from store.analysis_meta import read_analysis
from store.migrate import migrate

log = logging.getLogger("envpatrol.ingest")

MAINTENANCE_EVERY_S = 3600.0
CONNECT_FAIL_LOG_S = 30.0  # an unreachable broker is reported at most this often
_TAKE = 256  # messages taken from the inbox at a time
# While the writer has nothing to write, a batch closes once it holds this many readings (or
# batch_max_readings, if fewer): after a start or a lull, a backlog that floods in is written
# from its first few thousand readings on instead of waiting for a whole batch to be parsed,
# and each later batch grows while the one before is written. Live traffic never gets there
# before batch_max_wait_s: its batches are unchanged.
EARLY_READINGS = 5_000
PARTITIONS_AHEAD_DAYS = 7
ADOPT_CHECK_S = 0.5  # how often a worker looks for lost workers to adopt
# An adoption's marker may be dropped by a broker whose queue for the session is full: sent again.
DRAIN_MARKER_EVERY_S = 10.0
STATUS_PUBLISH_WAIT_S = 5.0


@dataclass
class IngestCounters:
    messages: int = 0
    readings_offered: int = 0
    readings_inserted: int = 0
    batches: int = 0
    dead_letters: int = 0
    db_errors: int = 0
    adopted_sessions: int = 0  # lost workers' sessions drained and removed
    adopted_messages: int = 0  # messages those sessions held, committed


@dataclass(slots=True)
class Batch:
    """Messages taken together, already decoded and validated: what one transaction writes."""

    messages: list[Received] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)  # the readings as `reading` table rows
    dead: list[DeadLetter] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    resolution: int = 10  # of the rows' cells
    kinds: dict[str, int] = field(default_factory=dict)  # messages by topic kind
    # Per message, where its rows, dead letters and statuses begin: what a message added is
    # known after the fact, so a batch the database refuses can be split by message.
    marks: list[tuple[int, int, int]] = field(default_factory=list)

    def begin(self, received: Received) -> None:
        """Take `received` in: what is added to the batch until the next `begin` is its own."""
        self.marks.append((len(self.rows), len(self.dead), len(self.statuses)))
        self.messages.append(received)

    def part(self, first: int, end: int) -> Batch:
        """Messages [first, end) with their rows, dead letters and statuses."""
        if len(self.marks) != len(self.messages):
            raise ValueError("a batch's messages must be taken in with `begin`")
        bounds = [*self.marks, (len(self.rows), len(self.dead), len(self.statuses))]
        (r0, d0, s0), (r1, d1, s1) = bounds[first], bounds[end]
        return Batch(
            messages=self.messages[first:end],
            rows=self.rows[r0:r1],
            dead=self.dead[d0:d1],
            statuses=self.statuses[s0:s1],
            resolution=self.resolution,
            marks=[(r - r0, d - d0, x - s0) for r, d, x in self.marks[first:end]],
        )


class _Deadline:
    """Cuts a database connection's socket if a round trip outlives `seconds`. A network path
    that silently drops packets never makes a query fail by itself; this makes it fail."""

    def __init__(self, conn: psycopg.Connection[Any], seconds: float) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._done = False
        self.fired = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()

    def _cut(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            try:
                fd = self._conn.pgconn.socket
                with socket.socket(fileno=os.dup(fd)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except (OSError, psycopg.Error) as exc:
                log.debug("could not cut the database connection: %s", exc)


def connect_database(url: str, timeout_s: float, keepalive_s: int) -> psycopg.Connection[Any]:
    """A connection for the ingest's writes, which the server probes once idle for
    `keepalive_s` (TCP keep-alive, then 3 probes a third of that apart) and gives up on when
    data it sent stays unacknowledged as long (TCP user timeout); 0: the server's defaults.
    Should the ingest's host vanish in the middle of a transaction, nothing tells the server:
    without these the transaction holds its locks (the vehicles' rows, the readings' keys) for
    the kernel's two hours and more, and the other workers' batches, an adoption's first of
    all, wait on them. With them it is rolled back within about 2 x `keepalive_s`."""
    conn = connect(url, timeout_s)
    if keepalive_s:
        try:
            for name, value in (
                ("tcp_keepalives_idle", keepalive_s),
                ("tcp_keepalives_interval", max(1, keepalive_s // 3)),
                ("tcp_keepalives_count", 3),
                ("tcp_user_timeout", 2 * keepalive_s * 1000),
            ):
                conn.execute("SELECT set_config(%s, %s, false)", (name, str(value)))
            conn.commit()
        except BaseException:
            conn.close()
            raise
    return conn


class IngestService:
    def __init__(
        self,
        settings: IngestSettings,
        metrics: IngestMetrics | None = None,
        *,
        adopted_by: str = "",
    ) -> None:
        """`adopted_by`: this service is an adoption by that worker of the session of the lost
        worker `settings.client_id`: it stores what the session holds and then ends it (`run`
        returns; `finished` is set once the broker has been told to remove the session)."""
        self.settings = settings
        self.adopted_by = adopted_by
        self.topics = Topics(settings.mqtt.topic_root)
        self.limits = Limits(
            max_payload_bytes=settings.max_payload_bytes,
            earliest=settings.min_time,
            max_future=timedelta(seconds=settings.max_future_s),
        )
        self.counters = IngestCounters()
        self.metrics = metrics or IngestMetrics()
        self.dead_by_reason: dict[str, int] = {}
        # Bounded: a database outage must not turn the broker's traffic into the ingest's
        # memory (docs/storage.md, "Ingest memory").
        self._inbox: Inbox[Received] = Inbox(
            settings.inbox_max_bytes,
            size=footprint,
            droppable=droppable,
            on_drop=self.metrics.dropped.inc,
            until_released=True,  # counted until their batch is committed (`_process`)
        )
        self._connected = threading.Event()
        client = make_client(
            settings.mqtt, settings.client_id, clean_start=False, factory=IngestClient
        )
        assert isinstance(client, IngestClient)
        self.client = client
        self.client.manual_ack_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_received = self._route
        self.client.wait_for_room = self._inbox.wait_for_room
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_subscribe = self._on_subscribe
        self._answered = False  # whether the broker answered this connection's CONNECT
        self._connect_failures = 0
        self._next_failure_log = 0.0
        self._writer: Writer | None = None
        self._resolution = settings.h3_resolution  # of the cells in force, as last seen
        self._next_maintenance = 0.0
        self._metrics_server: Any = None
        self._writer_idle = threading.Event()  # set while the writer waits for a batch
        # Workers of the share group (`ingest.workers`): statuses arrive on the network thread,
        # adoptions are decided on the adopting thread.
        root = settings.mqtt.topic_root
        self.workers = Workers(settings.client_id, settings.share_group)
        self._workers_lock = threading.Lock()
        self._workers_prefix = status_topic(root, "")[: -len("/status")]
        self._route_workers = bool(settings.share_group or adopted_by)
        self._status_topic = status_topic(root, settings.client_id)
        # Adoption: acknowledged messages counted in (network thread) and committed (main
        # loop); the marker says how many came before it.
        self._accepted = 0
        self._settled = 0
        self._drain_topic = drain_topic(root, settings.client_id)
        self._drain_token = secrets.token_hex(8).encode()
        self._drained_at: int | None = None
        self._marker_sent = 0.0
        self.session_present: bool | None = None
        self.finished = threading.Event()
        self.aborted = threading.Event()  # the adoption's connection ended before it finished

    # -- MQTT ----------------------------------------------------------------------------------

    def wait_connected(self, timeout: float) -> bool:
        """Whether the ingest is connected and has asked for its subscriptions within
        `timeout` seconds."""
        return self._connected.wait(timeout)

    def subscriptions(self) -> list[tuple[str, int]]:
        """Readings are shared between the workers of `share_group` when one is set. Status and
        health are not: they are retained, and a shared subscription never receives retained
        messages; every worker stores them (an idempotent upsert)."""
        readings = self.topics.all_of("readings")
        if self.settings.share_group:
            readings = f"$share/{self.settings.share_group}/{readings}"
        subscriptions = [
            (readings, 1),
            (self.topics.all_of("status"), 1),
            (self.topics.all_of("health"), 1),
        ]
        if self.settings.share_group:
            subscriptions.append((workers_filter(self.settings.mqtt.topic_root), 1))
        return subscriptions

    def _on_connect(
        self, client: paho.Client, _userdata: Any, flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        self._answered = True
        if reason.is_failure:
            log.error(connect_refused(self.settings.mqtt, reason))
            if self.adopted_by:
                self.aborted.set()
            return
        session = bool(getattr(flags, "session_present", False))
        self.session_present = session
        log.info(
            "connected to %s as %s (session present: %s)",
            self.settings.mqtt.url,
            self.settings.client_id,
            session,
        )
        if self.adopted_by:
            self._begin_drain(session)
        else:
            client.subscribe(self.subscriptions())
            if self.settings.share_group:
                self._publish_status("online")
        self._connected.set()
        if not self.adopted_by:  # an adoption shares its worker's metrics, not this gauge
            self.metrics.connected.set(1)

    def _publish_status(self, state: str, worker: str = "", by: str = "") -> paho.MQTTMessageInfo:
        worker = worker or self.settings.client_id
        status = WorkerStatus(worker, state, self.settings.share_group, by)  # type: ignore[arg-type]
        return self.client.publish(
            status_topic(self.settings.mqtt.topic_root, worker),
            status.encode(),
            qos=1,
            retain=True,
        )

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        """The broker could not be reached (refused, unresolved, timed out); paho tries again
        with its backoff. Said at once, then at most every CONNECT_FAIL_LOG_S."""
        if self.adopted_by:
            self.aborted.set()
        self._connect_failures += 1
        now = time.monotonic()
        if now < self._next_failure_log:
            return
        self._next_failure_log = now + CONNECT_FAIL_LOG_S
        log.warning(
            "cannot reach the broker at %s:%d (%d failed attempts so far); retrying",
            self.settings.mqtt.host,
            self.settings.mqtt.port,
            self._connect_failures,
        )

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        self._connected.clear()
        if self.adopted_by:
            if not self.finished.is_set():
                # The lost worker is back and took its session over ("session taken over"),
                # or the broker went away: what was not acknowledged stays in the session.
                log.warning("adoption of %s ended: %s", self.settings.client_id, reason)
                self.aborted.set()
            return
        self.metrics.connected.set(0)
        if self._answered:
            log.warning("disconnected from broker: %s", reason)
        else:
            log.error(closed_unanswered(self.settings.mqtt))
        self._answered = False

    def _on_subscribe(
        self, _client: paho.Client, _userdata: Any, _mid: int, reasons: list[ReasonCode], _p: Any
    ) -> None:
        """A refused subscription (an ACL, or a broker without some feature) would otherwise
        look like a fleet with nothing to say."""
        if self.adopted_by:
            for reason in reasons:
                if reason.is_failure:
                    log.error("the broker refused a subscription of the adoption: %s", reason)
            return
        for (topic, _qos), reason in zip(self.subscriptions(), reasons, strict=False):
            if reason.is_failure:
                log.error("the broker refused the subscription to %s: %s", topic, reason)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        """What the client's lean decoder leaves to paho (properties present, QoS 2)."""
        self._route(
            [
                Received(
                    self.client.connection,
                    topic_text(message._topic),
                    message.mid,
                    message.qos,
                    bytes(message.payload),
                )
            ]
        )

    def _route(self, received: list[Received]) -> None:
        """Messages in (network thread): the workers' own (statuses, an adoption's marker)
        handled at once, the rest into the inbox."""
        if self._route_workers:
            prefix = self._workers_prefix
            kept: list[Received] = []
            for r in received:
                if r.topic.startswith(prefix):
                    self._on_worker_message(r, self._accepted + sum(1 for k in kept if k.qos))
                else:
                    kept.append(r)
            received = kept
        self._accepted += sum(1 for r in received if r.qos)
        self._inbox.put_many(received)

    def _on_worker_message(self, received: Received, before: int) -> None:
        """A worker's status, or an adoption's marker, which `before` acknowledged messages
        preceded. Acknowledged at once: nothing of these is stored."""
        if received.qos == 1 and received.connection == self.client.connection:
            self.client.ack_all([received.mid])
        if self.adopted_by:
            if (
                received.topic == self._drain_topic
                and received.payload == self._drain_token
                and self._drained_at is None
            ):
                self._drained_at = before
            return
        worker = worker_of(self.settings.mqtt.topic_root, received.topic)
        status = parse_status(worker, received.payload) if worker else None
        if status is None:
            return
        with self._workers_lock:
            self.workers.observe(status, time.monotonic())
        if status.worker != self.settings.client_id:
            log.info("worker %s: %s", status.worker, status.state)

    def connect(self) -> None:
        v5 = self.settings.mqtt.protocol == "5"
        if self.settings.share_group and not v5:
            raise ValueError("shared subscriptions need MQTT 5")
        props = (
            connect_properties(
                session_expiry_s=self.settings.session_expiry_s,
                # A batch being written, one parsed and waiting, one being collected, and room.
                receive_maximum=min(65535, self.settings.batch_max_messages * 4),
            )
            if v5
            else None
        )
        if self.adopted_by:
            self.client.no_reconnect()  # a lost connection ends the adoption
        elif self.settings.share_group:
            offline = WorkerStatus(self.settings.client_id, "offline", self.settings.share_group)
            self.client.will_set(self._status_topic, offline.encode(), qos=1, retain=True)
        log.info(
            "connecting to the broker at %s:%d as %s",
            self.settings.mqtt.host,
            self.settings.mqtt.port,
            self.settings.client_id,
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
        conn = connect_database(
            self.settings.database_url, self.settings.db_timeout_s, self.settings.db_keepalive_s
        )
        try:
            with _Deadline(conn, self.settings.db_timeout_s):
                backend = migrate(
                    conn, self.settings.h3_resolution, backend=self.settings.database_backend
                )
                conn.autocommit = False
                analysis = read_analysis(conn)
                conn.commit()
                if analysis.resolution != self.settings.h3_resolution:
                    log.warning(
                        "database cells are at H3 resolution %d; using it (configured %d)",
                        analysis.resolution,
                        self.settings.h3_resolution,
                    )
                writer = Writer(
                    conn,
                    analysis.resolution,
                    plain=backend == "plain",
                    earliest=self.limits.earliest,
                    max_future=self.limits.max_future,
                )
                writer.prepare()
                if backend == "timescale":
                    self._timescale_policies(conn)
        except BaseException:
            conn.close()
            raise
        log.info("database ready (%s, H3 resolution %d)", backend, analysis.resolution)
        return writer

    def _timescale_policies(self, conn: psycopg.Connection[Any]) -> None:
        """Compression delay and retention from the settings (0004_partitions.timescale.sql)."""
        keep = self.settings.retention_days
        with conn.transaction():
            conn.execute(
                "SELECT envpatrol_set_policies(%s, %s)",
                (
                    timedelta(days=self.settings.compress_after_days),
                    timedelta(days=keep) if keep else None,
                ),
            )
        conn.commit()

    def _maintain(self, writer: Writer) -> None:
        """Plain PostgreSQL: partitions a week ahead, and retention. Hourly, between batches."""
        if not writer.plain or time.monotonic() < self._next_maintenance:
            return
        self._next_maintenance = time.monotonic() + MAINTENANCE_EVERY_S
        today = datetime.now(UTC).date()
        writer.ensure_partitions({today + timedelta(days=d) for d in range(PARTITIONS_AHEAD_DAYS)})
        if self.settings.retention_days:
            cutoff = today - timedelta(days=self.settings.retention_days)
            with writer.conn.transaction():
                rows = writer.conn.execute(
                    "SELECT envpatrol_drop_partitions(%s)", (cutoff,)
                ).fetchall()
            writer.conn.commit()
            for (name,) in rows:
                log.info("retention: dropped %s (readings before %s)", name, cutoff)

    # -- main loop -----------------------------------------------------------------------------

    def next_batch(self, stop: threading.Event) -> Batch | None:
        """The next batch, decoded and validated as its messages arrive: closed at
        `batch_max_messages` messages, `batch_max_readings` readings or `batch_max_wait_s` after
        its first message, whichever comes first, or at `EARLY_READINGS` readings while the
        writer is idle. None when nothing arrived for a moment."""
        inbox = self._inbox
        first = inbox.get(timeout=0.2)
        if first is None:
            return None
        batch = Batch(resolution=self._resolution)
        now = datetime.now(UTC)
        self._take(first, batch, now)
        settings = self.settings
        max_messages, max_readings = settings.batch_max_messages, settings.batch_max_readings
        early = min(EARLY_READINGS, max_readings)
        idle = self._writer_idle

        def full() -> bool:
            rows = len(batch.rows)
            return rows >= max_readings or (rows >= early and idle.is_set())

        deadline = time.monotonic() + settings.batch_max_wait_s
        while len(batch.messages) < max_messages and not stop.is_set():
            # what has arrived is taken at once; an empty inbox is waited on until the deadline
            taken = inbox.take(min(_TAKE, max_messages - len(batch.messages)))
            if not taken:
                one = inbox.get(timeout=deadline - time.monotonic())
                if one is None:
                    break
                taken = [one]
            for at, received in enumerate(taken):
                if full():
                    inbox.give_back(taken[at:])
                    return batch
                self._take(received, batch, now)
            if full():
                break
        return batch

    def sort(self, messages: list[Received]) -> Batch:
        """Decode and validate `messages` into one batch."""
        batch = Batch(resolution=self._resolution)
        now = datetime.now(UTC)
        for inbound in messages:
            self._take(inbound, batch, now)
        return batch

    def _take(self, received: Received, batch: Batch, now: datetime) -> None:
        batch.begin(received)
        payload = received.payload
        topic = received.topic
        try:
            vehicle, kind = self.topics.parse(topic)
        except TopicError as exc:
            batch.kinds["other"] = batch.kinds.get("other", 0) + 1
            batch.dead.append(DeadLetter(topic, "bad_topic", str(exc), payload, now))
            return
        batch.kinds[kind] = batch.kinds.get(kind, 0) + 1
        try:
            self._sort_one(topic, payload, vehicle, kind, batch, now)
        except Exception as exc:  # a defect in decoding: this message waits for a look, not all
            log.exception("could not decode a message on %s; dead-lettered", topic)
            rows, dead, statuses = batch.marks[-1]  # where this message began
            del batch.rows[rows:], batch.dead[dead:], batch.statuses[statuses:]  # none of it
            rejection = undecodable(exc)
            batch.dead.append(DeadLetter(topic, rejection.reason, rejection.detail, payload, now))

    def _sort_one(
        self, topic: str, payload: bytes, vehicle: str, kind: str, batch: Batch, now: datetime
    ) -> None:
        if kind == "readings":
            # Cells at the resolution of the last batch written; the writer recomputes them in
            # the rare case `envpatrol rebuild` changed it meanwhile.
            result = decode_rows(
                self.topics, topic, payload, batch.resolution, orjson.loads, now, self.limits
            )
            if isinstance(result, Rejection):
                batch.dead.append(DeadLetter(topic, result.reason, result.detail, payload, now))
                return
            batch.rows.extend(result.readings)
            if result.rejected:
                batch.dead.extend(reading_dead_letters(topic, payload, result, now))
            return
        doc = check_document(payload, orjson.loads, vehicle, self.limits)
        if isinstance(doc, Rejection):
            batch.dead.append(DeadLetter(topic, doc.reason, doc.detail, payload, now))
        elif doc is not None:
            batch.statuses.append(StatusUpdate(vehicle, kind, doc))

    def start_metrics(self) -> None:
        if self.settings.metrics_port and self._metrics_server is None:
            server, _thread = start_http_server(
                self.settings.metrics_port,
                self.settings.metrics_host,
                registry=self.metrics.registry,
            )
            self._metrics_server = server
            log.info(
                "metrics on http://%s:%d/metrics",
                self.settings.metrics_host,
                self.settings.metrics_port,
            )

    def run(self, stop: threading.Event) -> None:
        """Two stages: a parsing thread collects, decodes and validates the next batch while
        this thread writes the previous one and, after its COMMIT, acknowledges it. Batches are
        written and acknowledged one at a time, in the order they were received."""
        self.start_metrics()
        self.connect()
        ready: queue.Queue[Batch | BaseException] = queue.Queue(maxsize=1)
        halt = threading.Event()  # the parsing stage's own stop: set whenever this loop ends
        parser = threading.Thread(
            target=self._parse_loop, args=(halt, ready), name="ingest-parse", daemon=True
        )
        parser.start()
        adopting = None
        if self.settings.share_group and self.settings.adopt_peers and not self.adopted_by:
            adopting = threading.Thread(
                target=self._adopt_loop, args=(halt,), name="ingest-adopt", daemon=True
            )
            adopting.start()
        try:
            while not stop.is_set():
                if self.adopted_by and self._adoption_over():
                    break
                batch = self._next_parsed(ready)
                if batch is None:
                    if self._writer is not None:
                        self._maintain_safely()
                    continue
                if isinstance(batch, BaseException):
                    raise batch
                self._process(batch, stop)
        finally:
            halt.set()
            parser.join(timeout=5)
            if adopting is not None:
                adopting.join(timeout=35)
            self._leave()
            self.client.loop_stop()
            if self._writer is not None:
                self._writer.conn.close()
            if self._metrics_server is not None:
                self._metrics_server.shutdown()
                self._metrics_server.server_close()

    def _leave(self) -> None:
        """Disconnect: a worker of a share group says it is offline first (its peers adopt its
        session unless it is back within `adopt_after_s`); an adoption has already left."""
        if self.adopted_by:
            if not self.finished.is_set():
                self.client.disconnect()
            return
        if self.settings.share_group and self._connected.is_set():
            try:
                self._publish_status("offline").wait_for_publish(STATUS_PUBLISH_WAIT_S)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not say offline before leaving: %s", exc)
        self.client.disconnect()

    # -- adoption of lost workers' sessions ----------------------------------------------------

    def _adopt_loop(self, halt: threading.Event) -> None:
        """Adopts, one at a time, the lost workers this worker is the adopter of."""
        while not halt.wait(ADOPT_CHECK_S):
            with self._workers_lock:
                due = self.workers.to_adopt(time.monotonic(), self.settings.adopt_after_s)
            for worker in due:
                if halt.is_set():
                    return
                try:
                    self.adopt(worker, halt)
                except Exception:  # the worker goes on ingesting; the adoption is tried again
                    log.exception("adopting the session of %s failed", worker)
                    with self._workers_lock:
                        self.workers.postpone(worker, time.monotonic())

    def peer_settings(self, worker: str) -> IngestSettings:
        """This worker's settings with `worker`'s client id and, where the broker binds client
        ids to accounts (a username is set), `worker`'s account: its password from
        `peer_password_dir`, else this worker's own."""
        mqtt = self.settings.mqtt
        if mqtt.username is not None:
            password = mqtt.password
            folder = self.settings.peer_password_dir
            if folder and (Path(folder) / worker).is_file():
                password = read_secret(str(Path(folder) / worker), "ingest.peer_password_dir")
            mqtt = dataclasses.replace(mqtt, username=worker, password=password)
        return dataclasses.replace(self.settings, client_id=worker, mqtt=mqtt, metrics_port=0)

    def adopt(self, worker: str, halt: threading.Event) -> bool:
        """Store what the lost `worker`'s session holds and have the broker remove it (its
        share of the readings then goes to the workers alive). Whether that finished; if not
        (it came back and took its session over, or the broker refused), what was not
        acknowledged stays in the session, and the adoption is tried again after the grace
        period if it is still offline."""
        me = self.settings.client_id
        log.warning("worker %s is lost: %s adopts its session", worker, me)
        started = time.monotonic()
        try:
            settings = self.peer_settings(worker)
        except SettingsError as exc:
            log.error("cannot adopt %s: %s", worker, exc)
            with self._workers_lock:
                self.workers.postpone(worker, time.monotonic())
            return False
        adoption = IngestService(settings, self.metrics, adopted_by=me)
        stop = threading.Event()
        thread = threading.Thread(
            target=adoption.run, args=(stop,), name=f"ingest-adopt-{worker}", daemon=True
        )
        thread.start()
        while thread.is_alive() and not halt.is_set():
            thread.join(timeout=0.2)
        stop.set()
        thread.join(timeout=30)
        now = time.monotonic()
        with self._workers_lock:
            if adoption.finished.is_set():
                self.workers.observe(
                    WorkerStatus(worker, "adopted", self.settings.share_group, me), now
                )
            else:
                self.workers.postpone(worker, now)
        if not adoption.finished.is_set():
            log.warning("the adoption of %s did not finish; tried again later", worker)
            return False
        self.counters.adopted_sessions += 1
        self.counters.adopted_messages += adoption.counters.messages
        log.warning(
            "adopted %s: %d messages (%d new readings) stored in %.1f s; its session is removed",
            worker,
            adoption.counters.messages,
            adoption.counters.readings_inserted,
            now - started,
        )
        return True

    def _begin_drain(self, session_present: bool) -> None:
        """An adoption has resumed the lost worker's session: no more messages for it (its
        subscriptions go), and a marker through it, which arrives after all it holds."""
        if not session_present:
            self._drained_at = 0  # nothing held; the empty session made is removed at once
            return
        self.client.unsubscribe([topic for topic, _ in self.subscriptions()])
        self.client.subscribe([(self._drain_topic, 1)])
        self._send_marker()

    def _send_marker(self) -> None:
        self._marker_sent = time.monotonic()
        self.client.publish(self._drain_topic, self._drain_token, qos=1)

    def _adoption_over(self) -> bool:
        """Whether this adoption is done: its connection lost, or everything before the marker
        committed and acknowledged, and then the session removed and the worker's status made
        "adopted"."""
        if self.aborted.is_set():
            return True
        if self._drained_at is None or self._settled < self._drained_at:
            if (
                self._drained_at is None
                and self.session_present
                and time.monotonic() - self._marker_sent > DRAIN_MARKER_EVERY_S
            ):
                self._send_marker()
            return False
        try:
            self._publish_status("adopted", by=self.adopted_by).wait_for_publish(
                STATUS_PUBLISH_WAIT_S
            )
        except (RuntimeError, ValueError) as exc:
            log.warning("could not mark %s adopted: %s", self.settings.client_id, exc)
        # MQTT 5 lets DISCONNECT shorten the session's expiry to 0: the broker removes it, and
        # with it the worker's place in the shared subscription.
        props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0
        self.finished.set()
        self.client.disconnect(properties=props)
        return True

    def _next_parsed(
        self, ready: queue.Queue[Batch | BaseException]
    ) -> Batch | BaseException | None:
        """The next parsed batch, or None after 0.2 s without one. While it waits, the writer
        counts as idle (see `next_batch`)."""
        try:
            return ready.get_nowait()
        except queue.Empty:
            pass
        self._writer_idle.set()
        try:
            return ready.get(timeout=0.2)
        except queue.Empty:
            return None
        finally:
            self._writer_idle.clear()

    def _parse_loop(self, stop: threading.Event, ready: queue.Queue[Batch | BaseException]) -> None:
        """Parsing stage: at most one parsed batch waits for the writer (plus the one being
        collected), so a slow database slows the intake instead of filling memory."""
        try:
            while not stop.is_set():
                batch = self.next_batch(stop)
                while batch is not None and not stop.is_set():
                    try:
                        ready.put(batch, timeout=0.2)
                        break
                    except queue.Full:
                        continue
        except Exception as exc:  # a bug, not bad input (that is a dead letter): stop the service
            log.exception("the parsing stage failed")
            ready.put(exc)

    def _maintain_safely(self) -> None:
        assert self._writer is not None
        try:
            with _Deadline(self._writer.conn, self.settings.db_timeout_s):
                self._maintain(self._writer)
        except psycopg.Error as exc:
            log.error("partition maintenance failed (%s); retrying later", exc)
            self._drop_writer()

    def _drop_writer(self) -> None:
        if self._writer is not None:
            self._writer.conn.close()
        self._writer = None

    def _process(self, parsed: Batch, stop: threading.Event) -> None:
        """Write a batch, then acknowledge its messages. When the database refuses the batch
        for what it holds (`ingest.writer.refused`), it is split by message until the messages
        it refuses are found: those become dead letters, the rest is written (`_isolate`). Any
        other error leaves the batch unacknowledged and is retried with backoff on a new
        connection; the service keeps running."""
        pending = [parsed]  # parts not yet committed, in order
        offered = inserted = passes = 0
        dead: list[DeadLetter] = []
        times: list[datetime] = []
        backoff = 0.5
        started = time.monotonic()
        while pending:
            part = pending[0]
            rows = Rows(part.resolution, part.rows)
            try:
                if self._writer is None:
                    self._writer = self._open_writer()
                with _Deadline(self._writer.conn, self.settings.db_timeout_s):
                    result = self._writer.write(rows, part.dead, part.statuses)
                self._resolution = self._writer.resolution
            except (psycopg.Error, ValueError, OverflowError) as exc:
                writer = self._writer
                if writer is not None and not writer.conn.closed and refused(exc):
                    pending[:1] = self._isolate(part, exc)
                    continue
                if not isinstance(exc, psycopg.Error):
                    raise
                # Unavailable, cut by the deadline, or failing for a reason of its own: what
                # is not committed stays unacknowledged and is retried on a new connection.
                self.counters.db_errors += 1
                self.metrics.db_errors.inc()
                log.error(
                    "database error (%s: %s); retrying in %.1fs", type(exc).__name__, exc, backoff
                )
                self._drop_writer()
                if stop.wait(backoff) or self.aborted.is_set():
                    return  # not acknowledged: the broker delivers these again
                backoff = min(backoff * 2, 10.0)
                continue
            pending.pop(0)
            offered += result.offered
            inserted += result.inserted
            passes += result.passes
            dead += part.dead
            times += rows.times()
        committed = time.monotonic()
        batch = parsed.messages
        current = self.client.connection
        self.client.ack_all([m.mid for m in batch if m.qos == 1 and m.connection == current])
        for m in batch:
            if m.qos == 2 and m.connection == current:
                self.client.ack(m.mid, m.qos)
        self._inbox.release(batch)
        self._settled += sum(1 for m in batch if m.qos)
        self._count(batch, offered, inserted, passes, dead, parsed.kinds)
        self.metrics.batch_seconds.observe(committed - started)
        now = time.time()
        self.metrics.observe_lags([max(0.0, now - moment.timestamp()) for moment in times])
        log.debug(
            "batch: %d messages, %d readings (%d new), %d dead, %.1f ms",
            len(batch),
            offered,
            inserted,
            len(dead),
            (committed - started) * 1000,
        )

    def _isolate(self, part: Batch, exc: BaseException) -> list[Batch]:
        """What to write instead of `part`, which the database refused: its two halves, each
        committed on its own; for a single message, its dead letters plus one for the refusal
        (`db_refused`, with what the database said). Bisecting finds k refused messages among
        n in about 2k·log2(n) attempts, each rolled back whole."""
        if len(part.messages) > 1:
            middle = len(part.messages) // 2
            return [part.part(0, middle), part.part(middle, len(part.messages))]
        if not part.rows and not part.statuses:
            # Dead letters alone, which escaping makes always storable: dropped rather than
            # retried forever should the database refuse them all the same.
            log.error("dead letters refused (%s), dropped: %s", refusal(exc), part.dead[:3])
            return []
        message = part.messages[0]
        letter = DeadLetter(
            message.topic, REFUSED, refusal(exc), message.payload, datetime.now(UTC)
        )
        log.warning("the database refused a message on %s: %s", message.topic, letter.detail)
        refused_part = Batch(
            messages=part.messages, dead=[*part.dead, letter], resolution=part.resolution
        )
        refused_part.marks.append((0, 0, 0))
        return [refused_part]

    def _count(
        self,
        batch: list[Received],
        offered: int,
        inserted: int,
        passes: int,
        dead: list[DeadLetter],
        kinds: dict[str, int],
    ) -> None:
        self.counters.messages += len(batch)
        self.counters.batches += 1
        self.counters.readings_offered += offered
        self.counters.readings_inserted += inserted
        self.counters.dead_letters += len(dead)
        self.metrics.batches.inc()
        self.metrics.batch_messages.observe(len(batch))
        for kind, n in kinds.items():
            self.metrics.messages.labels(kind).inc(n)
        self.metrics.readings.labels("stored").inc(inserted)
        self.metrics.readings.labels("duplicate").inc(offered - inserted)
        self.metrics.passes.inc(passes)
        for d in dead:
            self.dead_by_reason[d.reason] = self.dead_by_reason.get(d.reason, 0) + 1
            self.metrics.dead_letters.labels(d.reason).inc()
        if dead:
            log.warning(
                "%d dead letters, e.g. on %s: %s: %s",
                len(dead),
                dead[0].topic,
                dead[0].reason,
                dead[0].detail[:200],
            )
