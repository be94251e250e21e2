"""Hostile readings payloads against the ingest's decoders: dates at the ends of the calendar with
offsets, NUL and control characters, huge integers, NaN and Infinity, deep nesting, unicode
identifiers, wrong types, duplicate keys, and messages mixing good readings with bad ones.

Invariants: decoding never raises; a message is rejected whole with a known reason, or each of
its readings is a row or a rejection of its own; the rows are storable; the fast decoder and the
reference checks agree (`tests/unit/ingest/test_decode.py`); a status or health document is
accepted only with text a database can hold."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.units import CHANNELS
from firmware_sim.hostile import Pairs, Raw, dump
from ingest.decode import decode_rows, reading_dead_letters
from ingest.validate import REASONS, Accepted, Rejection, check_document
from tests.unit.ingest.test_decode import LIMITS, NOW, RESOLUTION, TOPICS, assert_equivalent

TOPIC = "envpatrol/v1/car-1/readings"
CHANNEL_NAMES = sorted(CHANNELS)


# --- strategies -----------------------------------------------------------------------------

offsets = st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))
calendar_edges = st.sampled_from(
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00.000+23:59",
        "9999-12-31T23:59:59.999999-23:59",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
        "2000-01-01T00:00:00Z",
        "1999-12-31T23:59:59.999Z",
    ]
)
any_moment = st.builds(
    lambda m, tz: m.replace(tzinfo=tz).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    offsets,
)
times = calendar_edges | any_moment
controls = st.characters(min_codepoint=0, max_codepoint=0x1F) | st.sampled_from(
    ["\x7f", "\u2028", "\ufeff", "\U0001f697"]
)
hostile_text = st.text(controls | st.characters(), min_size=1, max_size=12)
huge_numbers = st.sampled_from(
    [
        Raw("1" + "0" * 400),
        Raw("-" + "9" * 30),
        Raw("18446744073709551616"),
        Raw("1e999"),
        Raw("-1e999"),
        Raw("NaN"),
        Raw("Infinity"),
        Raw("-Infinity"),
        Raw("1e-999"),
        Raw("-0"),
    ]
) | st.integers(-(2**200), 2**200).map(lambda n: Raw(str(n)))
deep = st.integers(1, 3000).map(lambda n: Raw("[" * n + "]" * n))
wrong = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | hostile_text
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(hostile_text, st.integers(), max_size=2)
)
hostile_value = huge_numbers | deep | wrong


def good_reading(seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "time": (NOW - timedelta(minutes=seq)).isoformat().replace("+00:00", "Z"),
        "time_source": "gnss",
        "position": {
            "lat": 39.9,
            "lon": 116.4,
            "valid": True,
            "quality": 1,
            "satellites": 9,
            "hdop": 0.9,
            "speed_mps": 5.0,
            "course_deg": 90.0,
            "age_s": 0.4,
        },
        "values": {"pm25": 20.0, "noise": 61.5},
        "units": {"pm25": CHANNELS["pm25"].unit, "noise": CHANNELS["noise"].unit},
        "flags": [],
        "channel_flags": {},
        "profile": "default-multi",
    }


@st.composite
def bad_reading(draw: st.DrawFn, seq: int) -> Any:
    reading: dict[str, Any] = good_reading(seq)
    how = draw(
        st.sampled_from(
            ["time", "field", "position", "value", "name", "profile", "flag key", "duplicate"]
        )
    )
    if how == "time":
        reading["time"] = draw(times)
    elif how == "field":
        reading[draw(st.sampled_from(sorted(reading)))] = draw(hostile_value)
    elif how == "position":
        key = draw(st.sampled_from(sorted(reading["position"])))
        reading["position"][key] = draw(hostile_value)
    elif how == "value":
        reading["values"]["pm25"] = draw(hostile_value)
    elif how == "name":
        name = draw(hostile_text | st.sampled_from(CHANNEL_NAMES))
        reading["values"][name] = 1.0
        reading["units"][name] = draw(hostile_text | st.just("ug/m3"))
    elif how == "profile":
        reading["profile"] = draw(hostile_text)
    elif how == "flag key":
        reading["channel_flags"] = {draw(hostile_text): ["spike"]}
    else:
        key = draw(st.sampled_from(sorted(reading)))
        pairs = [*reading.items(), (key, draw(hostile_value | st.just(reading[key])))]
        return Pairs(tuple(draw(st.permutations(pairs))))
    return reading


@st.composite
def hostile_messages(draw: st.DrawFn) -> bytes:
    n = draw(st.integers(1, 6))
    readings = [draw(bad_reading(i) | st.just(good_reading(i))) for i in range(n)]
    envelope: list[tuple[str, Any]] = [
        ("schema_version", 1),
        ("vehicle", "car-1"),
        ("readings", readings),
    ]
    how = draw(st.sampled_from(["none", "none", "version", "vehicle", "duplicate", "extra"]))
    if how == "version":
        envelope[0] = ("schema_version", draw(st.sampled_from([True, 1.0, "1", Raw("1e0")])))
    elif how == "vehicle":
        vehicle = draw(hostile_text | st.sampled_from(["car-1\n", "car-1\x00", "ÇAR-1", "car-2"]))
        envelope[1] = ("vehicle", vehicle)
    elif how == "duplicate":
        envelope.append(draw(st.sampled_from(envelope)))
    elif how == "extra":
        envelope.append((draw(hostile_text), draw(hostile_value)))
    return dump(Pairs(tuple(envelope)), draw(st.booleans())).encode("utf-8", "surrogatepass")


# --- properties -----------------------------------------------------------------------------


def storable_text(value: object) -> bool:
    return not isinstance(value, str) or ("\x00" not in value and value.isprintable())


def check_invariants(payload: bytes) -> None:
    got = decode_rows(TOPICS, TOPIC, payload, RESOLUTION, orjson.loads, NOW, LIMITS)
    if isinstance(got, Rejection):
        assert got.reason in REASONS
        assert got.reason != "undecodable", got
        assert storable_text(got.detail)
        return
    assert isinstance(got, Accepted)
    count = len(orjson.loads(payload)["readings"])
    indexes = [r.index for r in got.rejected]
    assert indexes == sorted(set(indexes))
    assert len(got.readings) + len(got.rejected) == count  # each reading: a row or a rejection
    for refused in got.rejected:
        assert refused.rejection.reason in REASONS
        assert storable_text(refused.rejection.detail)
        assert isinstance(refused.reading, bytes)
    for row in got.readings:
        assert all(storable_text(v) for v in row)
        assert all(not isinstance(v, float) or math.isfinite(v) for v in row)
    if got.rejected:
        letters = reading_dead_letters(TOPIC, payload, got, NOW)
        assert [d.reason for d in letters][-1] == "rejected_readings"
        assert letters[-1].payload == payload
        assert all(storable_text(d.detail) for d in letters)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_messages())
def test_hostile_messages_are_decided_never_raised(payload: bytes) -> None:
    check_invariants(payload)
    assert_equivalent(TOPIC, payload)


@settings(max_examples=200)
@given(st.lists(st.sampled_from([0, 1]), min_size=1, max_size=50), st.data())
def test_good_readings_of_a_mixed_message_are_all_kept(
    kinds: list[int], data: st.DataObject
) -> None:
    readings = [
        good_reading(i) if kind else data.draw(bad_reading(i)) for i, kind in enumerate(kinds)
    ]
    payload = dump({"schema_version": 1, "vehicle": "car-1", "readings": readings}, True).encode()
    got = decode_rows(TOPICS, TOPIC, payload, RESOLUTION, orjson.loads, NOW, LIMITS)
    if isinstance(got, Rejection):
        # what makes the message itself ambiguous or not JSON: a key twice, a number no double
        # holds (orjson refuses those), decided before any reading is looked at
        assert got.reason in ("duplicate_key", "malformed_json"), got
        return
    kept = {row[1] for row in got.readings}
    assert {i for i, kind in enumerate(kinds) if kind} <= kept
    assert_equivalent(TOPIC, payload)


@pytest.mark.parametrize(
    "moment",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"],
)
def test_the_calendar_edges_cost_one_reading_of_fifty(moment: str) -> None:
    readings = [good_reading(i) for i in range(50)]
    readings[31]["time"] = moment
    payload = json.dumps({"schema_version": 1, "vehicle": "car-1", "readings": readings}).encode()
    got = decode_rows(TOPICS, TOPIC, payload, RESOLUTION, orjson.loads, NOW, LIMITS)
    assert isinstance(got, Accepted)
    assert len(got.readings) == 49
    assert [(r.index, r.rejection.reason) for r in got.rejected] == [(31, "bad_time")]


@settings(max_examples=200)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3)
        ),
        max_leaves=10,
    ),
    st.sampled_from(["car-1", "car-2"]),
)
def test_documents_are_decided_never_raised(extra: Any, vehicle: str) -> None:
    doc = {"schema_version": 1, "vehicle": vehicle, "x": extra}
    payload = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    for loads in (orjson.loads, json.loads):
        got = check_document(payload, loads, "car-1")
        if isinstance(got, Rejection):
            assert got.reason in REASONS
            assert got.reason != "undecodable", got
            assert storable_text(got.detail)
        else:
            assert got is not None
            assert vehicle == "car-1"
            assert json.dumps(got, ensure_ascii=False).find("\x00") == -1
            # what the writer sends to a jsonb column: no unpaired surrogate, NaN or infinity
            text = json.dumps(got, ensure_ascii=False, allow_nan=False)
            text.encode()


@settings(max_examples=100)
@given(st.integers(1, 100_000))
def test_deep_nesting_anywhere_is_a_verdict(depth: int) -> None:
    nest = "[" * depth + "]" * depth
    reading = dump(good_reading(0), True)
    for payload in (
        f'{{"schema_version":1,"vehicle":"car-1","x":{nest},"readings":[{reading}]}}',
        f'{{"schema_version":1,"vehicle":"car-1","readings":[{nest}]}}',
    ):
        check_invariants(payload.encode())
    document = f'{{"schema_version":1,"vehicle":"car-1","x":{nest}}}'.encode()
    assert check_document(document, orjson.loads, "car-1") is not None
