"""The v1 payload: round trips, and every rejection reason the ingest relies on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.outbox import Entry
from edge.publisher import batch_payload
from edge.topics import TopicError, Topics
from edge.units import CHANNELS
from edge.wire import Position, Reading, WireError, decode_message, encode_message, reading_to_dict

values = st.dictionaries(
    st.sampled_from(sorted(CHANNELS)),
    st.one_of(st.none(), st.floats(-1000, 10000, allow_nan=False).map(lambda v: round(v, 4))),
)
positions = st.one_of(
    st.none(),
    st.builds(
        Position,
        lat=st.floats(-90, 90).map(lambda v: round(v, 7)),
        lon=st.floats(-180, 180).map(lambda v: round(v, 7)),
        valid=st.booleans(),
        quality=st.one_of(st.none(), st.integers(0, 8)),
        satellites=st.one_of(st.none(), st.integers(0, 40)),
        hdop=st.one_of(st.none(), st.floats(0, 50)),
        speed_mps=st.one_of(st.none(), st.floats(0, 60).map(lambda v: round(v, 2))),
        course_deg=st.one_of(st.none(), st.floats(0, 359).map(lambda v: round(v, 1))),
        age_s=st.one_of(st.none(), st.floats(0, 100).map(lambda v: round(v, 2))),
    ),
)
readings = st.builds(
    Reading,
    vehicle=st.just("patrol-01"),
    seq=st.integers(0, 2**62),
    time=st.datetimes(min_value=datetime(2020, 1, 1), timezones=st.just(UTC)).map(
        lambda m: m.replace(microsecond=m.microsecond // 1000 * 1000)
    ),
    time_source=st.sampled_from(["gnss", "host"]),
    position=positions,
    values=values,
    profile=st.just("default-multi"),
    flags=st.lists(st.sampled_from(["no_fix", "stale_fix", "host_time"]), unique=True).map(tuple),
    channel_flags=st.just({}),
)


@given(st.lists(readings, min_size=1, max_size=5))
def test_round_trip(items: list[Reading]) -> None:
    vehicle, decoded = decode_message(encode_message("patrol-01", items))
    assert vehicle == "patrol-01"
    assert decoded == items


@given(st.lists(readings, min_size=1, max_size=5))
def test_batch_from_stored_objects_equals_encoded_message(items: list[Reading]) -> None:
    entries = [Entry(r.seq, json.dumps(reading_to_dict(r)).encode()) for r in items]
    assert decode_message(batch_payload("patrol-01", entries))[1] == items


def _doc(**changes: Any) -> bytes:
    reading = Reading(
        "patrol-01", 1, datetime(2026, 11, 21, tzinfo=UTC), "gnss", None, {"pm25": 3.0}, "p"
    )
    doc = json.loads(encode_message("patrol-01", [reading]))
    for key, value in changes.items():
        if key.startswith("r_"):
            doc["readings"][0][key[2:]] = value
        else:
            doc[key] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"[1,2]", "not_an_object"),
        (_doc(schema_version=2), "schema_version"),
        (_doc(vehicle="a/b"), "bad_vehicle"),
        (_doc(readings=[]), "missing_field"),
        (_doc(r_seq=-1), "bad_type"),
        (_doc(r_time="yesterday"), "bad_time"),
        (_doc(r_time="2026-11-21T00:00:00"), "bad_time"),
        (_doc(r_values={"radon": 1}), "unknown_channel"),
        (_doc(r_units={"pm25": "mg/m3"}), "bad_unit"),
        (_doc(r_values={"pm25": "high"}), "bad_type"),
        (_doc(r_position={"lat": 91, "lon": 0, "valid": True}), "bad_position"),
        (_doc(r_flags=["haunted"]), "unknown_flag"),
        (_doc(r_channel_flags={"pm25": ["haunted"]}), "unknown_flag"),
        (_doc(r_channel_flags={"pm25": [{"spike": 1}]}), "unknown_flag"),  # unhashable
        (_doc(r_channel_flags={"pm25": [["spike"]]}), "unknown_flag"),
        (_doc(r_channel_flags={"pm25": "spike"}), "bad_type"),
        # the ends of the datetime range, with an offset: beyond UTC's range
        (_doc(r_time="0001-01-01T00:00:00+01:00"), "bad_time"),
        (_doc(r_time="9999-12-31T23:59:59-01:00"), "bad_time"),
        # a strict contract
        (_doc(schema_version=True), "schema_version"),
        (_doc(schema_version=1.0), "schema_version"),
        (_doc(schema_version="1"), "schema_version"),
        (_doc(vehicle="patrol-01\n"), "bad_vehicle"),
        (_doc(r_profile="default\u0000multi"), "bad_type"),
        (_doc(r_profile="default\nmulti"), "bad_type"),
        (_doc().replace(b'"seq": 1', b'"seq": 1, "seq": 2'), "duplicate_key"),
        (_doc().replace(b'"vehicle"', b'"vehicle": "x", "vehicle"'), "duplicate_key"),
        (_doc().replace(b'"pm25": 3.0', b'"pm25": 3.0, "pm25": 4.0'), "duplicate_key"),
        # an escaped ':' in a string, which the quick count of keys cannot tell from a key
        (_doc(r_profile="a\u003ab").replace(b'"seq": 1', b'"seq": 1, "seq": 2'), "duplicate_key"),
        # numbers no float holds, from a parser that keeps integers whole
        (_doc(r_values={"pm25": 10**400}), "bad_type"),
        (_doc(r_position={"lat": 1, "lon": 2, "valid": True, "hdop": 10**400}), "bad_type"),
        (_doc(r_values={"pm25": float("nan")}), "bad_type"),
        # nesting deeper than the standard parser goes
        (b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "malformed_json"),
    ],
)
def test_rejections_carry_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(WireError) as info:
        decode_message(payload)
    assert info.value.subject == reason


def test_an_escaped_colon_is_not_taken_for_a_duplicate_key() -> None:
    payload = _doc(r_profile="a:b\u003ac").replace(b"a:b:c", b"a:b\\u003ac")
    assert b"\\u003a" in payload
    assert decode_message(payload)[1][0].profile == "a:b:c"


@given(st.text(max_size=200))
def test_any_text_is_decoded_or_refused_with_a_reason(text: str) -> None:
    try:
        decode_message(text.encode("utf-8", "surrogatepass"))
    except WireError as exc:
        reason = exc.subject
    else:
        reason = "accepted"
    assert reason


def test_topics() -> None:
    topics = Topics("envpatrol")
    assert topics.of("patrol-01", "readings") == "envpatrol/v1/patrol-01/readings"
    assert topics.parse("envpatrol/v1/patrol-01/status") == ("patrol-01", "status")
    assert topics.all_of("readings") == "envpatrol/v1/+/readings"
    with pytest.raises(TopicError):
        topics.of("patrol/+", "readings")
    with pytest.raises(TopicError):
        topics.parse("envpatrol/v2/patrol-01/readings")
    for vehicle in ("patrol-01\n", "patrol-01\r\n", "\npatrol-01"):
        with pytest.raises(TopicError):
            topics.of(vehicle, "readings")
        with pytest.raises(TopicError):
            topics.parse(f"envpatrol/v1/{vehicle}/readings")
    with pytest.raises(TopicError):
        Topics("envpatrol\n")
