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
is left (units, known channels and flags, finite numbers, the time) is checked in Python. That
road only accepts: at the first thing it does not take as it is, even something the checks
below would accept, it gives up and the message goes through the checks below, which alone
decide what is rejected and why. What it accepts gives the very rows the checks below give.

Pure: bytes in, rows or a `Rejection` out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import orjson

from edge.topics import TopicError, Topics, check_vehicle
from edge.units import CHANNELS
from edge.wire import (
    CHANNEL_FLAGS,
    MAX_READINGS_PER_MESSAGE,
    READING_FLAGS,
    SCHEMA_VERSION,
    WireError,
    decode_envelope,
    position_fields,
    reading_channel_flags,
    reading_flags,
    reading_head,
)
from ingest.columns import NO_CHANNEL_FLAGS, NO_FLAGS, channel_flags_field, flags_field
from ingest.validate import (
    Limits,
    Rejection,
    time_out_of_range,
    value_out_of_range,
    vehicle_mismatch,
    vehicle_of_topic,
)
from ingest.writer import cell_of
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
) -> list[Row] | Rejection:
    """The rows of one readings message (cells at `resolution`), or why it is rejected."""
    topic_vehicle = vehicle_of_topic(topics, topic, payload, limits)
    if isinstance(topic_vehicle, Rejection):
        return topic_vehicle
    latest = (now or datetime.now(UTC)) + limits.max_future
    fast = _fast(payload, resolution, limits.earliest, latest)
    storable = fast is not None  # the fast road takes only fixes `reading` can hold
    if fast is not None:
        vehicle, rows, problem = fast
    else:
        try:
            vehicle, rows, problem = _decode(payload, loads, resolution, limits.earliest, latest)
        except WireError as exc:
            return Rejection(exc.subject, exc.problem)
    mismatch = vehicle_mismatch(vehicle, topic_vehicle)
    if mismatch is not None:
        return mismatch
    if problem is not None:
        return problem
    return rows if storable else _unstorable(rows) or rows


def _decode(
    payload: bytes,
    loads: Callable[[bytes], Any],
    resolution: int,
    earliest: datetime,
    latest: datetime,
) -> tuple[str, list[Row], Rejection | None]:
    """Wire checks of every reading first (they win over range checks, as in edge.wire, where
    the range checks run on decoded readings); the first range problem is kept aside."""
    vehicle, items = decode_envelope(payload, loads)
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


def _unstorable(rows: list[Row]) -> Rejection | None:
    """A fix field the contract accepts but `reading` cannot hold (smallint, real columns).
    Binary COPY would wrap or overflow it silently and text COPY would fail the whole batch
    again at every retry; rejected as `bad_type` once everything else has passed."""
    for index, row in enumerate(rows):
        if row[FIX_VALID_AT] is None:
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
        kind = type(value)
        if kind is float:
            if value - value != 0.0:  # inf or nan
                raise WireError("bad_type", f"{where}.values.{name} must be a number or null")
        elif kind is not int and (
            isinstance(value, bool) or not isinstance(value, _NUMBER) or not math.isfinite(value)
        ):
            raise WireError("bad_type", f"{where}.values.{name} must be a number or null")
        number = value if kind is float else float(value)
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


class _Position(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    lat: Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
    lon: Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
    valid: bool
    quality: _Small | None = None
    satellites: _Small | None = None
    hdop: _Measure | None = None
    speed_mps: _Measure | None = None
    course_deg: _Measure | None = None
    age_s: _Measure | None = None


class _Reading(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    time: str
    time_source: Literal["gnss", "host"]
    values: dict[str, float | None]
    units: dict[str, str]
    profile: Annotated[str, msgspec.Meta(max_length=64)]
    position: _Position | None = None
    flags: list[str] = []
    channel_flags: dict[str, list[str]] = {}


class _Message(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    schema_version: int
    vehicle: str
    readings: Annotated[list[_Reading], msgspec.Meta(min_length=1)]


_MESSAGE = msgspec.json.Decoder(_Message)


def _fast(
    payload: bytes, resolution: int, earliest: datetime, latest: datetime
) -> tuple[str, list[Row], Rejection | None] | None:
    """`_decode`'s result for a message msgspec takes whole and every check passes outright;
    None (the checks above decide) for anything else."""
    try:
        message = _MESSAGE.decode(payload)
    except Exception:  # msgspec's own errors, and UnicodeDecodeError, RecursionError on bad input
        return None  # the checks decide
    vehicle = message.vehicle
    if message.schema_version != SCHEMA_VERSION or len(message.readings) > MAX_READINGS_PER_MESSAGE:
        return None
    try:
        check_vehicle(vehicle)
    except TopicError:
        return None
    rows: list[Row] = []
    problem: Rejection | None = None
    for index, item in enumerate(message.readings):
        made = _fast_row(vehicle, item, resolution)
        if made is None:
            return None
        row, moment, outside = made
        rows.append(row)
        if problem is None and (outside or not earliest <= moment <= latest):
            where = f"readings[{index}]"
            problem = _range_problem(
                where, item.seq, moment, outside, item.channel_flags, earliest, latest
            )
    return vehicle, rows, problem


def _fast_row(
    vehicle: str, item: _Reading, resolution: int
) -> tuple[Row, datetime, list[tuple[str, float]] | None] | None:
    try:
        moment = datetime.fromisoformat(item.time)
    except ValueError:
        return None
    if moment.tzinfo is None or not item.profile.isascii():
        return None
    if (item.flags or item.channel_flags) and not _fast_flags(item):
        return None
    p = item.position
    if p is None:
        fix: tuple[Any, ...] = _NO_FIX
    else:  # its ranges were checked as it was decoded (`_Position`)
        cell = cell_of(p.lat, p.lon, resolution) if p.valid else None
        fix = (p.lat, p.lon, p.valid, p.quality, p.satellites, p.hdop, p.speed_mps)
        fix += (p.course_deg, p.age_s, cell)
    try:
        out, outside = _values(item.values, item.units, "")
    except WireError:
        return None  # the checks will say where and why
    if moment.tzinfo is not UTC:  # "Z" gives UTC itself
        moment = moment.astimezone(UTC)
    row = (
        vehicle,
        item.seq,
        moment,
        item.time_source,
        *fix,
        item.profile,
        flags_field(item.flags) if item.flags else NO_FLAGS,
        channel_flags_field(item.channel_flags) if item.channel_flags else NO_CHANNEL_FLAGS,
        *out,
    )
    return row, moment, outside


def _fast_flags(item: _Reading) -> bool:
    if item.flags and not READING_FLAGS.issuperset(item.flags):
        return False
    return not item.channel_flags or all(
        name in CHANNELS and CHANNEL_FLAGS.issuperset(names)
        for name, names in item.channel_flags.items()
    )
