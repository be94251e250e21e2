"""Hostile vehicle traffic: readings, status and health messages a broken or malicious vehicle
could publish, drawn from a `random.Random` so a corpus is repeatable from its seed.

What a message may carry: times at the ends of the calendar with offsets, NUL and other control
characters, unpaired surrogates, integers no double or bigint holds, NaN and Infinity tokens,
deep nesting, unicode identifiers, wrong types, duplicate keys, wrong versions and vehicles,
topic levels that are no vehicle id, payloads over the size limit, and messages mixing good
readings with bad ones. Pure: a message is data (`HostileMessage`), publishing it is the
caller's business. Every topic is one a broker accepts (no control character or non-character:
Mosquitto disconnects a client that publishes one) and that `envpatrol/v1/+/{kind}` matches,
so the ingest receives it.

The generator is seeded rather than written as property-test strategies so that benchmarks can
use it too; tests drive it with hypothesis' `randoms()`, whose draws shrink.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from edge.units import CHANNELS
from edge.wire import MAX_READINGS_PER_MESSAGE

__all__ = [
    "HostileMessage",
    "Pairs",
    "Raw",
    "document_message",
    "dump",
    "good_reading",
    "hostile_message",
    "readings_message",
]

# Over the ingest's default payload limit (ingest.validate.MAX_PAYLOAD_BYTES, 256 KiB).
OVERSIZED_BYTES = 300 * 1024


@dataclass(frozen=True, slots=True)
class Raw:
    """JSON text written as it is: tokens no encoder writes (NaN, 1e999, deep nesting)."""

    text: str


@dataclass(frozen=True, slots=True)
class Pairs:
    """An object written with its pairs as given, a key twice if so."""

    pairs: tuple[tuple[Any, Any], ...]


@dataclass(frozen=True, slots=True)
class HostileMessage:
    """One message as published: its topic, payload, and what was done to it (`kind`, e.g.
    `reading:time` or `document:nul`); `readings` is how many readings it holds, 0 for a
    status or health document or a payload that is not a readings list."""

    topic: str
    payload: bytes
    kind: str
    readings: int = 0


def dump(value: Any, ascii_only: bool = True) -> str:
    """JSON text of `value`, with `Raw` and `Pairs` written as they are."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs):
        inner = ",".join(f"{dump(k, ascii_only)}:{dump(v, ascii_only)}" for k, v in value.pairs)
        return "{" + inner + "}"
    if isinstance(value, dict):
        return dump(Pairs(tuple(value.items())), ascii_only)
    if isinstance(value, list):
        return "[" + ",".join(dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def _encode(value: Any, rng: random.Random) -> bytes:
    # surrogatepass: an unpaired surrogate written raw is bytes no UTF-8 decoder takes
    return dump(value, rng.random() < 0.5).encode("utf-8", "surrogatepass")


CALENDAR_EDGES = (
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00.000+23:59",
    "9999-12-31T23:59:59.999999-23:59",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "1999-12-31T23:59:59.999Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "noon",
    "",
)
HUGE_NUMBERS = (
    "1" + "0" * 400,
    "-" + "9" * 30,
    "18446744073709551616",
    "9223372036854775808",
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e-999",
    "-0",
    "1e308",
)
CONTROLS = ("\x00", "\x01", "\x1b", "\x7f", "\u0085", "\u2028", "\ufeff", "\ud800", "\udfff")
UNICODE = ("é", "Ç", "车", "патруль", "\U0001f697", "ｃａｒ", "\u202e", "\u0301")
# Topic levels `+` matches that are no vehicle id; all are valid MQTT topic text.
BAD_LEVELS = ("Car_Upper!", "ÇAR-1", "car 1", "车-01", "x" * 65, "", "car-1\u202e", "a:b")


def hostile_text(rng: random.Random) -> str:
    """A short string of control characters, surrogates, unicode and letters."""
    pool = (*CONTROLS, *UNICODE, "a", "-", ".", "_", " ")
    return "".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))


def _deep(rng: random.Random) -> Raw:
    depth = rng.choice((2, 64, 1025, 5000))  # JSON parsers stop at 1024 or so
    return Raw("[" * depth + "]" * depth)


_VALUES: tuple[Callable[[random.Random], Any], ...] = (
    lambda rng: Raw(rng.choice(HUGE_NUMBERS)),
    lambda rng: Raw(str(rng.randint(-(2**200), 2**200))),
    _deep,
    hostile_text,
    lambda rng: rng.choice((None, True, False)),
    lambda rng: [rng.randint(-5, 5)],
    lambda rng: {hostile_text(rng): 1},
    lambda rng: rng.uniform(-1e6, 1e6),
    lambda rng: rng.randint(-(2**70), 2**70),
)


def hostile_value(rng: random.Random) -> Any:
    """A value of a hostile kind: a huge or non-finite number, deep nesting, or a wrong type."""
    return rng.choice(_VALUES)(rng)


