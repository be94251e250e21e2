"""The ingest service under bad input and its metrics, against a private Mosquitto and the real
PostgreSQL: a burst of 10,000 malformed payloads among good readings leaves the service running,
the good readings stored, every bad payload in the dead-letter table with its reason, and the
counts on /metrics."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from demo.embedded import free_port
from edge.mqtt import MqttSettings
from edge.wire import encode_message
from ingest.service import IngestService
from ingest.settings import IngestSettings
from tests.integration.ingest_fixtures import (
    PrivateBroker,
    Publisher,
    fleet_messages,
    needs_mosquitto,
    private_broker,
    recent_start,
    wait_for,
    wait_until_subscribed,
)
from tests.services import wait_until

pytestmark = [pytest.mark.integration, needs_mosquitto]
__all__ = ["private_broker"]

BURST = 10_000
PER_READING = frozenset({"bad_type", "bad_time", "bad_unit", "out_of_range", "time_out_of_range"})


def malformed(i: int) -> tuple[str, bytes, str]:
    """The i-th bad message: (topic vehicle, payload, the reason it must be rejected for). A
    message whose only reading is bad keeps its message: the reading is dead-lettered with its
    reason (`PER_READING`) and the message once as `rejected_readings`."""
    good = json.loads(encode_message("car-0000", fleet_messages(1, 1, recent_start())[0][1]))
    reading = good["readings"][0]
    kinds: list[tuple[str, object, str]] = [
        ("car-0000", b"\x00\xff not json", "malformed_json"),
        ("car-0000", b"[]", "not_an_object"),
        ("car-0000", {**good, "schema_version": 99}, "schema_version"),
        ("car-0000", {"schema_version": 1, "vehicle": "car-0000"}, "missing_field"),
        ("car-0000", {**good, "readings": [{**reading, "seq": -1}]}, "bad_type"),
        ("car-0000", {**good, "readings": [{**reading, "time": "noon"}]}, "bad_time"),
        ("car-0000", {**good, "readings": [{**reading, "units": {"pm25": "ppm", "noise": "dBA"}}]}, "bad_unit"),
        ("car-0001", good, "vehicle_mismatch"),
        ("car-0000", {**good, "readings": [{**reading, "values": {"pm25": -50.0}, "units": {"pm25": "ug/m3"}}]}, "out_of_range"),
        ("car-0000", {**good, "readings": [{**reading, "time": "1999-01-01T00:00:00Z"}]}, "time_out_of_range"),
        ("Car_Upper!", good, "bad_topic"),
    ]  # fmt: skip
    vehicle, doc, reason = kinds[i % len(kinds)]
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return vehicle, payload, reason


@pytest.fixture
def service(private_broker: PrivateBroker, database_url: str) -> Iterator[IngestService]:
    settings = IngestSettings(
        database_url=database_url,
        mqtt=MqttSettings.from_url(private_broker.url),
        client_id="ingest-burst-test",
        batch_max_wait_s=0.05,
        metrics_port=free_port(),
    )
    ingest = IngestService(settings)
    stop = threading.Event()
    thread = threading.Thread(target=ingest.run, args=(stop,), name="ingest")
    thread.start()
    wait_for(ingest._connected.is_set, 10, "the ingest to connect")
    yield ingest
    assert thread.is_alive(), "the ingest stopped by itself"
    stop.set()
    thread.join(timeout=30)


def test_a_burst_of_malformed_payloads_among_good_readings(
    private_broker: PrivateBroker, database_url: str, service: IngestService
) -> None:
    publisher = Publisher(private_broker.url, "fleet-burst-test")
    wait_until_subscribed(publisher, database_url)
    good = fleet_messages(vehicles=5, per_vehicle=100, start=recent_start())  # 500 readings
    expected: Counter[str] = Counter()
    sent: dict[str, bytes] = {}
    try:
        for i in range(BURST):
            vehicle, payload, reason = malformed(i)
            publisher.publish_raw(f"envpatrol/v1/{vehicle}/readings", payload)
            expected[reason] += 1
            if reason in PER_READING:
                expected["rejected_readings"] += 1
                sent.setdefault("rejected_readings", payload)
                reading = json.loads(payload)["readings"][0]
                sent.setdefault(reason, json.dumps(reading, sort_keys=True).encode())
            else:
                sent.setdefault(reason, payload)
            if i % 20 == 0:
                publisher.publish(*good[i // 20])
        wait_for(lambda: publisher.outstanding() == 0, 60, "every PUBACK")
        with psycopg.connect(database_url, autocommit=True) as conn:
            wait_for(
                lambda: (
                    conn.execute("SELECT count(*) FROM dead_letter").fetchone()
                    == (expected.total(),)
                ),
                60,
                "every dead letter",
            )
            readings = conn.execute("SELECT count(*) FROM reading").fetchone()
            by_reason: dict[str, int] = dict(
                conn.execute("SELECT reason, count(*) FROM dead_letter GROUP BY 1").fetchall()
            )
            samples: dict[str, bytes] = dict(
                conn.execute(
                    "SELECT DISTINCT ON (reason) reason, payload FROM dead_letter ORDER BY reason, id"
                ).fetchall()
            )
            details = conn.execute("SELECT count(*) FROM dead_letter WHERE detail = ''").fetchone()
    finally:
        publisher.close()
    assert readings == (len(good),)
    assert by_reason == dict(expected)
    # A rejected reading's payload is that reading's JSON; a message's is its raw bytes.
    assert {
        reason: (
            json.dumps(json.loads(payload), sort_keys=True).encode()
            if reason in PER_READING
            else bytes(payload)
        )
        for reason, payload in samples.items()
    } == sent
    assert details == (0,)
    assert service.dead_by_reason == dict(expected)

    body = (
        urllib.request.urlopen(
            f"http://127.0.0.1:{service.settings.metrics_port}/metrics", timeout=10
        )
        .read()
        .decode()
    )
    for reason, n in expected.items():
        assert f'envpatrol_ingest_dead_letters_total{{reason="{reason}"}} {float(n)}' in body
    assert f'envpatrol_ingest_readings_total{{outcome="stored"}} {float(len(good))}' in body
    for name in (
        "envpatrol_ingest_messages_total",
        "envpatrol_ingest_batches_total",
        "envpatrol_ingest_batch_seconds_bucket",
        "envpatrol_ingest_reading_lag_seconds_bucket",
        "envpatrol_ingest_broker_connected 1.0",
    ):
        assert name in body


def test_an_unreachable_broker_is_said_at_once(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    mqtt = MqttSettings.from_url(f"mqtt://127.0.0.1:{port}", topic_root="unreachable")
    service = IngestService(
        IngestSettings(database_url=database_url, mqtt=mqtt, client_id="ingest-unreachable")
    )
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,))
    with caplog.at_level("WARNING", logger="envpatrol.ingest"):
        thread.start()
        try:
            wait_until(
                lambda: any("cannot reach the broker" in r.getMessage() for r in caplog.records),
                10,
                "a warning that the broker is unreachable",
            )
        finally:
            stop.set()
            thread.join(30)
    said = next(r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage())
    assert f"127.0.0.1:{port}" in said
    assert not service.wait_connected(0)
