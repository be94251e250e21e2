"""A readings message straight to `reading` table rows, without `edge.wire.Reading` objects.

The same contract as `ingest.validate.check_readings_message` (itself `edge.wire.decode_message`
plus the topic, vehicle and range checks), in the same order, with the same reasons, details and
row values as `ingest.writer.row_of`: only the intermediate objects are left out, which is most of
the per-reading cost on a catch-up. The envelope, each reading's head (seq, time, source,
profile) and its flags are checked by `edge.wire`'s own functions, the size, topic, vehicle and
range details come from `ingest.validate`; only the values and the position, the bulk of each
reading, have their own code here, made for speed. `tests/unit/ingest/test_decode.py` checks
the equivalence with Hypothesis on valid, damaged and arbitrary payloads.

The usual message, valid in every respect, takes a faster road (`_fast`): msgspec parses it
straight into typed structs (types, required fields, literals, lengths checked in C), and what
is left (units, known channels and flags, finite numbers, the time, no key twice) is checked in
Python. That road only accepts: at the first thing it does not take as it is, even something the
checks below would accept, it gives up and the message goes through the checks below, which
alone decide what is rejected and why. What it accepts gives the very rows the checks below give.

Pure: bytes in, rows and per-reading rejections (`Accepted`) or a `Rejection` out; it never
raises, whatever the bytes (an unexpected failure is an `undecodable` rejection).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import orjson
from msgspec import UNSET, UnsetType
from msgspec.structs import astuple

from edge.topics import TopicError, Topics, check_vehicle
from edge.units import CHANNELS
from edge.wire import (
    CHANNEL_FLAGS,
    DOUBLE_MAX,
    MAX_READINGS_PER_MESSAGE,
    READING_FLAGS,
    SCHEMA_VERSION,
    WireError,
    decode_envelope,
    finite,
    position_fields,
    reading_channel_flags,
    reading_flags,
    reading_head,
)
from ingest.columns import NO_CHANNEL_FLAGS, NO_FLAGS, channel_flags_field, flags_field
from ingest.validate import (
    Accepted,
    Limits,
    ReadingRejection,
    Rejection,
    reading_json,
    reading_rejection,
    time_out_of_range,
    undecodable,
    value_out_of_range,
    vehicle_mismatch,
    vehicle_of_topic,
)
from ingest.writer import DeadLetter, cell_of
from store.reading_columns import CHANNEL_COLUMNS, COLUMNS, FIX_VALID_AT

Row = tuple[object, ...]

_SPECS = {
    name: (CHANNEL_COLUMNS.index(name), spec.unit, spec.low, spec.high)
    for name, spec in CHANNELS.items()
}
_NO_VALUES = (None,) * len(CHANNEL_COLUMNS)
_NUMBER = (int, float)
_NO_POSITION = (None,) * 9  # lat .. fix_age_s
_NO_FIX = (*_NO_POSITION, None)  # and no cell
DEFAULT_LIMITS = Limits()


def decode_rows(
    topics: Topics,
    topic: str,
    payload: bytes,
    resolution: int,
    loads: Callable[[bytes], Any] = orjson.loads,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Accepted[Row] | Rejection:
    """The rows of one readings message (cells at `resolution`) and its rejected readings, or
    why the whole message is rejected. Never raises."""
    try:
        return _decode_rows(topics, topic, payload, resolution, loads, now, limits)
    except Exception as exc:  # a defect, not a verdict on the message: kept for a look
        return undecodable(exc)


def _decode_rows(
    topics: Topics,
    topic: str,
    payload: bytes,
    resolution: int,
    loads: Callable[[bytes], Any],
    now: datetime | None,
    limits: Limits,
) -> Accepted[Row] | Rejection:
    topic_vehicle = vehicle_of_topic(topics, topic, payload, limits)
    if isinstance(topic_vehicle, Rejection):
        return topic_vehicle
    latest = (now or datetime.now(UTC)) + limits.max_future
    fast = _fast(payload, resolution, limits.earliest, latest)
    rejected: list[ReadingRejection]
    if fast is not None:
        vehicle, rows = fast
        rejected = []
    else:
        try:
            vehicle, rows, rejected = _decode(
                payload, loads, resolution, limits.earliest, latest, topic_vehicle
            )
        except WireError as exc:
            return Rejection(exc.subject, exc.problem)
    mismatch = vehicle_mismatch(vehicle, topic_vehicle)
    if mismatch is not None:
        return mismatch
    return Accepted(rows, rejected)


def reading_dead_letters(
    topic: str, payload: bytes, accepted: Accepted[Row], received_at: datetime
) -> list[DeadLetter]:
    """The dead letters of a message some readings of which were rejected: one per rejected
    reading (its reason, a detail naming its index and seq, the reading's JSON), and the raw
    payload once, as `rejected_readings` (docs/wire-format.md, "Rejections")."""
    rejected = accepted.rejected
    total = len(accepted.readings) + len(rejected)
    shown = ", ".join(str(r.index) for r in rejected[:20]) + (", ..." if len(rejected) > 20 else "")
    letters = [
        DeadLetter(topic, r.rejection.reason, r.rejection.detail, r.reading, received_at)
        for r in rejected
    ]
    summary = Rejection(
        "rejected_readings",
        f"{len(rejected)} of {total} readings rejected (readings[{shown}]); the others stored",
    )
    letters.append(DeadLetter(topic, summary.reason, summary.detail, payload, received_at))
    return letters


def _decode(
    payload: bytes,
    loads: Callable[[bytes], Any],
    resolution: int,
    earliest: datetime,
    latest: datetime,
    topic_vehicle: str | None = None,
) -> tuple[str, list[Row], list[ReadingRejection]]:
    """The envelope, then each reading on its own: its wire checks first (they win over range
    checks, as in edge.wire, where the range checks run on decoded readings), then its ranges,
    then whether `reading` can hold it. Raises WireError for the envelope. A message of
    another vehicle than `topic_vehicle` is rejected whole, so its readings are not looked at."""
    vehicle, items = decode_envelope(payload, loads, orjson.dumps)
    rows: list[Row] = []
    rejected: list[ReadingRejection] = []
    if topic_vehicle is not None and vehicle != topic_vehicle:
        return vehicle, rows, rejected
    for index, item in enumerate(items):
        try:
            row, trouble = _row(vehicle, item, index, resolution, earliest, latest)
        except WireError as exc:
            rejected.append(reading_rejection(index, item, exc.subject, exc.problem))
            continue
        trouble = trouble or _unstorable(row, index)
        if trouble is None:
            rows.append(row)
        else:
            rejected.append(ReadingRejection(index, trouble, reading_json(item)))
    return vehicle, rows, rejected


def _row(
    vehicle: str,
    item: Any,
    index: int,
    resolution: int,
    earliest: datetime,
    latest: datetime,
) -> tuple[Row, Rejection | None]:
    where = f"readings[{index}]"
    item, seq, moment, source, profile = reading_head(item, where)
    position = item.get("position")
    fix = _NO_POSITION if position is None else position_fields(position, where)
    channel_values, flagged_out = _values(item.get("values"), item.get("units"), where)
    flags = reading_flags(item, where)
    reading_channel_flags(item, where)  # the checks; the row keeps the lists as they came
    channel_flags = item.get("channel_flags", {})
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
        flags_field(flags),
        channel_flags_field(channel_flags),
        *channel_values,
    )
    return row, _range_problem(where, seq, moment, flagged_out, channel_flags, earliest, latest)


_SMALLINT = 32767
_REAL = 3.4028234663852886e38  # the largest finite float4
_FIX_COLUMNS = tuple(
    (COLUMNS.index(column), key, limit)
    for column, key, limit in (
        ("fix_quality", "quality", _SMALLINT),
        ("satellites", "satellites", _SMALLINT),
        ("hdop", "hdop", _REAL),
        ("speed_mps", "speed_mps", _REAL),
        ("course_deg", "course_deg", _REAL),
        ("fix_age_s", "age_s", _REAL),
    )
)


def _unstorable(row: Row, index: int) -> Rejection | None:
    """A fix field the contract accepts but `reading` cannot hold (smallint, real columns).
    Binary COPY would wrap or overflow it silently and text COPY would fail the whole batch
    again at every retry; rejected as `bad_type` once everything else has passed."""
    if row[FIX_VALID_AT] is None:
        return None  # no position
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
    where: str,
    seq: int,
    moment: datetime,
    outside: list[tuple[str, float]] | None,
    channel_flags: dict[str, Any],
    earliest: datetime,
    latest: datetime,
) -> Rejection | None:
    """The time first, then the first value outside its channel's range and not flagged for it
    (`outside`: such values in the message's order, flagged or not)."""
    problem = time_out_of_range(moment, earliest, latest)
    if problem is not None:
        return Rejection("time_out_of_range", f"{where} (seq {seq}): {problem}")
    for name, value in outside or ():
        if name in channel_flags:
            continue  # a flagged value is the edge's own warning: stored, kept out of analysis
        problem = value_out_of_range(name, value)
        if problem is not None:
            return Rejection("out_of_range", f"{where} (seq {seq}): {problem}")
    return None


def _number(value: Any) -> float | None:
    """A value as a finite float (None: it is not a finite number)."""
    kind = type(value)
    if kind is float:
        return None if value - value != 0.0 else value  # inf or nan
    if kind is int and -DOUBLE_MAX <= value <= DOUBLE_MAX:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, _NUMBER) or not finite(value):
        return None
    return float(value)


def _values(
    values: Any, units: Any, where: str
) -> tuple[list[float | None], list[tuple[str, float]] | None]:
    """A reading's `values` and `units` as the channel columns, and the values outside their
    channel's range (None: none). Raises WireError."""
    if not isinstance(values, dict):
        raise WireError("missing_field", f"{where}.values must be an object")
    if not isinstance(units, dict):
        raise WireError("missing_field", f"{where}.units must be an object")
    out: list[float | None] = list(_NO_VALUES)
    outside: list[tuple[str, float]] | None = None
    for name, value in values.items():
        spec = _SPECS.get(name)
        if spec is None:
            raise WireError("unknown_channel", f"{where}.values.{name}")
        column, unit, low, high = spec
        if units.get(name) != unit:
            raise WireError(
                "bad_unit",
                f"{where}.units.{name} is {units.get(name)!r}, expected {unit!r}",
            )
        if value is None:
            continue
        number = _number(value)
        if number is None:
            raise WireError("bad_type", f"{where}.values.{name} must be a number or null")
        out[column] = number
        if not low <= number <= high:
            if outside is None:
                outside = []
            outside.append((name, number))
    return out, outside


# --- the usual message, through msgspec ----------------------------------------------------------


# Every field typed and no other allowed (forbid_unknown_fields): a field the road does not know
# could hold what the checks reject (invalid UTF-8, a number beyond a double), so such a message
# goes through the checks. gc=False: decoded from JSON, they cannot be part of a reference
# cycle, so the cyclic collector need not track them.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# What `reading` can hold (smallint, real), checked by msgspec as it decodes; anything else is
# the checks' to reject (`_unstorable`).
_Small = Annotated[int, msgspec.Meta(ge=-_SMALLINT - 1, le=_SMALLINT)]
# Kept as they came, an integer as an integer, as `edge.wire.position_fields` keeps them; an
# integer beyond a signed 64 bits goes to the checks (msgspec bounds only those; orjson takes
# unsigned 64-bit integers as integers and anything larger as a float).
_Measure = (
    Annotated[int, msgspec.Meta(ge=_INT64_MIN, le=_INT64_MAX)]
    | Annotated[float, msgspec.Meta(ge=-_REAL, le=_REAL)]
)


# Optional fields default to UNSET, not None: whether a field was there is what the count of
# keys in `_fast` needs (a duplicate key leaves one field behind it).
class _Position(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    lat: Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
    lon: Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
    valid: bool
    quality: _Small | UnsetType | None = UNSET
    satellites: _Small | UnsetType | None = UNSET
    hdop: _Measure | UnsetType | None = UNSET
    speed_mps: _Measure | UnsetType | None = UNSET
    course_deg: _Measure | UnsetType | None = UNSET
    age_s: _Measure | UnsetType | None = UNSET


class _Reading(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    time: str
    time_source: Literal["gnss", "host"]
    values: dict[str, float | None]
    units: dict[str, str]
    profile: Annotated[str, msgspec.Meta(max_length=64)]
    position: _Position | UnsetType | None = UNSET
    flags: list[str] | UnsetType = UNSET
    channel_flags: dict[str, list[str]] | UnsetType = UNSET


class _Message(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    schema_version: int
    vehicle: str
    readings: Annotated[list[_Reading], msgspec.Meta(min_length=1)]


_MESSAGE = msgspec.json.Decoder(_Message)
_READING_FIELDS = len(_Reading.__struct_fields__)
_POSITION_FIELDS = len(_Position.__struct_fields__)
_MESSAGE_FIELDS = len(_Message.__struct_fields__)
# An escaped ':' in a string (\u003a) would upset the count of keys; a message with any escape
# (never one from the edge, whose strings here are plain ASCII) goes through the checks.
_ESCAPE = b"\\"


def _fast(
    payload: bytes, resolution: int, earliest: datetime, latest: datetime
) -> tuple[str, list[Row]] | None:
    """`_decode`'s result for a message msgspec takes whole and every check passes outright
    for every reading; None (the checks above decide) for anything else.

    No key twice: msgspec, like JSON parsers, keeps the last of two. Every ':' of a JSON text
    follows a key or is inside a string, so the keys of the decoded structs and dicts plus the
    ':' in their times add up to the payload's count of ':' when no key was dropped. Any other
    count (a ':' in a profile, say) goes to the checks, which find the key if there is one."""
    if _ESCAPE in payload:
        return None
    try:
        message = _MESSAGE.decode(payload)
    except Exception:  # msgspec's own errors, and UnicodeDecodeError, RecursionError on bad input
        return None  # the checks decide
    vehicle = message.vehicle
    if (
        type(message.schema_version) is not int  # a bool, which msgspec refuses anyway
        or message.schema_version != SCHEMA_VERSION
        or len(message.readings) > MAX_READINGS_PER_MESSAGE
        or not _known_vehicle(vehicle)
    ):
        return None
    rows: list[Row] = []
    keys = _MESSAGE_FIELDS
    for item in message.readings:
        made = _fast_row(vehicle, item, resolution)
        if made is None:
            return None
        row, moment, outside, item_keys = made
        if outside or not earliest <= moment <= latest:
            return None  # a reading the checks reject, with their reason and detail
        rows.append(row)
        keys += item_keys
    return (vehicle, rows) if keys == payload.count(b":") else None


def _known_vehicle(vehicle: str) -> bool:
    try:
        check_vehicle(vehicle)
    except TopicError:
        return False
    return True


def _fast_row(
    vehicle: str, item: _Reading, resolution: int
) -> tuple[Row, datetime, list[tuple[str, float]] | None, int] | None:
    """The row of one reading, its time, its values outside their range, and its keys and the
    ':' in its time (see `_fast`); None when the checks must decide."""
    try:
        moment = datetime.fromisoformat(item.time)
    except ValueError:
        return None
    profile = item.profile
    if moment.tzinfo is None or not profile.isascii() or not profile.isprintable():
        return None
    flags = item.flags
    channel_flags = item.channel_flags
    keys = _READING_FIELDS + len(item.values) + len(item.units)
    keys += item.time.count(":")
    if flags is UNSET:
        keys -= 1
        flags = []
    if channel_flags is UNSET:
        keys -= 1
        channel_flags = {}
    else:
        keys += len(channel_flags)
    if (flags or channel_flags) and not _fast_flags(flags, channel_flags):
        return None
    p = item.position
    if p is None or p is UNSET:
        fix: tuple[Any, ...] = _NO_FIX
        keys -= p is UNSET
    else:  # its ranges were checked as it was decoded (`_Position`)
        fields = astuple(p)
        absent = fields.count(UNSET)
        if absent:
            fields = tuple(None if f is UNSET else f for f in fields)
        keys += _POSITION_FIELDS - absent
        fix = (*fields, cell_of(p.lat, p.lon, resolution) if p.valid else None)
    try:
        out, outside = _values(item.values, item.units, "")
    except WireError:
        return None  # the checks will say where and why
    try:
        if moment.tzinfo is not UTC:  # "Z" gives UTC itself
            moment = moment.astimezone(UTC)
    except OverflowError:  # beyond UTC's range: the checks say so
        return None
    row = (
        vehicle,
        item.seq,
        moment,
        item.time_source,
        *fix,
        profile,
        flags_field(flags) if flags else NO_FLAGS,
        channel_flags_field(channel_flags) if channel_flags else NO_CHANNEL_FLAGS,
        *out,
    )
    return row, moment, outside, keys


def _fast_flags(flags: list[str], channel_flags: dict[str, list[str]]) -> bool:
    if flags and not READING_FLAGS.issuperset(flags):
        return False
    return not channel_flags or all(
        name in CHANNELS and CHANNEL_FLAGS.issuperset(names)
        for name, names in channel_flags.items()
    )