def hostile_time(rng: random.Random, now: datetime) -> str:
    """A calendar edge, or a moment anywhere in the calendar written with an offset."""
    if rng.random() < 0.5:
        return rng.choice(CALENDAR_EDGES)
    offset = timedelta(minutes=rng.randint(-1439, 1439))
    moment = datetime(1, 1, 1) + timedelta(seconds=rng.uniform(0, 315_537_897_599))
    if rng.random() < 0.3:  # near now: inside or just outside the ingest's window
        moment = now.replace(tzinfo=None) + timedelta(seconds=rng.uniform(-3600, 3600))
    return moment.isoformat() + _offset_text(offset)


def _offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def good_reading(seq: int, moment: datetime) -> dict[str, Any]:
    """A reading every check passes, at `moment` (UTC)."""
    return {
        "seq": seq,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
        "time_source": "gnss",
        "position": {
            "lat": 39.9,
            "lon": 116.4 + 0.0004 * (seq % 200),
            "valid": True,
            "quality": 1,
            "satellites": 9,
            "hdop": 0.9,
            "speed_mps": 5.0,
            "course_deg": 90.0,
            "age_s": 0.4,
        },
        "values": {"pm25": 20.0 + seq % 17, "noise": 61.5},
        "units": {"pm25": CHANNELS["pm25"].unit, "noise": CHANNELS["noise"].unit},
        "flags": [],
        "channel_flags": {},
        "profile": "default-multi",
    }


# What may be done to one reading; `seq` is left alone except to make it invalid, so the seqs
# of a message's readings stay distinct and each stored reading names its message.
READING_HOSTILITIES = (
    "time",
    "seq",
    "field",
    "position",
    "value",
    "channel",
    "profile",
    "flag key",
    "flags",
    "duplicate key",
    "not an object",
)
BAD_SEQS = (-1, 2**63, 1.5, "7", True, None, Raw("1e999"), Raw("NaN"), [1])


def bad_reading(rng: random.Random, seq: int, moment: datetime) -> tuple[Any, str]:
    """A reading with one hostility, and its name."""
    reading: dict[str, Any] = good_reading(seq, moment)
    how = rng.choice(READING_HOSTILITIES)
    if how == "time":
        reading["time"] = hostile_time(rng, moment)
    elif how == "seq":
        reading["seq"] = rng.choice(BAD_SEQS)
    elif how == "field":
        key = rng.choice(sorted(set(reading) - {"seq"}))
        reading[key] = hostile_value(rng)
    elif how == "position":
        reading["position"][rng.choice(sorted(reading["position"]))] = hostile_value(rng)
    elif how == "value":
        reading["values"][rng.choice(["pm25", "noise"])] = hostile_value(rng)
    elif how == "channel":
        name = rng.choice([hostile_text(rng), rng.choice(sorted(CHANNELS))])
        reading["values"][name] = 1.0
        reading["units"][name] = rng.choice([hostile_text(rng), "ug/m3"])
    elif how == "profile":
        reading["profile"] = rng.choice([hostile_text(rng), "x" * 65, "default\x00multi"])
    elif how == "flag key":
        reading["channel_flags"] = {hostile_text(rng): ["spike"]}
    elif how == "flags":
        reading["flags"] = [rng.choice([hostile_text(rng), "no_fix\x00"])]
    elif how == "duplicate key":
        key = rng.choice(sorted(reading))
        pairs = [*reading.items(), (key, reading[key])]
        rng.shuffle(pairs)
        return Pairs(tuple(pairs)), how
    else:
        return rng.choice([[], "reading", 7, None]), how
    return reading, how


# With their weights: an oversized message or one of too many readings is a few hundred KB, so
# one in five hundred; most messages are hostile inside, in their readings.
ENVELOPE_HOSTILITIES = {
    "none": 60,
    "version": 5,
    "vehicle": 5,
    "duplicate key": 5,
    "extra": 5,
    "not json": 5,
    "topic": 5,
    "oversized": 0.2,
    "too many": 0.2,
}


