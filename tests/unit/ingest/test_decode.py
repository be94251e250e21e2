"""`ingest.decode.decode_rows` against the reference path (`check_readings_message`, i.e.
`edge.wire`'s envelope and reading decoders plus the ingest's checks, then
`ingest.writer.row_of`): the same decisions for the message and for each of its readings, with
the same reasons, details and row values, on valid, damaged and arbitrary payloads. Every
reading of an accepted message is either a row or a rejection of its own."""

from __future__ import annotations

import copy
import json
import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from edge.topics import Topics
from edge.units import CHANNELS
from edge.wire import CHANNEL_FLAGS, READING_FLAGS
from ingest.decode import decode_rows
from ingest.validate import Accepted, Limits, Rejection, check_readings_message
from ingest.writer import row_of

TOPICS = Topics("envpatrol")
NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_payload_bytes=64 * 1024)
RESOLUTION = 10
CHANNEL_NAMES = sorted(CHANNELS)


def reference(topic: str, payload: bytes) -> Accepted[tuple[object, ...]] | Rejection:
    result = check_readings_message(TOPICS, topic, payload, orjson.loads, NOW, LIMITS)
    if isinstance(result, Rejection):
        return result
    return Accepted([row_of(r, RESOLUTION) for r in result.readings], result.rejected)


def same(a: object, b: object) -> bool:
    """Equal, with NaN equal to itself (never produced, but keeps the comparison honest)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and type(a) is type(b))
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


def unstorable(row: tuple[object, ...]) -> bool:
    """A fix value `reading` cannot hold: smallint quality and satellites, real hdop .. age."""
    small = [float(str(v)) for v in row[7:9] if v is not None]
    real = [float(str(v)) for v in row[9:13] if v is not None]
    return any(not -32768 <= v <= 32767 for v in small) or any(
        abs(v) > 3.4028234663852886e38 for v in real
    )


def assert_equivalent(topic: str, payload: bytes) -> None:
    expected = reference(topic, payload)
    got = decode_rows(TOPICS, topic, payload, RESOLUTION, orjson.loads, NOW, LIMITS)
    if isinstance(expected, Rejection):
        assert got == expected
        return
    assert isinstance(got, Accepted), got
    # The reference knows nothing of the store's column types: a reading it accepts with a
    # fix `reading` cannot hold is the decoder's to reject, as that reading's `bad_type`.
    refused = {r.index for r in expected.rejected}
    accepted_at = [i for i in range(len(expected.readings) + len(refused)) if i not in refused]
    want_rows, want_rejected = [], list(expected.rejected)
    for index, row in zip(accepted_at, expected.readings, strict=True):
        if unstorable(row):
            want_rejected.append(_unstorable_at(got, index))
        else:
            want_rows.append(row)
    want_rejected.sort(key=lambda r: r.index)
    assert got.rejected == want_rejected
    assert len(got.readings) == len(want_rows)
    for row, want in zip(got.readings, want_rows, strict=True):
        assert same(row, want), (row, want)


def _unstorable_at(got: Accepted[tuple[object, ...]], index: int) -> Any:
    [rejected] = [r for r in got.rejected if r.index == index]
    assert rejected.rejection.reason == "bad_type", rejected
    assert "does not fit the store" in rejected.rejection.detail
    return rejected


# --- strategies -----------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | finite | st.text(max_size=8)
nested = leaf | st.lists(leaf, max_size=3) | st.dictionaries(st.text(max_size=6), leaf, max_size=3)
anything = (
    nested | st.lists(nested, max_size=3) | st.dictionaries(st.text(max_size=6), nested, max_size=3)
)


@st.composite
def times(draw: st.DrawFn) -> str:
    moment = NOW + timedelta(seconds=draw(st.integers(-3 * 365 * 86400 * 3, 3600)))
    offset = timedelta(minutes=draw(st.sampled_from([0, 0, 60, -300, 330])))
    local = moment.astimezone(__import__("datetime").timezone(offset))
    text = local.isoformat(
        timespec=draw(st.sampled_from(["seconds", "milliseconds", "microseconds"]))
    )
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


@st.composite
def positions(draw: st.DrawFn) -> dict[str, Any] | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    return {
        "lat": draw(st.floats(-90, 90) | st.integers(-90, 90)),
        "lon": draw(st.floats(-180, 180)),
        "valid": draw(st.booleans()),
        "quality": draw(st.none() | st.integers(0, 8)),
        "satellites": draw(st.none() | st.integers(0, 30)),
        "hdop": draw(st.none() | st.floats(0, 50) | st.integers(0, 5)),
        "speed_mps": draw(st.none() | st.floats(0, 40)),
        "course_deg": draw(st.none() | st.floats(0, 360)),
        "age_s": draw(st.none() | st.floats(0, 10)),
    }


@st.composite
def readings(draw: st.DrawFn, seq: int) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(CHANNEL_NAMES), max_size=6, unique=True))
    values: dict[str, Any] = {}
    for name in names:
        spec = CHANNELS[name]
        values[name] = draw(
            st.none()
            | st.floats(spec.low, spec.high)
            | st.floats(spec.low - 100, spec.high + 100)  # sometimes out of range
            | st.integers(int(spec.low), int(spec.high))
        )
    flagged = draw(st.lists(st.sampled_from(names or ["pm25"]), max_size=2, unique=True))
    return {
        "seq": seq,
        "time": draw(times()),
        "time_source": draw(st.sampled_from(["gnss", "host"])),
        "position": draw(positions()),
        "values": values,
        "units": {n: CHANNELS[n].unit for n in names},
        "flags": draw(st.lists(st.sampled_from(sorted(READING_FLAGS)), max_size=2)),
        "channel_flags": {
            n: draw(st.lists(st.sampled_from(sorted(CHANNEL_FLAGS)), max_size=2)) for n in flagged
        },
        "profile": draw(st.sampled_from(["default-multi", "noise-only"])),
    }


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 4))
    first = draw(st.integers(0, 10**6))
    return {
        "schema_version": 1,
        "vehicle": "car-1",
        "readings": [draw(readings(first + i)) for i in range(n)],
    }


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def damaged(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with one to three fields replaced by anything, or deleted, or a key
    added."""
    doc = copy.deepcopy(draw(documents()))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        parent: Any = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(
                anything
                | st.sampled_from(
                    ["car-2", "ppm", "spike", "nope", "2025-03-03T12:00:00", True, -1, 2**63]
                )
            )
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from([*CHANNEL_NAMES[:3], "x", "flags"]))] = draw(anything)
    return doc


