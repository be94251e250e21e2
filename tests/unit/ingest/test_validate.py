"""Every reason the ingest rejects a message or a reading for, one example each, and properties
of the checks: whatever the bytes, they decide and never raise."""

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
    Accepted,
    Limits,
    Rejection,
    check_document,
    check_readings_message,
    printable,
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


def check(doc: Any, topic: str = TOPIC, limits: Limits = DEFAULT) -> Accepted[Reading] | Rejection:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return check_readings_message(TOPICS, topic, payload, orjson.loads, NOW, limits)


def reason_of(doc: Any, topic: str = TOPIC, limits: Limits = DEFAULT) -> str:
    """Why the message is rejected, or why its one bad reading is (the other one is kept)."""
    result = check(doc, topic, limits)
    if isinstance(result, Accepted):
        assert [r.seq for r in result.readings] == [0], result
        [refused] = result.rejected
        assert refused.index == 1
        assert json.loads(refused.reading)["time_source"] == "gnss"  # the reading itself
        rejection = refused.rejection
    else:
        rejection = result
    assert rejection.detail
    return rejection.reason


def with_reading(**changes: Any) -> dict[str, Any]:
    doc = good_doc()
    doc["readings"][1].update(changes)
    return doc


def test_a_good_message_is_accepted() -> None:
    result = check(good_doc())
    assert isinstance(result, Accepted)
    assert [r.seq for r in result.readings] == [0, 1]
    assert result.rejected == []


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
    "duplicate_key": (
        json.dumps(good_doc()).replace('"seq": 1,', '"seq": 1, "seq": 2,').encode(),
        TOPIC,
    ),
}
# Status and health documents
DOCUMENT_EXAMPLES: dict[str, bytes] = {
    "bad_text": b'{"schema_version":1,"vehicle":"car-1","note":"a\\u0000b"}',
    "bad_type": b'{"schema_version":1,"vehicle":["car-1"]}',
    "vehicle_mismatch": b'{"schema_version":1,"vehicle":"car-2"}',
    "schema_version": b'{"schema_version":true,"vehicle":"car-1"}',
    "duplicate_key": b'{"schema_version":1,"vehicle":"car-1","vehicle":"car-1"}',
    "malformed_json": b"nope",
    "not_an_object": b"[1]",
}


def test_the_examples_cover_every_reason() -> None:
    # the other two are made by the ingest around these checks (ingest.decode, ingest.service)
    covered = set(EXAMPLES) | set(DOCUMENT_EXAMPLES) | {"rejected_readings", "undecodable"}
    assert covered == set(REASONS)


@pytest.mark.parametrize("reason", sorted(EXAMPLES))
def test_each_reason(reason: str) -> None:
    doc, topic = EXAMPLES[reason]
    assert reason_of(doc, topic) == reason


def test_non_utf8_bytes_are_malformed_json() -> None:
    assert reason_of(b"\xff\xfe{}") == "malformed_json"


def test_times_from_before_the_earliest_accepted_are_out_of_range() -> None:
    assert reason_of(with_reading(time="1970-01-01T00:00:10Z")) == "time_out_of_range"


def test_historical_drives_are_accepted_by_default_and_the_window_is_a_setting() -> None:
    doc = with_reading(time="2004-05-06T07:08:09Z")
    result = check(doc)
    assert isinstance(result, Accepted)
    assert len(result.readings) == 2
    later = Limits(earliest=datetime(2020, 1, 1, tzinfo=UTC))
    assert reason_of(doc, limits=later) == "time_out_of_range"
    soon = Limits(max_future=timedelta(0))
    assert reason_of(with_reading(time="2025-03-03T12:00:01Z"), limits=soon) == (
        "time_out_of_range"
    )


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59.999999-23:59",
    ],
)
def test_times_beyond_utc_are_a_reading_rejection_not_an_exception(moment: str) -> None:
    assert reason_of(with_reading(time=moment)) == "bad_time"


@pytest.mark.parametrize(
    "version", [b"true", b"1.0", b'"1"', b"1e0", b"[1]", b"2", b"-1", b"18446744073709551617"]
)
def test_schema_version_is_the_integer_one(version: bytes) -> None:
    payload = (
        json.dumps(good_doc())
        .encode()
        .replace(b'"schema_version": 1', b'"schema_version": ' + version)
    )
    assert reason_of(payload) == "schema_version"


@pytest.mark.parametrize("vehicle", ["car-1\n", "car-1\r", "car-1\u0000", "car 1", "车-1", ""])
def test_a_vehicle_id_is_anchored_at_both_ends(vehicle: str) -> None:
    assert reason_of({**good_doc(), "vehicle": vehicle}) == "bad_vehicle"


