"""Checks a message must pass before its readings are stored; anything else is a dead letter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.topics import TopicError, Topics
from edge.wire import Reading, WireError, decode_message

MAX_PAYLOAD_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str  # stable code: malformed_json, schema_version, bad_unit, vehicle_mismatch, ...
    detail: str


def check_readings_message(
    topics: Topics, topic: str, payload: bytes, loads: Callable[[bytes], Any]
) -> list[Reading] | Rejection:
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Rejection("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        topic_vehicle, _ = topics.parse(topic)
    except TopicError as exc:
        return Rejection("bad_topic", str(exc))
    try:
        vehicle, readings = decode_message(payload, loads)
    except WireError as exc:
        return Rejection(exc.reason, exc.detail)
    if vehicle != topic_vehicle:
        return Rejection(
            "vehicle_mismatch",
            f"payload vehicle {vehicle!r} published on {topic_vehicle!r}'s topic",
        )
    return readings
