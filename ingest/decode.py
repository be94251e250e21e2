"""A readings message straight to `reading` table rows, without `edge.wire.Reading` objects.

The same contract as `ingest.validate.check_readings_message` (itself `edge.wire.decode_message`
plus the topic, vehicle and range checks), in the same order, with the same reasons, details and
row values as `ingest.writer.row_of`: only the intermediate objects are left out, which is most of
the per-reading cost on a catch-up. `tests/unit/test_ingest_decode.py` checks the equivalence
with Hypothesis on valid, damaged and arbitrary payloads.

Pure: bytes in, rows or a `Rejection` out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from edge.topics import TopicError, Topics, check_vehicle
from edge.units import CHANNELS
from edge.wire import CHANNEL_FLAGS, MAX_READINGS_PER_MESSAGE, READING_FLAGS, SCHEMA_VERSION
from ingest.columns import CHANNEL_COLUMNS
from ingest.validate import Limits, Rejection
from ingest.writer import cell_of

Row = tuple[object, ...]

_SPECS = {
    name: (CHANNEL_COLUMNS.index(name), spec.unit, spec.low, spec.high)
    for name, spec in CHANNELS.items()
}
_NO_VALUES = (None,) * len(CHANNEL_COLUMNS)
_UNITS = {name: spec.unit for name, spec in CHANNELS.items()}
_RANGES = {name: (spec.low, spec.high) for name, spec in CHANNELS.items()}
_SEQ_LIMIT = 2**63
_NUMBER = (int, float)
_NO_POSITION = (None,) * 9  # lat .. fix_age_s
DEFAULT_LIMITS = Limits()


class _RejectError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


def decode_rows(
    topics: Topics,
    topic: str,
    payload: bytes,
    resolution: int,
    loads: Callable[[bytes], Any] = orjson.loads,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Row] | Rejection:
    """The rows of one readings message (cells at `resolution`), or why it is rejected."""
    if len(payload) > limits.max_payload_bytes:
        return Rejection("too_large", f"{len(payload)} bytes > {limits.max_payload_bytes}")
    try:
        topic_vehicle, _ = topics.parse(topic)
    except TopicError as exc:
        return Rejection("bad_topic", str(exc))
    latest = (now or datetime.now(UTC)) + limits.max_future
    try:
        vehicle, rows, problem = _decode(payload, loads, resolution, limits.earliest, latest)
    except _RejectError as exc:
        return Rejection(exc.reason, exc.detail)
    if vehicle != topic_vehicle:
        return Rejection(
            "vehicle_mismatch",
            f"payload vehicle {vehicle!r} published on {topic_vehicle!r}'s topic",
        )
    if problem is not None:
        return problem
    return _unstorable(rows) or rows


def _decode(
    payload: bytes,
    loads: Callable[[bytes], Any],
    resolution: int,
    earliest: datetime,
    latest: datetime,
) -> tuple[str, list[Row], Rejection | None]:
    """Wire checks of every reading first (they win over range checks, as in edge.wire, where
    the range checks run on decoded readings); the first range problem is kept aside."""
    try:
        doc = loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _RejectError("malformed_json", str(exc)[:200]) from exc
    if not isinstance(doc, dict):
        raise _RejectError("not_an_object", "the payload must be a JSON object")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise _RejectError(
            "schema_version", f"expected schema_version {SCHEMA_VERSION}, got {version!r}"
        )
    vehicle = doc.get("vehicle")
    if not isinstance(vehicle, str):
        raise _RejectError("missing_field", "vehicle must be a string")
    try:
        check_vehicle(vehicle)
    except TopicError as exc:
        raise _RejectError("bad_vehicle", str(exc)) from exc
    items = doc.get("readings")
    if not isinstance(items, list) or not items:
        raise _RejectError("missing_field", "readings must be a non-empty list")
    if len(items) > MAX_READINGS_PER_MESSAGE:
        raise _RejectError("too_many_readings", f"{len(items)} > {MAX_READINGS_PER_MESSAGE}")
    rows: list[Row] = []
    problem: Rejection | None = None
    for index, item in enumerate(items):
        row, trouble = _row(vehicle, item, index, resolution, earliest, latest)
        rows.append(row)
        if problem is None and trouble is not None:
            problem = trouble
    return vehicle, rows, problem


def _row(
    vehicle: str,
    item: Any,
    index: int,
    resolution: int,
    earliest: datetime,
    latest: datetime,
) -> tuple[Row, Rejection | None]:
    if not isinstance(item, dict):
        raise _RejectError("bad_type", f"readings[{index}] must be an object")
    seq = item.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < _SEQ_LIMIT:
        raise _RejectError("bad_type", f"readings[{index}].seq must be a non-negative integer")
    moment = _time(item.get("time"), index)
    source = item.get("time_source")
    if source not in ("gnss", "host"):
        raise _RejectError("bad_type", f"readings[{index}].time_source must be 'gnss' or 'host'")
    profile = item.get("profile")
    if not isinstance(profile, str) or len(profile) > 64:
        raise _RejectError("bad_type", f"readings[{index}].profile must be a short string")
    position = item.get("position")
    fix = _NO_POSITION if position is None else _position(position, index)
    channel_values, flagged_out = _values(item, index)
    flags = item.get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise _RejectError("bad_type", f"readings[{index}].flags must be a list of strings")
    if flags:
        unknown = set(flags) - READING_FLAGS
        if unknown:
            raise _RejectError("unknown_flag", f"readings[{index}].flags: {sorted(unknown)}")
    channel_flags = item.get("channel_flags", {})
    if not isinstance(channel_flags, dict):
        raise _RejectError("bad_type", f"readings[{index}].channel_flags must be an object")
    if channel_flags:
        for name, names in channel_flags.items():
            if name not in CHANNELS or not isinstance(names, list):
                raise _RejectError("bad_type", f"readings[{index}].channel_flags.{name}")
            if not all(isinstance(n, str) and n in CHANNEL_FLAGS for n in names):
                raise _RejectError(
                    "unknown_flag", f"readings[{index}].channel_flags.{name}: {names}"
                )
    cell = (
        cell_of(fix[0], fix[1], resolution)  # type: ignore[arg-type]
        if fix[2]
        else None
    )
    row = (
        vehicle,
        seq,
        moment,
        source,
        *fix,
        cell,
        profile,
        list(flags),
        channel_flags,
        *channel_values,
    )
    return row, _range_problem(index, seq, moment, flagged_out, channel_flags, earliest, latest)


_SMALLINT = 32767
_REAL = 3.4028234663852886e38  # the largest finite float4
_FIX_COLUMNS = (
    (7, "quality", _SMALLINT),
    (8, "satellites", _SMALLINT),
    (9, "hdop", _REAL),
    (10, "speed_mps", _REAL),
    (11, "course_deg", _REAL),
    (12, "age_s", _REAL),
)


def _unstorable(rows: list[Row]) -> Rejection | None:
    """A fix field the contract accepts but `reading` cannot hold (smallint, real columns).
    Binary COPY would wrap or overflow it silently and text COPY would fail the whole batch
    again at every retry; rejected as `bad_type` once everything else has passed."""
    for index, row in enumerate(rows):
        if row[6] is None:
            continue  # no position
        for column, key, limit in _FIX_COLUMNS:
            value = row[column]
            if value is not None and not -limit - 1 <= value <= limit:  # type: ignore[operator]
                return Rejection(
                    "bad_type",
                    f"readings[{index}].position.{key} = {value} does not fit the store"
                    f" (at most {limit:g} in magnitude)",
                )
    return None


def _range_problem(
    index: int,
    seq: int,
    moment: datetime,
    outside: list[tuple[str, float]] | None,
    channel_flags: dict[str, Any],
    earliest: datetime,
    latest: datetime,
) -> Rejection | None:
    """The time first, then the first value outside its channel's range and not flagged for it
    (`outside`: such values in the message's order, flagged or not)."""
    if not earliest <= moment <= latest:
        return Rejection(
            "time_out_of_range",
            f"readings[{index}] (seq {seq}): time {moment.isoformat()} outside"
            f" {earliest.isoformat()} .. {latest.isoformat()}",
        )
    for name, value in outside or ():
        if name in channel_flags:
            continue  # a flagged value is the edge's own warning: stored, kept out of analysis
        low, high = _RANGES[name]
        return Rejection(
            "out_of_range",
            f"readings[{index}] (seq {seq}): {name} = {value} {_UNITS[name]} outside"
            f" {low}..{high} and not flagged",
        )
    return None


def _values(
    item: dict[str, Any], index: int
) -> tuple[list[float | None], list[tuple[str, float]] | None]:
    """The channel columns, and the values outside their channel's range (None: none)."""
    values = item.get("values")
    if not isinstance(values, dict):
        raise _RejectError("missing_field", f"readings[{index}].values must be an object")
    units = item.get("units")
    if not isinstance(units, dict):
        raise _RejectError("missing_field", f"readings[{index}].units must be an object")
    out: list[float | None] = list(_NO_VALUES)
    outside: list[tuple[str, float]] | None = None
    for name, value in values.items():
        spec = _SPECS.get(name)
        if spec is None:
            raise _RejectError("unknown_channel", f"readings[{index}].values.{name}")
        column, unit, low, high = spec
        if units.get(name) != unit:
            raise _RejectError(
                "bad_unit",
                f"readings[{index}].units.{name} is {units.get(name)!r}, expected {unit!r}",
            )
        if value is None:
            continue
        kind = type(value)
        if kind is float:
            if value - value != 0.0:  # inf or nan
                raise _RejectError(
                    "bad_type", f"readings[{index}].values.{name} must be a number or null"
                )
        elif kind is not int and (
            isinstance(value, bool) or not isinstance(value, _NUMBER) or not math.isfinite(value)
        ):
            raise _RejectError(
                "bad_type", f"readings[{index}].values.{name} must be a number or null"
            )
        number = value if kind is float else float(value)
        out[column] = number
        if not low <= number <= high:
            if outside is None:
                outside = []
            outside.append((name, number))
    return out, outside


def _time(value: Any, index: int) -> datetime:
    if not isinstance(value, str):
        raise _RejectError("bad_time", f"readings[{index}].time must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _RejectError("bad_time", f"readings[{index}].time {value!r} is not ISO 8601") from exc
    if moment.tzinfo is None:
        raise _RejectError("bad_time", f"readings[{index}].time {value!r} has no UTC offset")
    return moment.astimezone(UTC)


def _number(doc: dict[str, Any], key: str, index: int, *, integer: bool = False) -> Any:
    value = doc.get(key)
    if value is None:
        return None
    kind = type(value)
    if kind is int or (kind is float and not integer and value - value == 0.0):
        return value  # the usual case, checked as below
    ok = isinstance(value, int) if integer else isinstance(value, _NUMBER)
    if isinstance(value, bool) or not ok or not math.isfinite(value):
        raise _RejectError("bad_type", f"readings[{index}].position.{key} must be a number or null")
    return value


def _position(value: Any, index: int) -> tuple[Any, ...]:
    """lat, lon, fix_valid, fix_quality, satellites, hdop, speed_mps, course_deg, fix_age_s."""
    if not isinstance(value, dict):
        raise _RejectError("bad_type", f"readings[{index}].position must be an object or null")
    lat = _number(value, "lat", index)
    lon = _number(value, "lon", index)
    if lat is None or lon is None:
        raise _RejectError("bad_position", f"readings[{index}].position needs lat and lon")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise _RejectError(
            "bad_position", f"readings[{index}].position ({lat}, {lon}) is not on Earth"
        )
    valid = value.get("valid")
    if not isinstance(valid, bool):
        raise _RejectError("bad_type", f"readings[{index}].position.valid must be true or false")
    return (
        float(lat),
        float(lon),
        valid,
        _number(value, "quality", index, integer=True),
        _number(value, "satellites", index, integer=True),
        _number(value, "hdop", index),
        _number(value, "speed_mps", index),
        _number(value, "course_deg", index),
        _number(value, "age_s", index),
    )