def test_a_profile_with_a_control_character_is_refused() -> None:
    for profile in ("a\u0000b", "a\nb", "\u007f"):
        assert reason_of(with_reading(profile=profile)) == "bad_type"


def test_one_bad_reading_of_fifty_costs_only_itself() -> None:
    doc = good_doc(50)
    doc["readings"][17]["time"] = "2099-01-01T00:00:00Z"  # an implausible GNSS date
    result = check(doc)
    assert isinstance(result, Accepted)
    assert len(result.readings) == 49
    [refused] = result.rejected
    assert (refused.index, refused.rejection.reason) == (17, "time_out_of_range")
    assert refused.rejection.detail.startswith("readings[17] (seq 17): ")
    assert json.loads(refused.reading) == doc["readings"][17]


def test_every_reading_rejected_still_keeps_the_message_accepted_with_none_stored() -> None:
    doc = good_doc(3)
    for reading in doc["readings"]:
        reading["values"] = {"plutonium": 1.0}
    result = check(doc)
    assert isinstance(result, Accepted)
    assert result.readings == []
    assert [r.index for r in result.rejected] == [0, 1, 2]


def test_details_are_printable_and_short() -> None:
    rejection = Rejection("bad_type", "readings[0].values.a\x00b" + "x" * 10_000)
    assert "\x00" not in rejection.detail
    assert "\\x00" in rejection.detail
    assert len(rejection.detail) <= 600
    assert printable("\ud800") == "\\ud800"


def test_a_flagged_out_of_range_value_is_accepted() -> None:
    doc = with_reading(
        values={"pm25": 99_999.0}, units={"pm25": "ug/m3"}, channel_flags={"pm25": ["out_of_range"]}
    )
    result = check(doc)
    assert isinstance(result, Accepted)
    assert result.readings[1].values["pm25"] == 99_999.0


def test_the_size_limit_is_a_setting() -> None:
    assert reason_of(good_doc(), limits=Limits(max_payload_bytes=100)) == "too_large"


def test_unknown_reasons_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="unknown rejection reason"):
        Rejection("because", "no")


def test_status_documents() -> None:
    assert check_document(b"", orjson.loads, "car-1") is None  # a retained message being cleared
    online = b'{"schema_version": 1, "vehicle": "car-1", "state": "online"}'
    assert check_document(online, orjson.loads, "car-1") == json.loads(online)
    # what it does not name, its topic says
    assert check_document(b'{"state": "online"}', orjson.loads, "car-1") == {"state": "online"}
    big = check_document(online, orjson.loads, "car-1", Limits(max_payload_bytes=1))
    assert isinstance(big, Rejection)
    assert big.reason == "too_large"


@pytest.mark.parametrize("reason", sorted(DOCUMENT_EXAMPLES))
def test_each_document_reason(reason: str) -> None:
    result = check_document(DOCUMENT_EXAMPLES[reason], orjson.loads, "car-1")
    assert isinstance(result, Rejection), result
    assert result.reason == reason
    assert "\x00" not in result.detail


def test_a_nul_anywhere_in_a_document_is_refused() -> None:
    for fragment in (b'"a\\u0000": 1', b'"x": ["\\u0000"]', b'"x": {"y": {"z": "\\u0000"}}'):
        payload = b'{"schema_version": 1, "vehicle": "car-1", ' + fragment + b"}"
        result = check_document(payload, orjson.loads, "car-1")
        assert isinstance(result, Rejection)
        assert result.reason == "bad_text"
    # An unpaired surrogate, from a parser that lets it through (orjson refuses it outright).
    payload = b'{"schema_version": 1, "vehicle": "car-1", "x": "\\ud800"}'
    result = check_document(payload, json.loads, "car-1")
    assert isinstance(result, Rejection)
    assert result.reason == "bad_text"


@given(st.binary(max_size=2_000))
def test_any_bytes_are_accepted_or_rejected_with_a_known_reason(payload: bytes) -> None:
    result = check_readings_message(TOPICS, TOPIC, payload, orjson.loads, NOW)
    assert isinstance(result, Accepted) or result.reason in REASONS
    document = check_document(payload, orjson.loads, "car-1")
    assert document is None or isinstance(document, dict) or document.reason in REASONS


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
    assert isinstance(result, Accepted) or result.reason in REASONS


@given(
    st.sampled_from(
        ["seq", "time", "time_source", "position", "values", "units", "flags", "profile"]
    ),
    json_values,
)
def test_any_damaged_reading_is_rejected_with_a_known_reason(key: str, value: Any) -> None:
    result = check(with_reading(**{key: value}))
    if isinstance(result, Accepted):
        assert len(result.readings) + len(result.rejected) == 2
        assert all(r.rejection.reason in REASONS for r in result.rejected)
    else:
        assert result.reason in REASONS
