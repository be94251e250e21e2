"""Checks a message must pass before it is stored; anything else is a dead letter.

Pure: bytes and a topic in, readings (or a status document) or a `Rejection` out. A message is
accepted or rejected whole: the edge sends a reading once per message, and a message that breaks
the contract in one reading says its sender is broken, so an operator should look at all of it.
Every rejection carries a stable reason code (`REASONS`), the code the dead-letter table and the
`envpatrol_ingest_dead_letters_total{reason=...}` metric use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from edge.topics import TopicError, Topics
from edge.units import CHANNELS
from edge.wire import Reading, WireError, decode_message

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
    "bad_time": "a time that is not ISO 8601 with an offset",
    "bad_position": "a position without lat/lon or off the Earth",
    "vehicle_mismatch": "payload vehicle differs from the topic's",
    "out_of_range": "an unflagged value outside its channel's physically plausible range",
    "time_out_of_range": "a reading time before the earliest accepted or too far in the future",
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    # Clock errors: a GNSS receiver before its first fix, a host clock reset to 1970.
    earliest: datetime = datetime(2020, 1, 1, tzinfo=UTC)
    max_future: timedelta = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str  # one of REASONS
    detail: str

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown rejection reason {self.reason!r}")


def check_readings_message(
    topics: Topics,
    topic: str,
    payload: bytes,
    loads: Callable[[bytes], Any],
    now: datetime | None = None,
    limits: Limits = Limits(),
) -> list[Reading] | Rejection:
    topic_vehicle = vehicle_of_topic(topics, topic, payload, limits)
    if isinstance(topic_vehicle, Rejection):
        return topic_vehicle
    try:
        vehicle, readings = decode_message(payload, loads)
    except WireError as exc:
        return Rejection(exc.subject, exc.problem)
    mismatch = vehicle_mismatch(vehicle, topic_vehicle)
    if mismatch is not None:
        return mismatch
    latest = (now or datetime.now(UTC)) + limits.max_future
    for index, reading in enumerate(readings):
        problem = _range_problem(reading, limits.earliest, latest)
        if problem is not None:
            reason, detail = problem
            return Rejection(reason, f"readings[{index}] (seq {reading.seq}): {detail}")
    return readings


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
    limits: Limits = Limits(),
) -> dict[str, Any] | Rejection | None:
    """A status or health document: a JSON object. None for an empty payload (a retained
    message being cleared), which is not an error."""
    if not payload:
        return None
    if len(payload) > limits.max_payload_bytes:
        return Rejection("too_large", f"{len(payload)} bytes > {limits.max_payload_bytes}")
    try:
        doc = loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejection("malformed_json", str(exc)[:200])
    if not isinstance(doc, dict):
        return Rejection("not_an_object", "a status or health document must be an object")
    return doc
