"""The edge agent and the ingest on brokers other than Mosquitto: RabbitMQ's MQTT plugin and the
NATS server's MQTT gateway, each a private server of this module's own (other_brokers.py), both
speaking MQTT 3.1.1 only (`?protocol=3.1.1` on the broker URL).

Real parts throughout: simulated boxes and GPS receivers on pseudo-terminals, the edge agent
reading them, the ingest writing to PostgreSQL. Every reading an agent makes must be stored once
while the ingest is stopped, the broker restarted with the readings queued for the ingest's
persistent session, and the ingest started again. A backlog queued for the ingest must drain in
large batches (the broker's in-flight setting, not MQTT 5's Receive Maximum, bounds them). An
MQTT 5 connection to either broker must end in an error that says what to change, and the
vehicles' retained status and last will are checked for what each broker does with them
(docs/broker.md, "Other brokers and clusters").
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent import Agent
from edge.config import BoxSettings, EdgeSettings, GpsSettings, PublishSettings
from edge.mqtt import MqttSettings
from edge.outbox import Outbox
from edge.profile import load_profile
from edge.publisher import Publisher
from edge.wire import encode_message
from firmware_sim.drive import CruiseDrive, SimClock
from firmware_sim.field import SHUANGJING_SOURCES, PollutionField
from firmware_sim.route import SHUANGJING_LOOP
from firmware_sim.vehicle import SimVehicle
from ingest.service import IngestService
from ingest.settings import IngestSettings
from tests.integration.ingest_fixtures import fleet_messages, recent_start
from tests.integration.other_brokers import MqttServer, Nats, RabbitMq, needs_nats, needs_rabbitmq
from tests.services import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SPEED = 100.0  # simulated seconds per wall second: a reading every 0.1 s per vehicle
VEHICLES = 2
STEP = 15  # readings per vehicle made in each phase of the restart test
PHASE_S = 60.0  # the longest any phase may take on a loaded machine
BACKLOG = 1500  # one-reading messages queued for the stopped ingest
REPORT: dict[str, dict[str, Any]] = {}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("rabbitmq", marks=needs_rabbitmq),
        pytest.param("nats", marks=needs_nats),
    ],
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MqttServer]:
    """One broker per module and kind, started once: RabbitMQ alone takes 5-15 s to start."""
    kind = {"rabbitmq": RabbitMq, "nats": Nats}[request.param]
    broker = kind(tmp_path_factory.mktemp(request.param))
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


def _client(server: MqttServer, client_id: str = "", inflight: int = 20) -> paho.Client:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id or f"probe-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv311,
    )
    client.max_inflight_messages_set(inflight)
    settings = MqttSettings.from_url(server.url)
    client.connect(settings.host, settings.port, 30)
    client.loop_start()
    wait_until(client.is_connected, 10, "a probe to connect")
    return client


def _subscribe(client: paho.Client, topic: str) -> None:
    """Subscribe and wait for the SUBACK: what is published after it reaches the client."""
    acked = threading.Event()
    client.on_subscribe = lambda *_args: acked.set()
    client.subscribe(topic, 1)
    assert acked.wait(10), f"no SUBACK for {topic}"


def _close(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


class _Ingest:
    """The ingest in a thread, stopped as `envpatrol ingest` stops on SIGTERM."""

    def __init__(self, settings: IngestSettings) -> None:
        self.service = IngestService(settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.service.run, args=(self._stop,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the ingest did not stop"


def _wait_subscribed(server: MqttServer, root: str, database_url: str) -> None:
    """A status probe published until the ingest stores it: from then on the ingest's session
    holds its subscriptions, and the broker keeps every reading for it."""
    probe = _client(server)
    payload = json.dumps({"schema_version": 1, "vehicle": "probe", "state": "online"}).encode()

    def stored() -> bool:
        probe.publish(f"{root}/v1/probe/status", payload, qos=1)
        with psycopg.connect(database_url) as conn:
            return (
                conn.execute("SELECT 1 FROM vehicle WHERE vehicle = 'probe'").fetchone() is not None
            )

    try:
        wait_until(stored, 30, "the ingest to store a status probe", every=0.3)
    finally:
        _close(probe)


def _stored(database_url: str) -> dict[str, list[int]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT vehicle, seq FROM reading ORDER BY vehicle, seq").fetchall()
    out: dict[str, list[int]] = {}
    for vehicle, seq in rows:
        out.setdefault(vehicle, []).append(seq)
    return out


def test_every_reading_is_stored_once_across_ingest_and_broker_restarts(
    server: MqttServer, database_url: str, topic_root: str, tmp_path: Path
) -> None:
    mqtt = MqttSettings.from_url(server.url, topic_root=topic_root)
    ingest_settings = IngestSettings(
        database_url=database_url,
        mqtt=mqtt,
        client_id=f"{topic_root}-ingest",
        batch_max_wait_s=0.2,
    )
    ingests = [_Ingest(ingest_settings)]
    vehicles: list[SimVehicle] = []
    agents: list[tuple[Agent, threading.Thread, threading.Event]] = []
    clock = SimClock(datetime.now(UTC) - timedelta(hours=6), speed=SPEED)
    field = PollutionField(SHUANGJING_SOURCES, seed=5)
    profile = load_profile("default-multi")

    def made() -> int:
        return min(agent.readings for agent, _, _ in agents)

    def total() -> int:
        return sum(agent.readings for agent, _, _ in agents)

    def wait_made(count: int, what: str) -> None:
        wait_until(
            lambda: made() >= count, PHASE_S, f"every agent to make {count} readings ({what})"
        )

    try:
        _wait_subscribed(server, topic_root, database_url)
        for i in range(VEHICLES):
            name = f"port-{i + 1}-{topic_root[-6:]}"
            drive = CruiseDrive(SHUANGJING_LOOP, clock.start, speed_mps=6.0, offset_m=900.0 * i)
            vehicle = SimVehicle(name, profile, drive, clock, field, seed=i)
            vehicle.start()
            vehicles.append(vehicle)
            settings = EdgeSettings(
                vehicle=name,
                mqtt=mqtt,
                box=BoxSettings(port=vehicle.box_path),
                gps=GpsSettings(port=vehicle.gps_path),
                outbox_path=str(tmp_path / f"{name}.sqlite3"),
                poll_interval_s=10.0,
                time_scale=SPEED,
                publish=PublishSettings(reconnect_min_s=0.5, reconnect_max_s=4.0),
            )
            agent = Agent(settings)
            stop = threading.Event()
            thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
            thread.start()
            agents.append((agent, thread, stop))

        # Live: the ingest stores as the agents publish.
        wait_made(STEP, "live")
        # The ingest stops; the broker queues what the agents publish for its session.
        ingests[0].stop()
        at_ingest_stop = total()
        queued_from = made()
        wait_made(queued_from + STEP, "queued for the stopped ingest")
        # The broker restarts with that queue; the agents keep their readings in their outboxes
        # meanwhile and publish them once it is back, into the same queue.
        server.stop()
        at_broker_stop = total()
        down_from = made()
        server.start()
        wait_until(
            lambda: all(agent.publisher.connected for agent, _, _ in agents),
            PHASE_S,
            "every agent to reconnect",
        )
        wait_made(max(made(), down_from) + STEP, "after the broker restart")
        # The ingest returns to its session.
        at_ingest_start = total()
        ingests.append(_Ingest(ingest_settings))
        wait_made(made() + STEP // 2, "with the ingest back")
        for _, thread, stop in agents:
            stop.set()
            thread.join(30)
        for vehicle in vehicles:
            vehicle.stop()
        expected = {agent.settings.vehicle: agent.readings for agent, _, _ in agents}
        wait_until(
            lambda: sum(len(s) for s in _stored(database_url).values()) >= sum(expected.values()),
            PHASE_S,
            "the ingest to store every reading",
            every=0.5,
        )
    finally:
        for _, thread, stop in agents:
            stop.set()
            thread.join(30)
        for vehicle in vehicles:
            vehicle.stop()
        for ingest in ingests:
            ingest.stop()

    stored = _stored(database_url)
    for name, count in expected.items():
        assert stored.get(name) == list(range(1, count + 1)), name
    offered = sum(i.service.counters.readings_offered for i in ingests)
    inserted = sum(i.service.counters.readings_inserted for i in ingests)
    REPORT[server.name] = {
        "made": sum(expected.values()),
        "stored": sum(len(s) for s in stored.values()),
        "delivered_again": offered - inserted,
        # Made while the ingest was stopped: before the broker restart (kept only by the
        # broker, in the ingest's queue) and from then on (the outboxes, then that queue).
        "made_ingest_down_broker_up": at_broker_stop - at_ingest_stop,
        "made_from_broker_restart_to_ingest_start": at_ingest_start - at_broker_stop,
    }
    print(f"\n{server.name}: {REPORT[server.name]}")


def test_a_backlog_drains_in_large_batches(
    server: MqttServer, database_url: str, topic_root: str
) -> None:
    """MQTT 3.1.1 has no Receive Maximum: how many unacknowledged messages the broker sends the
    ingest is the broker's setting (other_brokers.INFLIGHT), and the ingest acknowledges only
    after each COMMIT. At RabbitMQ's default of 10, every batch would hold 10 messages."""
    settings = IngestSettings(
        database_url=database_url,
        mqtt=MqttSettings.from_url(server.url, topic_root=topic_root),
        client_id=f"{topic_root}-ingest",
    )
    first = _Ingest(settings)
    try:
        _wait_subscribed(server, topic_root, database_url)
    finally:
        first.stop()
    messages = fleet_messages(5, BACKLOG // 5, recent_start())
    publisher = _client(server, inflight=500)
    try:
        sent = [
            publisher.publish(f"{topic_root}/v1/{vehicle}/readings", encode_message(vehicle, rs), 1)
            for vehicle, rs in messages
        ]
        for info in sent:
            info.wait_for_publish(30)
    finally:
        _close(publisher)
    started = time.monotonic()
    second = _Ingest(settings)
    try:
        wait_until(
            lambda: second.service.counters.readings_inserted >= BACKLOG,
            60,
            "the ingest to drain its queue",
            every=0.1,
        )
        took = time.monotonic() - started
    finally:
        second.stop()
    batches = second.service.counters.batches
    print(f"\n{server.name}: {BACKLOG} queued messages drained in {took:.1f}s, {batches} batches")
    assert batches <= BACKLOG // 100, batches


def test_an_mqtt5_connection_ends_in_an_error_that_says_what_to_change(
    server: MqttServer, tmp_path: Path, topic_root: str, caplog: pytest.LogCaptureFixture
) -> None:
    mqtt = MqttSettings.from_url(server.url, topic_root=topic_root).replace(protocol="5")
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    publisher = Publisher(
        mqtt,
        f"v5-{topic_root[-6:]}",
        outbox,
        lambda state: {"state": state},
        reconnect_min_s=0.2,
        reconnect_max_s=1.0,
    )
    ingest = IngestService(
        IngestSettings(database_url="postgresql://unused", mqtt=mqtt, client_id=f"{topic_root}-5")
    )
    caplog.set_level(logging.WARNING)
    publisher.start()
    ingest.connect()
    try:
        wait_until(
            lambda: "?protocol=3.1.1" in publisher.last_error,
            20,
            "the agent to say why the broker will not have it",
        )
        wait_until(
            lambda: any(
                "?protocol=3.1.1" in r.getMessage()
                for r in caplog.records
                if r.name.startswith("envpatrol.ingest")
            ),
            20,
            "the ingest to say why the broker will not have it",
        )
    finally:
        publisher.stop()
        ingest.client.disconnect()
        ingest.client.loop_stop()
        outbox.close()
    assert not publisher.connected
    assert publisher.counters.connects == 0


def _given_on_subscribe(server: MqttServer, topic: str, root: str) -> list[bytes]:
    """The retained messages a new subscription to `topic` is given. They come right after the
    SUBACK; a message published after it by another client marks their end (for a topic
    filter it does not match, a retained message is awaited instead)."""
    got: list[bytes] = []
    marker_topic = f"{root}/v1/zz-marker/status"
    later = _client(server)
    later.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
    try:
        _subscribe(later, topic)
        marker = _client(server)
        marker.publish(marker_topic, b"{}", qos=1).wait_for_publish(10)
        _close(marker)
        if "+" in topic:
            wait_until(lambda: b"{}" in got, 20, "the marker")
        else:
            wait_until(lambda: bool(got), 20, f"the retained message on {topic}")
    finally:
        _close(later)
    return [p for p in got if p != b"{}"]


# What each broker does with a vehicle's retained status and last will, as observed:
# (a new wildcard subscriber gets the retained status, a new exact-topic subscriber does).
RETAINED = {"RabbitMQ": (False, True), "NATS": (True, True)}


def test_last_will_reaches_the_ingest_and_the_retained_status_stays(
    server: MqttServer, tmp_path: Path, topic_root: str
) -> None:
    vehicle = f"will-{topic_root[-6:]}"
    mqtt = MqttSettings.from_url(server.url, topic_root=topic_root)
    status_topic = f"{topic_root}/v1/{vehicle}/status"
    live: list[paho.MQTTMessage] = []
    watcher = _client(server)
    watcher.on_message = lambda _c, _u, m: live.append(m)
    _subscribe(watcher, f"{topic_root}/v1/+/status")
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    calls: list[str] = []

    def status(state: str) -> dict[str, Any]:
        calls.append(state)  # the first is the will, made when the publisher is
        return {"vehicle": vehicle, "state": state, "call": len(calls)}

    publisher = Publisher(mqtt, vehicle, outbox, status)
    publisher.start()
    try:
        wait_until(lambda: any(b'"online"' in m.payload for m in live), 20, "the online status")
        # The link dies without a DISCONNECT: the broker publishes the will. The publisher is
        # stopped before its first reconnect could say "online" again.
        sock = publisher.client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        publisher.stop(timeout=0.1)
        wait_until(lambda: any(b'"offline"' in m.payload for m in live), 60, "the last will")
        will = json.loads(next(m.payload for m in live if b'"offline"' in m.payload))
        assert will["call"] == 1, will
    finally:
        publisher.stop()
        outbox.close()
        _close(watcher)

    wildcard = _given_on_subscribe(server, f"{topic_root}/v1/+/status", topic_root)
    exact = _given_on_subscribe(server, status_topic, topic_root)
    seen = {"wildcard": wildcard, "exact": exact}
    observed = (bool(wildcard), bool(exact))
    assert observed == RETAINED[server.name], seen
    for payloads in seen.values():
        assert all(b'"offline"' in p for p in payloads), payloads
