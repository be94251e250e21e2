"""How the ingest's parsing stage sorts messages into a batch (`IngestService.sort`): rows,
per-reading dead letters, rejected documents, and a message that makes decoding fail
unexpectedly, which is dead-lettered alone while the stage goes on. No broker, no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from edge.mqtt import MqttSettings
from edge.wire import Position, Reading, encode_message
from ingest.decode import decode_rows
from ingest.mqtt_client import Received
from ingest.service import IngestService
from ingest.settings import IngestSettings
from ingest.validate import REASONS


def service(**options: Any) -> IngestService:
    settings = IngestSettings(
        database_url="postgresql://unused",
        mqtt=MqttSettings(host="127.0.0.1", port=1),
        **options,
    )
    return IngestService(settings)


def readings_doc(vehicle: str, n: int) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    readings = [
        Reading(
            vehicle,
            seq,
            start + timedelta(seconds=seq),
            "gnss",
            Position(39.9, 116.4, True, 1, 9, 0.9, 5.0, 90.0, 0.5),
            {"pm25": 20.0},
            "default-multi",
        )
        for seq in range(n)
    ]
    doc: dict[str, Any] = json.loads(encode_message(vehicle, readings))
    return doc


def message(vehicle: str, kind: str, doc: Any, mid: int) -> Received:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return Received(1, f"envpatrol/v1/{vehicle}/{kind}", mid, 1, payload)


def test_a_batch_keeps_good_readings_and_dead_letters_each_bad_one() -> None:
    catch_up = readings_doc("car-1", 50)
    catch_up["readings"][7]["time"] = "0001-01-01T00:00:00+01:00"
    catch_up["readings"][40]["time"] = "2099-01-01T00:00:00Z"
    poisoned = json.dumps(catch_up).encode()
    messages = [
        message("car-1", "readings", poisoned, 1),
        message("car-2", "readings", readings_doc("car-2", 3), 2),
        message("car-3", "status", b'{"schema_version":1,"vehicle":"car-3","x":"\\u0000"}', 3),
        message("car-3", "health", {"schema_version": 1, "vehicle": "car-4"}, 4),
        message("car-3", "status", {"schema_version": 1, "vehicle": "car-3", "state": "online"}, 5),
        Received(1, "envpatrol/v1/car-1\n/readings", 6, 1, b"{}"),
    ]
    batch = service().sort(messages)
    assert len(batch.messages) == 6
    assert len(batch.rows) == 48 + 3
    assert [(s.vehicle, s.kind) for s in batch.statuses] == [("car-3", "status")]
    dead = [(d.topic.split("/")[2], d.reason) for d in batch.dead]
    assert dead == [
        ("car-1", "bad_time"),
        ("car-1", "time_out_of_range"),
        ("car-1", "rejected_readings"),
        ("car-3", "bad_text"),
        ("car-3", "vehicle_mismatch"),
        ("car-1\n", "bad_topic"),
    ]
    first, second, whole = batch.dead[:3]
    assert first.detail == "readings[7].time '0001-01-01T00:00:00+01:00' is beyond UTC's range"
    assert second.detail.startswith("readings[40] (seq 40): time 2099-01-01")
    assert json.loads(first.payload) == catch_up["readings"][7]
    assert json.loads(second.payload) == catch_up["readings"][40]
    assert whole.payload == poisoned
    assert whole.detail.startswith("2 of 50 readings rejected (readings[7, 40])")
    assert all("\x00" not in d.detail for d in batch.dead)


def test_an_unexpected_failure_dead_letters_that_message_and_the_stage_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def defective(*args: Any, **kwargs: Any) -> Any:
        if b'"car-1"' in args[2]:
            raise RecursionError("maximum recursion depth exceeded")
        return decode_rows(*args, **kwargs)

    monkeypatch.setattr("ingest.service.decode_rows", defective)
    batch = service().sort(
        [
            message("car-1", "readings", readings_doc("car-1", 2), 1),
            message("car-2", "readings", readings_doc("car-2", 2), 2),
        ]
    )
    assert len(batch.rows) == 2
    [dead] = batch.dead
    assert (dead.reason, dead.detail) == (
        "undecodable",
        "RecursionError: maximum recursion depth exceeded",
    )
    assert dead.reason in REASONS
    assert dead.payload == batch.messages[0].payload


def test_the_time_window_comes_from_the_settings() -> None:
    old = readings_doc("car-1", 2)
    old["readings"][0]["time"] = "2003-04-05T06:07:08Z"
    messages = [message("car-1", "readings", old, 1)]
    assert len(service().sort(messages).rows) == 2  # historical drives load by default
    later = service(min_time=datetime(2020, 1, 1, tzinfo=UTC))
    assert [d.reason for d in later.sort(messages).dead] == [
        "time_out_of_range",
        "rejected_readings",
    ]
    ahead = readings_doc("car-1", 1)
    ahead["readings"][0]["time"] = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    messages = [message("car-1", "readings", ahead, 1)]
    assert service().sort(messages).rows == []
    assert len(service(max_future_s=3600.0).sort(messages).rows) == 1


def test_a_failure_half_way_through_a_message_leaves_nothing_of_it_but_its_dead_letter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def defective(*_args: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr("ingest.service.reading_dead_letters", defective)
    doc = readings_doc("car-1", 3)
    doc["readings"][1]["time"] = "yesterday"  # rows are taken before its dead letters are made
    batch = service().sort([message("car-1", "readings", doc, 1)])
    assert batch.rows == []
    assert [(d.reason, d.detail) for d in batch.dead] == [("undecodable", "MemoryError: ")]
