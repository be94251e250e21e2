"""Faults on the way from broker to database: the ingest killed with SIGKILL in the middle of
batches, the broker restarted, PostgreSQL unreachable for a while (blackholed, then cut). After
each, every reading the broker acknowledged at QoS 1 is stored exactly once.

A private Mosquitto (persistence on, no queue limit) and the machine's PostgreSQL; the database is
reached through a TCP proxy inside the test where the fault is the database's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from edge.mqtt import MqttSettings
from ingest.service import IngestService
from ingest.settings import IngestSettings
from tests.integration.ingest_fixtures import (
    IngestProcess,
    PrivateBroker,
    Publisher,
    TcpProxy,
    fleet_messages,
    needs_mosquitto,
    pg_proxy,
    private_broker,
    recent_start,
    wait_for,
    wait_until_subscribed,
    write_ingest_config,
)

pytestmark = [pytest.mark.integration, needs_mosquitto]
__all__ = ["pg_proxy", "private_broker"]  # fixtures used by name below


def tally(database_url: str, acknowledged: list[tuple[str, int]]) -> dict[str, int]:
    """lost: acknowledged but not stored; duplicated: stored more than once; unexpected: stored
    but never acknowledged (possible only for messages in flight at the end: none here)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT vehicle, seq, count(*) FROM reading GROUP BY 1, 2").fetchall()
    stored = {(v, s): n for v, s, n in rows}
    wanted = set(acknowledged)
    return {
        "acknowledged": len(wanted),
        "stored": sum(stored.values()),
        "lost": len(wanted - stored.keys()),
        "duplicated": sum(n - 1 for n in stored.values() if n > 1),
        "unexpected": len(stored.keys() - wanted),
    }


def stored_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM reading").fetchone()
    return int(row[0]) if row else 0


def publish_all(
    publisher: Publisher, messages: list[tuple[str, list[Any]]], pause_every: int = 0
) -> None:
    for i, (vehicle, readings) in enumerate(messages):
        publisher.publish(vehicle, readings)
        if pause_every and i % pause_every == 0:
            time.sleep(0.01)  # spread the stream over the fault


def report(name: str, counts: dict[str, int]) -> None:
    print(f"\n{name}: {counts}")


def test_ingest_killed_with_sigkill_in_the_middle_of_batches(
    private_broker: PrivateBroker, database_url: str, tmp_path: Path
) -> None:
    config = write_ingest_config(
        tmp_path / "ingest.toml",
        private_broker.url,
        database_url,
        "ingest-kill-test",
        batch_max_messages=40,
        batch_max_wait_s=0.05,
    )
    ingest = IngestProcess(config, tmp_path / "ingest.log")
    ingest.start()
    publisher = Publisher(private_broker.url, "fleet-kill-test")
    messages = fleet_messages(vehicles=20, per_vehicle=150, start=recent_start())  # 3,000
    try:
        wait_until_subscribed(publisher, database_url)
        sender = threading.Thread(target=publish_all, args=(publisher, messages, 50))
        sender.start()
        for threshold in (300, 1200, 2100):
            wait_for(lambda t=threshold: stored_count(database_url) >= t, 60, f"{threshold} stored")  # type: ignore[misc]
            ingest.kill9()  # mid-stream: a batch is being written or acknowledged
            ingest.start()
        sender.join(timeout=60)
        wait_for(lambda: publisher.outstanding() == 0, 60, "every PUBACK")
        wait_for(lambda: stored_count(database_url) >= len(messages), 60, "every reading stored")
    finally:
        publisher.close()
        ingest.stop()
    counts = tally(database_url, publisher.acknowledged)
    report("kill -9 of the ingest x3", counts)
    assert counts["acknowledged"] == len(messages)
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
    assert counts["unexpected"] == 0


StartIngest = Callable[[IngestSettings], IngestService]


@pytest.fixture
def start_ingest() -> Iterator[StartIngest]:
    """Runs IngestService in a thread; stopped (SIGTERM-like) at the end of the test."""
    threads: list[tuple[threading.Thread, threading.Event]] = []

    def start(settings: IngestSettings) -> IngestService:
        service = IngestService(settings)
        stop = threading.Event()
        thread = threading.Thread(target=service.run, args=(stop,), name="ingest")
        thread.start()
        threads.append((thread, stop))
        wait_for(service._connected.is_set, 10, "the ingest to connect")
        return service

    yield start
    for thread, stop in threads:
        stop.set()
        thread.join(timeout=30)


