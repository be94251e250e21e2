"""The v1 readings payload: what a vehicle publishes and the ingest accepts.

One message carries one or more readings of one vehicle (several when the agent catches up
after an outage). The shape is documented in docs/wire-format.md; this module is its reference
implementation, pure and shared by both sides of the broker.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from edge.errors import EnvpatrolError
from edge.topics import TopicError, check_vehicle
from edge.units import CHANNELS

SCHEMA_VERSION = 1
DOUBLE_MAX = sys.float_info.max  # an integer beyond it is no finite number
MAX_READINGS_PER_MESSAGE = 500

TimeSource = Literal["gnss", "host"]

# Reading-level quality flags. A flagged reading is stored like any other; analysis decides.
READING_FLAGS = frozenset(
    {
        "no_fix",
        "stale_fix",
        "host_time",
        "clock_corrected",
        "clock_unverified",
        "clock_clamped",
        "stationary",
        "warmup",
    }
)
# Channel-level flags, per value.
CHANNEL_FLAGS = frozenset({"sentinel", "out_of_range", "stuck", "spike", "warmup"})


class WireError(EnvpatrolError, ValueError):
    """A payload that does not follow the contract. `subject` is a short stable reason code
    (`missing_field`, `bad_vehicle`), which the ingest stores with the rejected message."""


@dataclass(frozen=True, slots=True)
class Position:
    lat: float
    lon: float
    valid: bool
    quality: int | None = None
    satellites: int | None = None
    hdop: float | None = None
    speed_mps: float | None = None
    course_deg: float | None = None
    age_s: float | None = None  # seconds between the fix and the reading


@dataclass(frozen=True, slots=True)
class Reading:
    vehicle: str
    seq: int  # per vehicle, strictly increasing, never reused
    time: datetime  # UTC; GNSS time when time_source is "gnss"
    time_source: TimeSource
    position: Position | None
    values: dict[str, float | None]
    profile: str
    flags: tuple[str, ...] = ()
    channel_flags: dict[str, tuple[str, ...]] = field(default_factory=dict)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reading_to_dict(reading: Reading) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seq": reading.seq,
        "time": format_time(reading.time),
        "time_source": reading.time_source,
        "position": None,
        "values": reading.values,
        "units": {name: CHANNELS[name].unit for name in reading.values},
        "flags": list(reading.flags),
        "channel_flags": {k: list(v) for k, v in reading.channel_flags.items()},
        "profile": reading.profile,
    }
    p = reading.position
    if p is not None:
        out["position"] = {
            "lat": round(p.lat, 7),
            "lon": round(p.lon, 7),
            "valid": p.valid,
            "quality": p.quality,
            "satellites": p.satellites,
            "hdop": p.hdop,
            "speed_mps": None if p.speed_mps is None else round(p.speed_mps, 2),
            "course_deg": None if p.course_deg is None else round(p.course_deg, 1),
            "age_s": None if p.age_s is None else round(p.age_s, 2),
        }
    return out


def encode_message(vehicle: str, readings: list[Reading]) -> bytes:
    """One MQTT payload for readings of one vehicle, oldest first."""
    if not readings:
        raise ValueError("a message carries at least one reading")
    doc = {
        "schema_version": SCHEMA_VERSION,
        "vehicle": vehicle,
        "readings": [reading_to_dict(r) for r in readings],
    }
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def decode_message(payload: bytes, loads: Any = json.loads) -> tuple[str, list[Reading]]:
    """Parse and check one payload. Raises WireError with a stable reason code.

    `loads` may be a faster JSON parser with the same contract (orjson.loads on servers).
    """
    vehicle, items = decode_envelope(payload, loads)
    return vehicle, [decode_reading(vehicle, item, i) for i, item in enumerate(items)]


def _json_dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def parse_object(
    payload: bytes, loads: Any = json.loads, dumps: Callable[[Any], bytes] = _json_dumps
) -> dict[str, Any]:
    """A payload as one JSON object with no key twice in any object. Raises WireError
    (`malformed_json`, `not_an_object`, `duplicate_key`), never anything else."""
    try:
        doc = loads(payload)
    except Exception as exc:  # ValueError, RecursionError on deep nesting, MemoryError
        raise WireError("malformed_json", f"{type(exc).__name__}: {exc}"[:200]) from exc
    if not isinstance(doc, dict):
        raise WireError("not_an_object", "the payload must be a JSON object")
    check_unique_keys(payload, doc, dumps)
    return doc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise WireError("duplicate_key", f"key {key[:64]!r} appears twice in one object")
            seen.add(key)
    return doc


def check_unique_keys(
    payload: bytes, doc: Any, dumps: Callable[[Any], bytes] = _json_dumps
) -> None:
    """No key twice in one object of `payload`, given `doc`, the payload as parsed (where the
    last of the two won, as JSON parsers do). Raises WireError (`duplicate_key`).

    Every ':' of a JSON text is a key's or inside a string, so `doc` written again has as many
    as `payload` unless a parser dropped a pair. An escaped ':' (\\u003a) breaks that count,
    and a mismatch can have other causes (a payload in UTF-16, say): then the exact check, the
    standard parser with a hook on every object, decides."""
    if b"\\u003" not in payload:
        try:
            again = dumps(doc)
        except Exception:  # a value the writer cannot write: the exact check decides
            again = b""
        if again.count(b":") == payload.count(b":"):
            return
    try:
        json.loads(payload, object_pairs_hook=_no_duplicates)
    except WireError:
        raise
    except Exception as exc:  # what `loads` took but the standard parser does not
        raise WireError("malformed_json", f"{type(exc).__name__}: {exc}"[:200]) from exc


def check_schema_version(version: Any) -> None:
    """The integer 1: not `true`, not `1.0`. Raises WireError."""
    if type(version) is not int or version != SCHEMA_VERSION:
        raise WireError(
            "schema_version", f"expected schema_version {SCHEMA_VERSION}, got {version!r}"[:200]
        )


def decode_envelope(
    payload: bytes, loads: Any = json.loads, dumps: Callable[[Any], bytes] = _json_dumps
) -> tuple[str, list[Any]]:
    """The message around the readings: JSON, schema version, vehicle, the list of readings
    (each still to be checked). Raises WireError. `dumps` writes JSON again (orjson.dumps on
    servers), for the duplicate key check."""
    doc = parse_object(payload, loads, dumps)
    check_schema_version(doc.get("schema_version"))
    vehicle = doc.get("vehicle")
    if not isinstance(vehicle, str):
        raise WireError("missing_field", "vehicle must be a string")
    try:
        check_vehicle(vehicle)
    except TopicError as exc:
        raise WireError("bad_vehicle", str(exc)) from exc
    items = doc.get("readings")
    if not isinstance(items, list) or not items:
        raise WireError("missing_field", "readings must be a non-empty list")
    if len(items) > MAX_READINGS_PER_MESSAGE:
        raise WireError("too_many_readings", f"{len(items)} > {MAX_READINGS_PER_MESSAGE}")
    return vehicle, items


def reading_head(item: Any, where: str) -> tuple[dict[str, Any], int, datetime, TimeSource, str]:
    """The first checks of one reading object: (the object, seq, time, time_source, profile).
    Raises WireError."""
    if not isinstance(item, dict):
        raise WireError("bad_type", f"{where} must be an object")
    seq = item.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
        raise WireError("bad_type", f"{where}.seq must be a non-negative integer")
    moment = _time(item.get("time"), where)
    source = item.get("time_source")
    if source not in ("gnss", "host"):
        raise WireError("bad_type", f"{where}.time_source must be 'gnss' or 'host'")
    profile = item.get("profile")
    # Printable: no NUL or other control character, which a database text column refuses.
    if not isinstance(profile, str) or len(profile) > 64 or not profile.isprintable():
        raise WireError("bad_type", f"{where}.profile must be a short printable string")
    return item, seq, moment, source, profile


def decode_reading(vehicle: str, item: Any, index: int) -> Reading:
    """Reading `index` of a message of `vehicle` (an item of `decode_envelope`'s list).
    Raises WireError."""
    where = f"readings[{index}]"
    item, seq, moment, source, profile = reading_head(item, where)
    return Reading(
        vehicle=vehicle,
        seq=seq,
        time=moment,
        time_source=source,
        position=_position(item.get("position"), where),
        values=_values(item, where),
        profile=profile,
        flags=reading_flags(item, where),
        channel_flags=reading_channel_flags(item, where),
    )


def _values(item: dict[str, Any], where: str) -> dict[str, float | None]:
    values = item.get("values")
    if not isinstance(values, dict):
        raise WireError("missing_field", f"{where}.values must be an object")
    units = item.get("units")
    if not isinstance(units, dict):
        raise WireError("missing_field", f"{where}.units must be an object")
    clean: dict[str, float | None] = {}
    for name, value in values.items():
        spec = CHANNELS.get(name)
        if spec is None:
            raise WireError("unknown_channel", f"{where}.values.{name}")
        if units.get(name) != spec.unit:
            raise WireError(
                "bad_unit", f"{where}.units.{name} is {units.get(name)!r}, expected {spec.unit!r}"
            )
        if value is None:
            clean[name] = None
        elif isinstance(value, bool) or not isinstance(value, int | float) or not finite(value):
            raise WireError("bad_type", f"{where}.values.{name} must be a number or null")
        else:
            clean[name] = float(value)
    return clean


def reading_flags(item: dict[str, Any], where: str) -> tuple[str, ...]:
    flags = item.get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise WireError("bad_type", f"{where}.flags must be a list of strings")
    unknown = set(flags) - READING_FLAGS
    if unknown:
        raise WireError("unknown_flag", f"{where}.flags: {sorted(unknown)}")
    return tuple(flags)


def reading_channel_flags(item: dict[str, Any], where: str) -> dict[str, tuple[str, ...]]:
    channel_flags = item.get("channel_flags", {})
    if not isinstance(channel_flags, dict):
        raise WireError("bad_type", f"{where}.channel_flags must be an object")
    cflags: dict[str, tuple[str, ...]] = {}
    for name, names in channel_flags.items():
        if name not in CHANNELS or not isinstance(names, list):
            raise WireError("bad_type", f"{where}.channel_flags.{name}")
        if not all(isinstance(n, str) and n in CHANNEL_FLAGS for n in names):
            raise WireError("unknown_flag", f"{where}.channel_flags.{name}: {names}")
        cflags[name] = tuple(names)
    return cflags


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise WireError("bad_time", f"{where}.time must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise WireError("bad_time", f"{where}.time {value[:40]!r} is not ISO 8601") from exc
    if moment.tzinfo is None:
        raise WireError("bad_time", f"{where}.time {value[:40]!r} has no UTC offset")
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise WireError("bad_time", f"{where}.time {value[:40]!r} is beyond UTC's range") from exc


def finite(value: int | float) -> bool:
    """A finite number (an integer beyond a double's range is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _number(doc: dict[str, Any], key: str, where: str, *, integer: bool = False) -> Any:
    value = doc.get(key)
    if value is None:
        return None
    kind = type(value)
    if (kind is int and -DOUBLE_MAX <= value <= DOUBLE_MAX) or (
        kind is float and not integer and value - value == 0.0
    ):
        return value  # the usual case (a finite float is its own difference's zero)
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not finite(value):
        raise WireError("bad_type", f"{where}.position.{key} must be a number or null")
    return value


def position_fields(value: Any, where: str) -> tuple[Any, ...]:
    """A reading's position object checked, as Position's fields in order (lat, lon, valid,
    quality, satellites, hdop, speed_mps, course_deg, age_s). Raises WireError."""
    if not isinstance(value, dict):
        raise WireError("bad_type", f"{where}.position must be an object or null")
    lat = _number(value, "lat", where)
    lon = _number(value, "lon", where)
    if lat is None or lon is None:
        raise WireError("bad_position", f"{where}.position needs lat and lon")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise WireError("bad_position", f"{where}.position ({lat}, {lon}) is not on Earth")
    valid = value.get("valid")
    if not isinstance(valid, bool):
        raise WireError("bad_type", f"{where}.position.valid must be true or false")
    return (
        float(lat),
        float(lon),
        valid,
        _number(value, "quality", where, integer=True),
        _number(value, "satellites", where, integer=True),
        _number(value, "hdop", where),
        _number(value, "speed_mps", where),
        _number(value, "course_deg", where),
        _number(value, "age_s", where),
    )


def _position(value: Any, where: str) -> Position | None:
    return None if value is None else Position(*position_fields(value, where))
