"""Checks a message must pass before it is stored; anything else is a dead letter.

Pure: bytes and a topic in, readings (or a status document) and rejections out; nothing a
payload holds makes these functions raise. A message whose envelope breaks the contract (not
JSON, a key twice, another schema version or vehicle) is rejected whole (`Rejection`); in a
message that keeps it, each reading is accepted or rejected on its own (`Accepted`): one reading
with an implausible time does not cost the others of a catch-up message. Every rejection carries
a stable reason code (`REASONS`), the code the dead-letter table and the
`envpatrol_ingest_dead_letters_total{reason=...}` metric use.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import orjson

from edge.topics import TopicError, Topics
from edge.units import CHANNELS
from edge.wire import (
    Reading,
    WireError,
    check_schema_version,
    decode_envelope,
    decode_reading,
    parse_object,
)

MAX_PAYLOAD_BYTES = 256 * 1024

# Every reason a message can be rejected for, with what it means.
REASONS: dict[str, str] = {
    "too_large": "payload over the size limit",
    "bad_topic": "topic outside envpatrol/v1/{vehicle}/{readings,status,health}",
    "malformed_json": "payload is not JSON (or not UTF-8)",
    "not_an_object": "payload is JSON but not an object",
    "schema_version": "schema_version missing or not one this ingest reads",
    "missing_field": "a required field (vehicle, readings, values, units) is missing",
    "bad_vehicle": "vehicle id not a valid topic level",
    "too_many_readings": "more readings in one message than the contract allows",
    "bad_type": "a field has the wrong type",
    "unknown_channel": "a value for a channel the system does not know",
    "bad_unit": "a value not in its channel's canonical unit",
    "unknown_flag": "a flag the contract does not define",
    "bad_time": "a time that is not ISO 8601 with an offset, or beyond UTC's range",
    "bad_position": "a position without lat/lon or off the Earth",
    "vehicle_mismatch": "payload vehicle differs from the topic's",
    "out_of_range": "an unflagged value outside its channel's physically plausible range",
    "time_out_of_range": "a reading time before the earliest accepted or too far in the future",
    "duplicate_key": "a key twice in one JSON object (parsers disagree on which one counts)",
    "bad_text": "text a database cannot hold (a NUL character, an unpaired surrogate)",
    "rejected_readings": "a message some readings of which were rejected: its raw payload, once",
    "undecodable": "decoding failed unexpectedly (a defect: the message is kept for a look)",
}

# Earliest reading time accepted by default: old enough for historical drives, late enough to
# refuse clocks reset to 1970 and receivers before their first fix.
DEFAULT_MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
DEFAULT_MAX_FUTURE_S = 600.0
_DETAIL_CHARS = 500


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    # The time window (settings `min_time`, `max_future_s`): clock errors such as a GNSS
    # receiver before its first fix or a host clock reset to 1970 fall outside it.
    earliest: datetime = DEFAULT_MIN_TIME
    max_future: timedelta = timedelta(seconds=DEFAULT_MAX_FUTURE_S)


def printable(text: str) -> str:
    """`text` with what a database text column or a log line should not hold (NUL, control
    characters, unpaired surrogates) written as escapes, and cut to a readable length."""
    text = text[:_DETAIL_CHARS]
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str  # one of REASONS
    detail: str  # made printable (`printable`): it may quote the payload

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown rejection reason {self.reason!r}")
        object.__setattr__(self, "detail", printable(self.detail))


@dataclass(frozen=True, slots=True)
class ReadingRejection:
    """One reading of a message refused while the others are stored: its index in the message,
    why, and the reading itself as JSON (parsed and written again: the raw payload is kept once
    per message, see `rejected_readings`)."""

    index: int
    rejection: Rejection
    reading: bytes


T = TypeVar("T")


@dataclass(slots=True)  # not frozen: made for every message, and a frozen one costs more to make
class Accepted(Generic[T]):
    """A readings message that kept the contract: its valid readings (as `Reading` objects or
    as table rows) and its rejected ones, in message order."""

    readings: list[T]
    rejected: list[ReadingRejection] = field(default_factory=list)


def reading_json(item: Any) -> bytes:
    """A reading as it came, written again for its dead letter; never raises."""
    try:
        return orjson.dumps(item)
    except Exception:  # an integer beyond 64 bits, nesting deeper than orjson writes
        try:
            return json.dumps(item, ensure_ascii=False, default=repr).encode("utf-8", "replace")
        except Exception:
            return repr(item)[:_DETAIL_CHARS].encode("utf-8", "replace")


def reading_rejection(index: int, item: Any, reason: str, detail: str) -> ReadingRejection:
    return ReadingRejection(index, Rejection(reason, detail), reading_json(item))


def check_readings_message(
    topics: Topics,
    topic: str,
    payload: bytes,
    loads: Callable[[bytes], Any],
    now: datetime | None = None,
    limits: Limits = Limits(),
) -> Accepted[Reading] | Rejection:
    """The reference reading of a readings message (`ingest.decode.decode_rows` gives the same
    decisions faster). Never raises: an unexpected failure is an `undecodable` rejection."""
    try:
        return _check_readings_message(topics, topic, payload, loads, now, limits)
    except Exception as exc:
        return undecodable(exc)


def undecodable(exc: BaseException) -> Rejection:
    return Rejection("undecodable", f"{type(exc).__name__}: {exc}")


def _check_readings_message(
    topics: Topics,
    topic: str,
    payload: bytes,
    loads: Callable[[bytes], Any],
    now: datetime | None,
    limits: Limits,
) -> Accepted[Reading] | Rejection:
    topic_vehicle = vehicle_of_topic(topics, topic, payload, limits)
    if isinstance(topic_vehicle, Rejection):
        return topic_vehicle
    try:
        vehicle, items = decode_envelope(payload, loads, orjson.dumps)
    except WireError as exc:
        return Rejection(exc.subject, exc.problem)
    mismatch = vehicle_mismatch(vehicle, topic_vehicle)
    if mismatch is not None:
        return mismatch
    latest = (now or datetime.now(UTC)) + limits.max_future
    accepted: Accepted[Reading] = Accepted([])
    for index, item in enumerate(items):
        try:
            reading = decode_reading(vehicle, item, index)
        except WireError as exc:
            accepted.rejected.append(reading_rejection(index, item, exc.subject, exc.problem))
            continue
        problem = _range_problem(reading, limits.earliest, latest)
        if problem is None:
            accepted.readings.append(reading)
        else:
            reason, detail = problem
            where = f"readings[{index}] (seq {reading.seq})"
            accepted.rejected.append(reading_rejection(index, item, reason, f"{where}: {detail}"))
    return accepted


def vehicle_of_topic(topics: Topics, topic: str, payload: bytes, limits: Limits) -> str | Rejection:
    """The checks before a readings payload is parsed (its size, its topic): the topic's
    vehicle, or why the message is rejected."""
    if len(payload) > limits.max_payload_bytes:
        return Rejection("too_large", f"{len(payload)} bytes > {limits.max_payload_bytes}")
    try:
        vehicle, _ = topics.parse(topic)
    except TopicError as exc:
        return Rejection("bad_topic", str(exc))
    return vehicle


def vehicle_mismatch(vehicle: str, topic_vehicle: str) -> Rejection | None:
    if vehicle == topic_vehicle:
        return None
    return Rejection(
        "vehicle_mismatch", f"payload vehicle {vehicle!r} published on {topic_vehicle!r}'s topic"
    )


def time_out_of_range(moment: datetime, earliest: datetime, latest: datetime) -> str | None:
    """Why a reading time is not accepted (None: it is)."""
    if earliest <= moment <= latest:
        return None
    return f"time {moment.isoformat()} outside {earliest.isoformat()} .. {latest.isoformat()}"


def value_out_of_range(name: str, value: float) -> str | None:
    """Why a channel's value is implausible (None: it is within its channel's range)."""
    spec = CHANNELS[name]
    if spec.low <= value <= spec.high:
        return None
    return f"{name} = {value} {spec.unit} outside {spec.low}..{spec.high} and not flagged"


def _range_problem(
    reading: Reading, earliest: datetime, latest: datetime
) -> tuple[str, str] | None:
    problem = time_out_of_range(reading.time, earliest, latest)
    if problem is not None:
        return "time_out_of_range", problem
    for name, value in reading.values.items():
        if value is None or name in reading.channel_flags:
            continue  # a flagged value is the edge's own warning: stored, kept out of analysis
        problem = value_out_of_range(name, value)
        if problem is not None:
            return "out_of_range", problem
    return None


def check_document(
    payload: bytes,
    loads: Callable[[bytes], Any],
    topic_vehicle: str,
    limits: Limits = Limits(),
) -> dict[str, Any] | Rejection | None:
    """A status or health document of the vehicle of its topic: a JSON object, no key twice,
    only text and numbers a database can hold, and where it names them, `schema_version` 1 and
    that `vehicle` (the topic, which the broker's ACL confines to its vehicle, says whose it is).
    None for an empty payload (a retained message being cleared), which is not an error.
    Never raises."""
    if not payload:
        return None
    if len(payload) > limits.max_payload_bytes:
        return Rejection("too_large", f"{len(payload)} bytes > {limits.max_payload_bytes}")
    try:
        doc = parse_object(payload, loads, orjson.dumps)
        if "schema_version" in doc:
            check_schema_version(doc["schema_version"])
    except WireError as exc:
        return Rejection(exc.subject, exc.problem)
    except Exception as exc:
        return undecodable(exc)
    return _document_problem(doc, topic_vehicle) or doc


def _document_problem(doc: dict[str, Any], topic_vehicle: str) -> Rejection | None:
    vehicle = doc.get("vehicle", topic_vehicle)
    if not isinstance(vehicle, str):
        return Rejection("bad_type", "vehicle must be a string")
    return vehicle_mismatch(vehicle, topic_vehicle) or unstorable(doc)


def unstorable(doc: Any) -> Rejection | None:
    """Why a PostgreSQL `jsonb` column cannot hold `doc` (None: it can): a key or string with
    a NUL or an unpaired surrogate (`bad_text`), NaN or an infinity (`bad_type`)."""
    pending = [doc]  # a stack, not recursion: a document may nest as deep as its parser allows
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if not _storable(value):
                return Rejection("bad_text", f"{value[:64]!r} cannot be stored")
        elif isinstance(value, dict):
            for key in value:
                if not _storable(key):
                    return Rejection("bad_text", f"key {key[:64]!r} cannot be stored")
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, float) and value - value != 0.0:
            return Rejection("bad_type", f"{value} cannot be stored")
    return None


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:  # an unpaired surrogate, from a parser that lets them through
        return False
    return True
