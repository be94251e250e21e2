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
    ],
)
def test_rejections_carry_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(WireError) as info:
        decode_message(payload)
    assert info.value.subject == reason


def test_topics() -> None:
    topics = Topics("envpatrol")
    assert topics.of("patrol-01", "readings") == "envpatrol/v1/patrol-01/readings"
    assert topics.parse("envpatrol/v1/patrol-01/status") == ("patrol-01", "status")
    assert topics.all_of("readings") == "envpatrol/v1/+/readings"
    with pytest.raises(TopicError):
        topics.of("patrol/+", "readings")
    with pytest.raises(TopicError):
        topics.parse("envpatrol/v2/patrol-01/readings")