def test_broker_restarted_while_readings_flow(
    private_broker: PrivateBroker, database_url: str, start_ingest: StartIngest
) -> None:
    mqtt = MqttSettings.from_url(private_broker.url)
    settings = IngestSettings(
        database_url=database_url, mqtt=mqtt, client_id="ingest-broker-test", batch_max_wait_s=0.05
    )
    start_ingest(settings)
    publisher = Publisher(private_broker.url, "fleet-broker-test")
    wait_until_subscribed(publisher, database_url)
    messages = fleet_messages(
        vehicles=10, per_vehicle=200, start=recent_start(), batch=2
    )  # 1,000 msgs
    try:
        publish_all(publisher, messages[:400])
        wait_for(lambda: stored_count(database_url) >= 200, 30, "some readings stored")
        private_broker.stop()  # SIGTERM: it saves sessions and queued messages to disk
        publish_all(publisher, messages[400:700])  # while the broker is down: paho holds them
        private_broker.start()
        publish_all(publisher, messages[700:])
        wait_for(lambda: publisher.outstanding() == 0, 60, "every PUBACK")
        expected = sum(len(r) for _, r in messages)
        wait_for(lambda: stored_count(database_url) >= expected, 60, "every reading stored")
    finally:
        publisher.close()
    counts = tally(database_url, publisher.acknowledged)
    report("broker restart", counts)
    assert counts["acknowledged"] == expected
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
    assert counts["unexpected"] == 0


def test_database_unreachable_for_a_while(
    private_broker: PrivateBroker,
    database_url: str,
    pg_proxy: TcpProxy,
    start_ingest: StartIngest,
) -> None:
    mqtt = MqttSettings.from_url(private_broker.url)
    settings = IngestSettings(
        database_url=pg_proxy.url_for(database_url),
        mqtt=mqtt,
        client_id="ingest-db-test",
        batch_max_wait_s=0.05,
        db_timeout_s=2.0,
    )
    service = start_ingest(settings)
    publisher = Publisher(private_broker.url, "fleet-db-test")
    wait_until_subscribed(publisher, database_url)
    messages = fleet_messages(vehicles=10, per_vehicle=150, start=recent_start())  # 1,500
    try:
        publish_all(publisher, messages[:300])
        wait_for(lambda: stored_count(database_url) >= 300, 30, "first readings stored")
        pg_proxy.blackhole()  # packets vanish: only the ingest's own deadline notices
        publish_all(publisher, messages[300:800])
        errors = service.counters.db_errors
        wait_for(
            lambda: service.counters.db_errors > errors, 20, "the ingest to give up a round trip"
        )
        pg_proxy.cut()  # then connections are refused outright
        publish_all(publisher, messages[800:1100])
        time.sleep(1.0)  # the outage lasts; the ingest keeps retrying with backoff
        pg_proxy.restore()
        publish_all(publisher, messages[1100:])
        wait_for(lambda: publisher.outstanding() == 0, 60, "every PUBACK")
        wait_for(lambda: stored_count(database_url) >= len(messages), 90, "every reading stored")
    finally:
        publisher.close()
    counts = tally(database_url, publisher.acknowledged)
    report("database blackholed then cut", counts)
    assert service.counters.db_errors >= 2
    assert counts["acknowledged"] == len(messages)
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
    assert counts["unexpected"] == 0


def test_two_workers_share_the_readings_and_one_stops_for_a_while(
    private_broker: PrivateBroker, database_url: str, start_ingest: StartIngest
) -> None:
    """MQTT 5 shared subscription: the readings are split between two workers. One worker stops
    (a clean shutdown, its persistent session stays); Mosquitto keeps dealing it its share, which
    waits in its session and is stored when it comes back with the same client id."""
    mqtt = MqttSettings.from_url(private_broker.url)

    def settings(n: int) -> IngestSettings:
        return IngestSettings(
            database_url=database_url,
            mqtt=mqtt,
            client_id=f"ingest-shared-{n}",
            share_group="ingest",
            batch_max_wait_s=0.05,
            # Back with its own client id before anyone adopts its session (what adoption does
            # for a worker that stays away: test_ingest_hosts.py).
            adopt_peers=False,
        )

    first = start_ingest(settings(1))
    second_stop = threading.Event()
    second = IngestService(settings(2))
    second_thread = threading.Thread(target=second.run, args=(second_stop,), name="ingest-2")
    second_thread.start()
    wait_for(second._connected.is_set, 10, "the second worker to connect")
    publisher = Publisher(private_broker.url, "fleet-shared-test")
    wait_until_subscribed(publisher, database_url)
    messages = fleet_messages(vehicles=10, per_vehicle=100, start=recent_start())  # 1,000
    try:
        publish_all(publisher, messages[:400])
        wait_for(lambda: stored_count(database_url) >= 400, 30, "the first 400 stored")
        assert first.counters.readings_inserted > 0
        assert second.counters.readings_inserted > 0
        second_stop.set()
        second_thread.join(timeout=30)
        publish_all(publisher, messages[400:])
        wait_for(lambda: publisher.outstanding() == 0, 60, "every PUBACK")
        time.sleep(1.0)
        # The stopped worker's share waits for it: not stored yet.
        assert stored_count(database_url) < len(messages)
        second = IngestService(settings(2))
        second_stop = threading.Event()
        second_thread = threading.Thread(target=second.run, args=(second_stop,), name="ingest-2")
        second_thread.start()
        wait_for(lambda: stored_count(database_url) >= len(messages), 60, "every reading stored")
    finally:
        publisher.close()
        second_stop.set()
        second_thread.join(timeout=30)
    counts = tally(database_url, publisher.acknowledged)
    report("shared subscription, one worker away", counts)
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
    assert counts["acknowledged"] == len(messages)
