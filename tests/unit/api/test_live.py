"""What broker messages become in the live feed (no broker here: the decoding only)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from api.live import LiveEvent, events_from
from edge.topics import TopicError, Topics
from edge.wire import Position, Reading, WireError, encode_message

TOPICS = Topics("envpatrol")
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def reading(seq: int, *, valid: bool = True, seconds: int = 0) -> Reading:
    return Reading(
        vehicle="patrol-01",
        seq=seq,
        time=T0 + timedelta(seconds=seconds),
        time_source="gnss",
        position=Position(39.893 + seq * 1e-4, 116.462, valid),
        values={"pm25": 40.0 + seq},
        profile="default-multi",
    )


def test_the_newest_fixed_reading_becomes_a_position() -> None:
    payload = encode_message(
        "patrol-01",
        [reading(1), reading(2, seconds=10), reading(3, valid=False, seconds=20)],
    )
    [event] = events_from(TOPICS, "envpatrol/v1/patrol-01/readings", payload)
    assert event.kind == "position"
    assert event.data["seq"] == 2
    assert event.data["lat"] == pytest.approx(39.8932)
    assert event.data["time"] == "2026-05-01T08:00:10.000Z"
    assert event.data["values"] == {"pm25": 42.0}
    wire = event.encode()
    assert wire.startswith(b"event: position\ndata: {")
    assert wire.endswith(b"}\n\n")
    assert wire.count(b"\n") == 3


def test_readings_without_a_fix_give_nothing() -> None:
    payload = encode_message("patrol-01", [reading(1, valid=False)])
    assert events_from(TOPICS, "envpatrol/v1/patrol-01/readings", payload) == []


def test_status_messages_become_status_events() -> None:
    payload = json.dumps({"state": "offline", "time": "2026-05-01T08:00:00Z"}).encode()
    assert events_from(TOPICS, "envpatrol/v1/patrol-01/status", payload) == [
        LiveEvent(
            "status", {"vehicle": "patrol-01", "state": "offline", "time": "2026-05-01T08:00:00Z"}
        )
    ]


def test_health_messages_are_not_part_of_the_feed() -> None:
    assert events_from(TOPICS, "envpatrol/v1/patrol-01/health", b"{}") == []


@pytest.mark.parametrize(
    ("topic", "payload", "error"),
    [
        ("envpatrol/v1/patrol-01/readings", b"not json", WireError),
        ("envpatrol/v1/patrol-01/status", b"[]", ValueError),
        ("envpatrol/v1/patrol-01/status", b"{]", ValueError),
        ("other/v1/patrol-01/status", b"{}", TopicError),
        ("envpatrol/v1/patrol-02/readings", encode_message("patrol-01", [reading(1)]), ValueError),
    ],
)
def test_bad_messages_raise_so_the_feed_can_skip_and_count_them(
    topic: str, payload: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        events_from(TOPICS, topic, payload)
