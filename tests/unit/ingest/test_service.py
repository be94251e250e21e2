"""How the ingest's parsing stage closes batches (`IngestService.next_batch`), fed straight from
its inbox: no broker, no database (the client is built, never connected)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from edge.mqtt import MqttSettings
from edge.wire import Position, Reading, encode_message
from ingest.mqtt_client import Received
from ingest.service import EARLY_READINGS, IngestService
from ingest.settings import IngestSettings

PER_MESSAGE = 50


def service(**options: float) -> IngestService:
    settings = IngestSettings(
        database_url="postgresql://unused",
        mqtt=MqttSettings(host="127.0.0.1", port=1),
        batch_max_readings=50_000,
        **options,  # type: ignore[arg-type]
    )
    return IngestService(settings)


def backlog(messages: int) -> list[Received]:
    """`messages` catch-up messages of PER_MESSAGE readings each, a reading a second, within
    the last day."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    out = []
    for m in range(messages):
        vehicle = f"car-{m % 7}"
        readings = [
            Reading(
                vehicle=vehicle,
                seq=m * PER_MESSAGE + k,
                time=start + timedelta(seconds=m * PER_MESSAGE + k),
                time_source="gnss",
                position=Position(39.9, 116.4, True, 1, 9, 0.9, 5.0, 90.0, 0.5),
                values={"pm25": 20.0},
                profile="default-multi",
            )
            for k in range(PER_MESSAGE)
        ]
        payload = encode_message(vehicle, readings)
        out.append(Received(1, f"envpatrol/v1/{vehicle}/readings", m + 1, 1, payload))
    return out


def test_a_flood_fills_batches_to_their_bound_while_the_writer_is_busy() -> None:
    ingest = service()
    ingest._inbox.put_many(backlog(1_200))
    batch = ingest.next_batch(threading.Event())
    assert batch is not None
    assert len(batch.rows) == 50_000
    assert len(batch.messages) == 1_000
    assert not batch.dead
    rest = ingest.next_batch(threading.Event())
    assert rest is not None
    assert len(rest.rows) == 200 * PER_MESSAGE


def test_while_the_writer_is_idle_a_flood_closes_a_batch_early() -> None:
    ingest = service()
    received = backlog(1_200)
    ingest._inbox.put_many(received)
    ingest._writer_idle.set()
    first = ingest.next_batch(threading.Event())
    assert first is not None
    assert len(first.rows) == EARLY_READINGS
    assert [m.mid for m in first.messages] == [m.mid for m in received[: len(first.messages)]]
    ingest._writer_idle.clear()  # the writer took it: the next batch grows to the bound
    second = ingest.next_batch(threading.Event())
    assert second is not None
    assert len(second.rows) == 50_000
    assert second.messages[0].mid == first.messages[-1].mid + 1


def test_live_traffic_closes_by_time_as_before() -> None:
    """A few messages and an idle writer: the batch still waits batch_max_wait_s for more."""
    ingest = service(batch_max_wait_s=0.05)
    ingest._inbox.put_many(backlog(3))
    ingest._writer_idle.set()
    batch = ingest.next_batch(threading.Event())
    assert batch is not None
    assert len(batch.messages) == 3
