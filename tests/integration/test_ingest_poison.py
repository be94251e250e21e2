"""Poison messages: what the database refuses never stalls the ingest. A batch holding one is
split by message until the refused ones are found; they become dead letters (raw bytes, the
database's error as detail), the rest is committed, and every message is acknowledged.

First on the write path alone (the real PostgreSQL, batches made by hand, so the database and not
the decoder is what refuses), then through a private Mosquitto and the running ingest.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest

from edge.mqtt import MqttSettings
from edge.wire import Reading, encode_message
from ingest.mqtt_client import Received
from ingest.service import Batch, IngestService
from ingest.settings import IngestSettings
from ingest.writer import REFUSED, DeadLetter, StatusUpdate, row_of
from tests.integration.ingest_fixtures import (
    PrivateBroker,
    Publisher,
    needs_mosquitto,
    private_broker,
    reading,
    recent_start,
    wait_for,
)

pytestmark = pytest.mark.integration
__all__ = ["private_broker"]  # a fixture used by name below

NUL = "\x00"


@pytest.fixture
def service(database_url: str) -> Iterator[IngestService]:
    """An ingest that is never connected to a broker: its write path only."""
    settings = IngestSettings(database_url=database_url, mqtt=MqttSettings.from_url("mqtt://x"))
    ingest = IngestService(settings)
    try:
        yield ingest
    finally:
        ingest._drop_writer()


class BatchMaker:
    """Messages taken into a batch the way the parsing stage does it (`Batch.begin`)."""

    def __init__(self) -> None:
        self.batch = Batch()
        self.mid = 0

    def message(self, topic: str, payload: bytes) -> None:
        self.mid += 1
        # connection -1: not the client's (it never connected), so nothing is acknowledged
        self.batch.begin(Received(-1, topic, self.mid, 1, payload))

    def readings(self, readings: list[Reading]) -> None:
        vehicle = readings[0].vehicle
        self.message(f"envpatrol/v1/{vehicle}/readings", encode_message(vehicle, readings))
        self.batch.rows.extend(row_of(r, self.batch.resolution) for r in readings)

    def status(self, vehicle: str, kind: str, document: dict[str, object]) -> None:
        self.message(f"envpatrol/v1/{vehicle}/{kind}", orjson.dumps(document))
        self.batch.statuses.append(StatusUpdate(vehicle, kind, document))

    def rejected(self, topic: str, payload: bytes, reason: str, detail: str) -> None:
        self.message(topic, payload)
        self.batch.dead.append(DeadLetter(topic, reason, detail, payload, datetime.now(UTC)))


def good(vehicle: str, seqs: range, start: datetime) -> list[Reading]:
    return [reading(vehicle, s, start + timedelta(seconds=10 * s)) for s in seqs]


def poisoned(vehicle: str, start: datetime, **changes: Any) -> list[Reading]:
    base = reading(vehicle, 0, start)
    fields = {
        "vehicle": base.vehicle,
        "seq": base.seq,
        "time": base.time,
        "time_source": base.time_source,
        "position": base.position,
        "values": base.values,
        "profile": base.profile,
        **changes,
    }
    return [Reading(**fields)]


def test_messages_the_database_refuses_become_dead_letters_and_the_rest_is_committed(
    service: IngestService, database_url: str
) -> None:
    start = recent_start()
    make = BatchMaker()
    poison: dict[str, bytes] = {}
    for v in range(40):
        name = f"car-{v:02d}"
        make.readings(good(name, range(3), start))
        if v == 5:
            make.readings(poisoned("bad-profile", start, profile=f"default{NUL}multi"))
            poison["profile"] = make.batch.messages[-1].payload
        if v == 12:
            make.readings(poisoned("bad-flags", start, channel_flags={f"pm25{NUL}": ("spike",)}))
            poison["channel_flags"] = make.batch.messages[-1].payload
        if v == 20:
            make.status("bad-status", "status", {"state": f"on{NUL}line"})
            poison["status state"] = make.batch.messages[-1].payload
        if v == 21:
            make.status("bad-status-2", "status", {"state": "online", "box": {f"k{NUL}": NUL}})
            poison["status document"] = make.batch.messages[-1].payload
        if v == 30:
            make.status("bad-health", "health", {"errors": [f"crc{NUL}"]})
            poison["health"] = make.batch.messages[-1].payload
        if v == 33:
            # Rejected by the decoder for a value name holding a NUL, which its detail repeats.
            make.rejected(
                f"envpatrol/v1/{name}/readings",
                b'{"values": {"pm\\u000025": 1}}\x00\xff',
                "unknown_channel",
                f"readings[0].values: unknown channel 'pm{NUL}25'",
            )
        make.status(name, "health", {"box": "ok"})

    service._process(make.batch, threading.Event())

    assert service.counters.db_errors == 0  # refusals are not retried
    assert service.counters.messages == len(make.batch.messages)
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT vehicle, count(*) FROM reading GROUP BY 1").fetchall()
        assert dict(stored) == {f"car-{v:02d}": 3 for v in range(40)}
        healthy = conn.execute("SELECT count(*) FROM vehicle WHERE health IS NOT NULL").fetchone()
        assert healthy == (40,)
        letters = conn.execute("SELECT reason, detail, payload FROM dead_letter").fetchall()
    refused = {bytes(p): d for r, d, p in letters if r == REFUSED}
    assert set(refused) == set(poison.values())
    for detail in refused.values():
        assert NUL not in detail
        # What refused it: the database (SQLSTATE class 22, data exception), or psycopg before
        # sending (a NUL in a text parameter).
        assert detail.startswith(("22", "DataError: ")), detail
    (channel,) = [(d, bytes(p)) for r, d, p in letters if r == "unknown_channel"]
    assert channel == (
        "readings[0].values: unknown channel 'pm\\u000025'",
        b'{"values": {"pm\\u000025": 1}}\x00\xff',
    )


def test_a_refused_message_alone_in_its_batch(service: IngestService, database_url: str) -> None:
    make = BatchMaker()
    make.status("lonely", "health", {NUL: NUL})
    service._process(make.batch, threading.Event())
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT reason FROM dead_letter").fetchall() == [(REFUSED,)]
        assert conn.execute("SELECT count(*) FROM vehicle").fetchone() == (0,)


def document(vehicle: str, kind: str, **fields: object) -> tuple[str, bytes]:
    """A status or health message of `vehicle`."""
    doc = {"schema_version": 1, "vehicle": vehicle, **fields}
    return f"envpatrol/v1/{vehicle}/{kind}", orjson.dumps(doc)


def wait_until_stored(publisher: Publisher, database_url: str) -> None:
    """Publishes a status probe until the ingest has stored one: from then on its session holds
    a subscription, and the broker keeps every message for it."""

    def probed() -> bool:
        publisher.publish_raw(*document("probe", "status", state="online"))
        with psycopg.connect(database_url) as conn:
            return (
                conn.execute("SELECT 1 FROM vehicle WHERE vehicle = 'probe'").fetchone() is not None
            )

    wait_for(probed, 30, "the ingest to store a status probe")


@needs_mosquitto
def test_poison_among_other_vehicles_readings_through_the_broker(
    private_broker: PrivateBroker, database_url: str
) -> None:
    """One poison message of each kind, each among good messages of other vehicles: the ingest
    stays up, the good readings are stored within seconds, the poison is dead-lettered once and
    not delivered again."""
    settings = IngestSettings(
        database_url=database_url,
        mqtt=MqttSettings.from_url(private_broker.url),
        client_id="ingest-poison-test",
        batch_max_wait_s=0.2,
    )
    service = IngestService(settings)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), name="ingest")
    thread.start()
    publisher = Publisher(private_broker.url, "fleet-poison-test")
    start = recent_start()

    def readings_message(vehicle: str, **changes: object) -> tuple[str, bytes]:
        doc = orjson.loads(encode_message(vehicle, [reading(vehicle, 0, start)]))
        doc["readings"][0].update(changes)
        return f"envpatrol/v1/{vehicle}/readings", orjson.dumps(doc)

    poison = [
        readings_message("p-profile", profile=f"multi{NUL}"),
        readings_message("p-value", values={f"pm{NUL}25": 1.0}, units={f"pm{NUL}25": "ug/m3"}),
        readings_message("p-flags", channel_flags={f"pm25{NUL}": ["spike"]}),
        document("p-status", "status", state=f"online{NUL}"),
        document("p-status2", "status", state="online", **{f"x{NUL}": [NUL]}),
        document("p-health", "health", box={"errors": f"crc{NUL}"}),
    ]
    try:
        wait_for(service._connected.is_set, 10, "the ingest to connect")
        wait_until_stored(publisher, database_url)
        rounds = 0
        for topic, payload in poison:
            for v in range(5):
                rounds += 1
                vehicle = f"car-{v}"
                publisher.publish(vehicle, good(vehicle, range(rounds, rounds + 1), start))
            publisher.publish_raw(topic, payload)
        wait_for(lambda: publisher.outstanding() == 0, 10, "every PUBACK")

        def settled() -> bool:
            with psycopg.connect(database_url) as conn:
                row = conn.execute(
                    "SELECT (SELECT count(*) FROM reading),"
                    " (SELECT count(*) FROM dead_letter WHERE payload = ANY(%s))",
                    ([p for _, p in poison],),
                ).fetchone()
            return row == (rounds, len(poison))

        wait_for(settled, 10, "the good readings stored and the poison dead-lettered")
        # Acknowledged: the broker does not deliver the poison again (its session reconnected
        # would have it otherwise); the ingest keeps taking new readings.
        publisher.publish("car-late", good("car-late", range(1), start))
        wait_for(lambda: service.counters.readings_inserted >= rounds + 1, 10, "a later reading")
        assert thread.is_alive()
        assert service.counters.db_errors == 0
        with psycopg.connect(database_url) as conn:
            dead = conn.execute(
                "SELECT payload, count(*) FROM dead_letter GROUP BY 1 HAVING count(*) > 1"
            ).fetchall()
        assert dead == []  # each poison message dead-lettered once: not redelivered
    finally:
        publisher.close()
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
