"""Every reason the ingest rejects a message for, one example each, and properties of the check."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.topics import Topics
from edge.wire import Position, Reading, encode_message
from ingest.validate import (
    REASONS,
    Limits,
    Rejection,
    check_document,
    check_readings_message,
)

TOPICS = Topics("envpatrol")
TOPIC = "envpatrol/v1/car-1/readings"
NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
DEFAULT = Limits()


def good_doc(n: int = 2) -> dict[str, Any]:
    readings = [
        Reading(
            "car-1",
            seq,
            NOW - timedelta(seconds=10 * (n - seq)),
            "gnss",
            Position(39.9, 116.4, True, 1, 9, 0.9, 5.0, 90.0, 0.5),
            {"pm25": 12.5, "noise": 61.0, "co2": None},
            "default-multi",
        )
        for seq in range(n)
    ]
    doc: dict[str, Any] = json.loads(encode_message("car-1", readings))
    return doc


def check(doc: Any, topic: str = TOPIC, limits: Limits = DEFAULT) -> list[Reading] | Rejection:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return check_readings_message(TOPICS, topic, payload, orjson.loads, NOW, limits)


def reason_of(doc: Any, topic: str = TOPIC, limits: Limits = DEFAULT) -> str:
    result = check(doc, topic, limits)
    assert isinstance(result, Rejection), result
    assert result.detail
    return result.reason


def with_reading(**changes: Any) -> dict[str, Any]:
    doc = good_doc()
    doc["readings"][1].update(changes)
    return doc


def test_a_good_message_is_accepted() -> None:
    result = check(good_doc())
    assert isinstance(result, list)
    assert [r.seq for r in result] == [0, 1]


# One example per reason; the table must cover REASONS exactly.
EXAMPLES: dict[str, tuple[Any, str]] = {
    "too_large": (b"{" + b" " * 300_000 + b"}", TOPIC),
    "bad_topic": (good_doc(), "envpatrol/v2/car-1/readings"),
    "malformed_json": (b'{"schema_version": 1,', TOPIC),
    "not_an_object": ([1, 2, 3], TOPIC),
    "schema_version": ({**good_doc(), "schema_version": 2}, TOPIC),
    "missing_field": ({k: v for k, v in good_doc().items() if k != "readings"}, TOPIC),
    "bad_vehicle": ({**good_doc(), "vehicle": "car/1"}, TOPIC),
    "too_many_readings": ({**good_doc(), "readings": good_doc()["readings"] * 300}, TOPIC),
    "bad_type": (with_reading(seq="7"), TOPIC),
    "unknown_channel": (with_reading(values={"plutonium": 1.0}, units={"plutonium": "Bq"}), TOPIC),
    "bad_unit": (with_reading(values={"pm25": 1.0}, units={"pm25": "mg/m3"}), TOPIC),
    "unknown_flag": (with_reading(flags=["sleepy"]), TOPIC),
    "bad_time": (with_reading(time="yesterday"), TOPIC),
    "bad_position": (with_reading(position={"lat": 95.0, "lon": 0.0, "valid": True}), TOPIC),
    "vehicle_mismatch": (good_doc(), "envpatrol/v1/car-2/readings"),
    "out_of_range": (with_reading(values={"pm25": 99_999.0}, units={"pm25": "ug/m3"}), TOPIC),
    "time_out_of_range": (with_reading(time="2031-01-01T00:00:00Z"), TOPIC),
}


def test_the_examples_cover_every_reason() -> None:
    assert set(EXAMPLES) == set(REASONS)


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_each_reason(reason: str) -> None:
    doc, topic = EXAMPLES[reason]
    assert reason_of(doc, topic) == reason


def test_non_utf8_bytes_are_malformed_json() -> None:
    assert reason_of(b"\xff\xfe{}") == "malformed_json"


def test_times_from_before_the_earliest_accepted_are_out_of_range() -> None:
    assert reason_of(with_reading(time="1970-01-01T00:00:10Z")) == "time_out_of_range"


def test_a_flagged_out_of_range_value_is_accepted() -> None:
    doc = with_reading(
        values={"pm25": 99_999.0}, units={"pm25": "ug/m3"}, channel_flags={"pm25": ["out_of_range"]}
    )
    result = check(doc)
    assert isinstance(result, list)
    assert result[1].values["pm25"] == 99_999.0


def test_the_size_limit_is_a_setting() -> None:
    assert reason_of(good_doc(), limits=Limits(max_payload_bytes=100)) == "too_large"


def test_unknown_reasons_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="unknown rejection reason"):
        Rejection("because", "no")


def test_status_documents() -> None:
    assert check_document(b"", orjson.loads) is None  # a retained message being cleared
    assert check_document(b'{"state": "online"}', orjson.loads) == {"state": "online"}
    for payload, reason in ((b"nope", "malformed_json"), (b"[1]", "not_an_object")):
        result = check_document(payload, orjson.loads)
        assert isinstance(result, Rejection)
        assert result.reason == reason
    big = check_document(b"{}", orjson.loads, Limits(max_payload_bytes=1))
    assert isinstance(big, Rejection)
    assert big.reason == "too_large"


@given(st.binary(max_size=2_000))
def test_any_bytes_are_accepted_or_rejected_with_a_known_reason(payload: bytes) -> None:
    result = check_readings_message(TOPICS, TOPIC, payload, orjson.loads, NOW)
    assert isinstance(result, list) or result.reason in REASONS


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(st.sampled_from(["schema_version", "vehicle", "readings"]), json_values)
def test_any_damaged_field_is_rejected_with_a_known_reason(key: str, value: Any) -> None:
    doc = good_doc()
    doc[key] = value
    result = check(doc)
    assert isinstance(result, list) or result.reason in REASONS


@given(
    st.sampled_from(
        ["seq", "time", "time_source", "position", "values", "units", "flags", "profile"]
    ),
    json_values,
)
def test_any_damaged_reading_is_rejected_with_a_known_reason(key: str, value: Any) -> None:
    result = check(with_reading(**{key: value}))
    assert isinstance(result, list) or result.reason in REASONS