# --- properties -----------------------------------------------------------------------------

TOPIC = "envpatrol/v1/car-1/readings"


@given(documents())
def test_valid_documents_give_the_same_rows(doc: dict[str, Any]) -> None:
    assert_equivalent(TOPIC, json.dumps(doc).encode())


@given(damaged())
def test_damaged_documents_give_the_same_decision(doc: dict[str, Any]) -> None:
    assert_equivalent(TOPIC, json.dumps(doc).encode())


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_the_same_decision(payload: bytes) -> None:
    assert_equivalent(TOPIC, payload)


@given(anything)
def test_arbitrary_json_gives_the_same_decision(doc: Any) -> None:
    assert_equivalent(TOPIC, json.dumps(doc).encode())


@given(
    documents(),
    st.sampled_from(["envpatrol/v1/car-2/readings", "envpatrol/v2/car-1/readings", "x"]),
)
def test_topic_checks_are_the_same(doc: dict[str, Any], topic: str) -> None:
    assert_equivalent(topic, json.dumps(doc).encode())


def test_special_values() -> None:
    base = {"schema_version": 1, "vehicle": "car-1"}
    reading = {
        "seq": 1,
        "time": "2025-03-03T11:00:00Z",
        "time_source": "gnss",
        "position": {"lat": 1, "lon": 2, "valid": True},
        "values": {"pm25": 5},
        "units": {"pm25": CHANNELS["pm25"].unit},
        "profile": "p",
    }
    pos = reading["position"]
    assert isinstance(pos, dict)
    cases: list[bytes] = [
        json.dumps({**base, "readings": [reading]}).encode(),
        json.dumps({**base, "readings": [{**reading, "values": {"pm25": 1e400}}]}).encode(),
        b'{"schema_version":1,"vehicle":"car-1","readings":[{"seq":1,"values":{"pm25":NaN}}]}',
        json.dumps({**base, "readings": [{**reading, "seq": True}]}).encode(),
        json.dumps({**base, "readings": [{**reading, "values": {"pm25": True}}]}).encode(),
        json.dumps({**base, "readings": [{**reading, "time": "2019-12-31T23:59:59Z"}]}).encode(),
        json.dumps({**base, "readings": [{**reading, "channel_flags": {"pm25": [1]}}]}).encode(),
        json.dumps({**base, "readings": [{**reading, "channel_flags": {"pm25": [[]]}}]}).encode(),
        json.dumps({**base, "readings": [reading] * 501}).encode(),
        json.dumps(
            {**base, "readings": [{**reading, "position": {**pos, "quality": 70000}}]}
        ).encode(),
        json.dumps(
            {**base, "readings": [{**reading, "position": {**pos, "hdop": 1e300}}]}
        ).encode(),
        json.dumps(
            {**base, "readings": [{**reading, "position": {**pos, "satellites": -32768}}]}
        ).encode(),
        json.dumps(
            {**base, "readings": [{**reading, "values": {"pm25": -5.0}}, {**reading, "seq": -1}]}
        ).encode(),
    ]
    # the fix's bounds, on both sides of each (msgspec checks them as it decodes)
    for field, values in (
        ("lat", [90, 90.0, 90.000001, -90.0, -90.5]),
        ("lon", [180.0, -180, 180.5]),
        ("quality", [32767, 32768, -32768, -32769]),
        ("hdop", [3.4028234663852886e38, 3.5e38, -3.5e38, 2**63 - 1, 2**63, 2**64 - 1, 2**64]),
        ("age_s", [-(2**63), -(2**63) - 1, 0.5, -0.0]),
    ):
        for value in values:
            fix = {**pos, field: value}
            cases.append(json.dumps({**base, "readings": [{**reading, "position": fix}]}).encode())
    cases.append(
        json.dumps(
            {**base, "readings": [{**reading, "time": "2025-03-03T13:00:00+02:00"}]}
        ).encode()
    )
    good = json.dumps({**base, "readings": [reading]}, separators=(",", ":")).encode()
    cases += [
        # bytes that are not UTF-8, where the checks and msgspec's structs read strings
        good.replace(b'"car-1"', b'"car-\xff"', 1),
        good.replace(b'"profile":"p"', b'"profile":"\xed\xa0\x80"'),
        good.replace(b'"profile":"p"', b'"profile":"p","x":"\xc0\xaf"'),
        # fields the structs do not know, holding what the checks reject or accept
        good.replace(b'"profile":"p"', b'"profile":"p","x":1e400'),
        good.replace(b'"profile":"p"', b'"profile":"p","x":[1, "two"]'),
        good.replace(b'"schema_version":1', b'"schema_version":1,"extra":' + b"1" * 400),
        # nesting deeper than either parser goes, and just within orjson's limit
        good.replace(b'"profile":"p"', b'"profile":"p","x":' + b"[" * 5000 + b"]" * 5000),
        good.replace(b'"profile":"p"', b'"profile":"p","x":' + b"[" * 1000 + b"]" * 1000),
    ]
    assert len(set(cases)) == len(cases)  # every change above took
    for payload in cases:
        assert_equivalent(TOPIC, payload)


def test_deep_nesting_in_a_thread_is_decided_as_the_checks_decide() -> None:
    """The ingest decodes in a thread, whose stack is shallower than the main one's: nesting
    about a thousand deep in a field no struct knows is a matter for the checks there too (orjson
    takes up to 1,024 levels), never an exception out of the decoder."""
    failures: list[BaseException] = []

    reading = (
        b'{"seq":1,"time":"2025-03-03T11:00:00Z","time_source":"gnss","values":{},"units":{},'
        b'"profile":"p"}'
    )

    def decide() -> None:
        for depth in (1000, 1020, 1200, 5000):
            payload = (
                b'{"x":'
                + b"[" * depth
                + b"]" * depth
                + b',"schema_version":1,"vehicle":"car-1","readings":['
                + reading
                + b"]}"
            )
            try:
                assert_equivalent(TOPIC, payload)
            except BaseException as exc:
                failures.append(exc)

    worker = threading.Thread(target=decide)
    worker.start()
    worker.join(60)
    assert not failures, failures