def readings_message(
    rng: random.Random, vehicle: str, now: datetime, root: str = "envpatrol"
) -> HostileMessage:
    """A readings message of `vehicle` with seqs from 0, good readings mixed with bad ones (or
    all good, when only its envelope is hostile)."""
    topic = f"{root}/v1/{vehicle}/readings"
    envelope_how = rng.choices(list(ENVELOPE_HOSTILITIES), list(ENVELOPE_HOSTILITIES.values()))[0]
    if envelope_how == "too many":
        n = MAX_READINGS_PER_MESSAGE + 1
    else:
        n = rng.choice((1, 1, 1, 2, 3, 5, 8, 50))
    readings: list[Any] = []
    kinds: list[str] = []
    bad_share = rng.choice((0.0, 0.2, 0.5, 1.0))
    for seq in range(n):
        moment = now - timedelta(seconds=10 * (n - seq))
        if rng.random() < bad_share:
            reading, how = bad_reading(rng, seq, moment)
            kinds.append(how)
            readings.append(reading)
        else:  # written once here: most readings are good ones, and `dump` is slow
            readings.append(Raw(json.dumps(good_reading(seq, moment))))
    if envelope_how == "not json":
        payload = rng.choice(
            [b"\x00\xff not json", b"", b"{", b"[]", b"null", b'"\xed\xa0\x80"', b"{}" * 3]
        )
        return HostileMessage(topic, payload, "envelope:not json")
    if envelope_how == "topic":
        topic = f"{root}/v1/{rng.choice(BAD_LEVELS)}/readings"
    envelope = _envelope(rng, envelope_how, vehicle, readings)
    kind = f"envelope:{envelope_how}" if envelope_how != "none" else "readings:mixed"
    if kinds and envelope_how == "none":
        kind = "reading:" + rng.choice(kinds)  # one of them names the message
    return HostileMessage(topic, _encode(Pairs(tuple(envelope)), rng), kind, n)


def _envelope(
    rng: random.Random, how: str, vehicle: str, readings: list[Any]
) -> list[tuple[Any, Any]]:
    """The envelope of `readings` with the hostility `how`."""
    envelope: list[tuple[Any, Any]] = [
        ("schema_version", 1),
        ("vehicle", vehicle),
        ("readings", readings),
    ]
    if how == "version":
        envelope[0] = ("schema_version", rng.choice([True, 1.0, "1", Raw("1e0"), 2, None]))
    elif how == "vehicle":
        envelope[1] = ("vehicle", rng.choice([hostile_text(rng), f"{vehicle}\n", "car-x", 7]))
    elif how == "duplicate key":
        envelope.insert(rng.randrange(len(envelope) + 1), rng.choice(envelope))
    elif how == "extra":
        envelope.append((hostile_text(rng), hostile_value(rng)))
    elif how == "oversized":
        envelope.append(("padding", "x" * OVERSIZED_BYTES))
    return envelope


DOCUMENT_HOSTILITIES = (
    "nul",
    "control",
    "surrogate",
    "huge number",
    "non-finite",
    "deep",
    "duplicate key",
    "version",
    "vehicle",
    "not an object",
    "none",
)


def document_message(
    rng: random.Random, vehicle: str, kind: str, now: datetime, root: str = "envpatrol"
) -> HostileMessage:
    """A status or health document (`kind`) of `vehicle` with one hostility, or none."""
    topic = f"{root}/v1/{vehicle}/{kind}"
    doc: list[tuple[Any, Any]] = [
        ("schema_version", 1),
        ("vehicle", vehicle),
        ("time", now.isoformat()),
        ("state" if kind == "status" else "readings", "online" if kind == "status" else 12),
    ]
    how = rng.choice(DOCUMENT_HOSTILITIES)
    nested = rng.random() < 0.5  # deep in the document, or at its top level
    value: Any = None
    if how in ("nul", "control", "surrogate"):
        char = {"nul": "\x00", "control": rng.choice(CONTROLS), "surrogate": "\ud800"}[how]
        text = f"a{char}b"
        doc.append((text, 1) if rng.random() < 0.5 else ("note", text))
    elif how == "huge number":
        value = Raw(rng.choice(HUGE_NUMBERS[:4]))
    elif how == "non-finite":
        value = Raw(rng.choice(("NaN", "Infinity", "-Infinity", "1e999")))
    elif how == "deep":
        depth = rng.choice((64, 1025, 5000))
        value = Raw("[" * depth + "]" * depth)
    elif how == "duplicate key":
        doc.append(rng.choice(doc))
    elif how == "version":
        doc[0] = ("schema_version", rng.choice([True, 1.0, "1", 2]))
    elif how == "vehicle":
        doc[1] = ("vehicle", rng.choice([f"{vehicle}-other", f"{vehicle}\n", hostile_text(rng)]))
    elif how == "not an object":
        return HostileMessage(topic, rng.choice([b"[1]", b"7", b"null", b"\xff"]), f"{kind}:{how}")
    if value is not None:
        doc.append(("box", Pairs((("x", [value]),))) if nested else ("x", value))
    return HostileMessage(topic, _encode(Pairs(tuple(doc)), rng), f"{kind}:{how}")


def hostile_message(
    rng: random.Random, vehicle: str, now: datetime, root: str = "envpatrol"
) -> HostileMessage:
    """A hostile message of `vehicle`: readings (three in four), or a status or health
    document."""
    pick = rng.random()
    if pick < 0.75:
        return readings_message(rng, vehicle, now, root)
    return document_message(rng, vehicle, "status" if pick < 0.875 else "health", now, root)
