"""NMEA 0183 sentences as records: the fields of RMC, GGA, GNS, GSA, GLL, VTG and ZDA, checked.

pynmea2 names the fields; turning them into numbers is ours, so that every numeric field is held
to what it can mean (a damaged sentence whose checksum happens to fit is refused here rather than
carried into a reading the ingest would then refuse) and a leap second (23:59:60) is a time like
any other. A record says what one sentence said and nothing more: combining the sentences of one
epoch is edge.epoch's work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pynmea2

from edge.errors import EnvpatrolError

__all__ = [
    "ALTITUDE_M",
    "DAY_US",
    "KINDS",
    "KNOT_MPS",
    "MAX_HDOP",
    "MAX_QUALITY",
    "MAX_SATELLITES",
    "MAX_SPEED_KNOTS",
    "POSITION_KINDS",
    "TALKERS",
    "DateField",
    "FixError",
    "Record",
    "checksum",
    "parse_sentence",
]

KNOT_MPS = 1852.0 / 3600.0
# GP GPS, GL GLONASS, GA Galileo, GB and BD BeiDou (NMEA 4.10 and the Chinese standard), GQ QZSS,
# GI NavIC, GN a combined solution, IN an integrated (inertial-aided) navigation system.
TALKERS = frozenset({"GP", "GL", "GA", "GB", "BD", "GN", "GQ", "GI", "IN"})
KINDS = frozenset({"RMC", "GGA", "GNS", "GSA", "GLL", "VTG", "ZDA"})
# The kinds that report a position, and so can say "no fix" on their own.
POSITION_KINDS = frozenset({"RMC", "GGA", "GNS", "GLL"})

# What the numeric fields can mean. GGA quality is 0..8 in NMEA 4.10 (9 is kept for receivers
# that number WAAS separately); satellites are two digits; receivers report an HDOP of 99.99
# when they have no fix; the altitude spans below the Dead Sea shore to above any road; speed
# stops at 1000 knots, the export-control limit above which receivers stop reporting.
MAX_QUALITY = 9
MAX_SATELLITES = 99
MAX_HDOP = 99.99
ALTITUDE_M = (-1_000.0, 20_000.0)
MAX_SPEED_KNOTS = 1000.0
DAY_US = 86_400_000_000  # a day in microseconds; a time of day at or past it is a leap second

_NUMBER = re.compile(r"\A-?(\d+\.?\d*|\.\d+)\Z")
_UNSIGNED = re.compile(r"\A(\d+\.?\d*|\.\d+)\Z")
_TIME = re.compile(r"\A(\d\d)(\d\d)(\d\d)(\.\d+)?\Z")
_MODES = frozenset("ADEFMNPRSCUV")


def checksum(body: str) -> int:
    """XOR of every character between '$' and '*'."""
    value = 0
    for char in body.encode("ascii"):
        value ^= char
    return value


class FixError(EnvpatrolError, ValueError):
    """A checksummed sentence whose fields make no sense; `subject` quotes the sentence."""

    def __init__(self, sentence: str, problem: str) -> None:
        super().__init__(repr(sentence), problem)


@dataclass(frozen=True, slots=True)
class DateField:
    """A date as the sentence wrote it: RMC's two-digit year or ZDA's four-digit one."""

    year: int
    month: int
    day: int
    two_digit_year: bool


@dataclass(frozen=True, slots=True)
class Record:
    """What one sentence said; None wherever it said nothing."""

    kind: str
    talker: str
    time_us: int | None  # UTC time of day in microseconds; a leap second reads 86_400_000_000 on
    valid: bool | None  # this sentence's voice on validity; None when it has none
    date: DateField | None = None
    lat: float | None = None
    lon: float | None = None
    speed_mps: float | None = None
    course_deg: float | None = None
    quality: int | None = None  # GGA fix quality
    mode: str = ""  # mode indicator letters (RMC, GLL, VTG: one; GNS: one per constellation)
    satellites: int | None = None
    hdop: float | None = None
    altitude_m: float | None = None
    fix_type: int | None = None  # GSA: 1 no fix, 2 2D, 3 3D


def parse_sentence(sentence: str) -> Record:
    """The record of one framed sentence (`$...` with or without its `*hh`), or FixError."""
    star = sentence.rfind("*")
    body = sentence[1:star] if star > 0 else sentence[1:]
    try:
        msg = pynmea2.parse("$" + body, check=False)
    except (pynmea2.ParseError, ValueError, AttributeError) as exc:
        raise FixError(sentence, f"unparseable: {exc}") from exc
    kind = getattr(msg, "sentence_type", "")
    talker = getattr(msg, "talker", "")
    if kind not in KINDS or talker not in TALKERS:
        raise FixError(sentence, f"not a sentence of ours: {talker}{kind}")
    fields = _Fields(sentence, msg)
    return _PARSERS[kind](fields, talker)


class _Fields:
    """A sentence's fields by pynmea2's names, as text ('' when absent)."""

    def __init__(self, sentence: str, msg: pynmea2.NMEASentence) -> None:
        self.sentence = sentence
        self._data: list[str] = list(msg.data)
        self._index: dict[str, int] = msg.name_to_idx

    def text(self, name: str) -> str:
        index = self._index[name]
        return self._data[index].strip() if index < len(self._data) else ""

    def fail(self, problem: str) -> FixError:
        return FixError(self.sentence, problem)

    def time(self, name: str = "timestamp") -> int | None:
        value = self.text(name)
        if not value:
            return None
        match = _TIME.match(value)
        if match is None:
            raise self.fail(f"bad time {value!r}")
        hours, minutes, seconds = (int(match[i]) for i in (1, 2, 3))
        leap = (hours, minutes, seconds) == (23, 59, 60)
        if hours > 23 or minutes > 59 or (seconds > 59 and not leap):
            raise self.fail(f"bad time {value!r}")
        fraction = match[4] or ".0"
        micros = int((fraction[1:] + "000000")[:6])
        return ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros

    def number(self, name: str, low: float, high: float, *, signed: bool = False) -> float | None:
        value = self.text(name)
        if not value:
            return None
        if not (_NUMBER if signed else _UNSIGNED).match(value):
            raise self.fail(f"{name} is not a number: {value!r}")
        number = float(value)
        if not low <= number <= high:
            raise self.fail(f"{name} {value} out of range {low}..{high}")
        return number

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self.text(name)
        if not value:
            return None
        if not value.isdigit() or not value.isascii():
            raise self.fail(f"{name} is not an integer: {value!r}")
        number = int(value)
        if not low <= number <= high:
            raise self.fail(f"{name} {value} out of range {low}..{high}")
        return number

    def position(self) -> tuple[float | None, float | None]:
        lat = self._angle("lat", "lat_dir", 90, "NS")
        lon = self._angle("lon", "lon_dir", 180, "EW")
        if (lat is None) != (lon is None):
            raise self.fail("half a position")
        return lat, lon

    def _angle(self, name: str, hemisphere: str, limit: int, letters: str) -> float | None:
        value, side = self.text(name), self.text(hemisphere)
        if not value and not side:
            return None
        if not _UNSIGNED.match(value) or side not in letters or len(side) != 1:
            raise self.fail(f"bad {name} {value!r} {side!r}")
        number = float(value)
        degrees = int(number // 100)
        minutes = number - degrees * 100
        angle = degrees + minutes / 60.0
        if minutes >= 60.0 or angle > limit:
            raise self.fail(f"{name} {value} out of range")
        return -angle if side == letters[1] else angle

    def status(self, name: str) -> bool | None:
        value = self.text(name)
        if value in ("A", "V"):
            return value == "A"
        if not value:
            return None
        raise self.fail(f"bad status {value!r}")

    def mode(self, name: str, *, many: bool = False) -> str:
        value = self.text(name)
        if not set(value) <= _MODES or (not many and len(value) > 1):
            raise self.fail(f"bad mode {value!r}")
        return value


def _speed(fields: _Fields, name: str) -> float | None:
    knots = fields.number(name, 0.0, MAX_SPEED_KNOTS)
    return None if knots is None else knots * KNOT_MPS


def _course(fields: _Fields, name: str) -> float | None:
    course = fields.number(name, 0.0, 360.0)
    return None if course is None else course % 360.0


def _altitude(fields: _Fields) -> float | None:
    return fields.number("altitude", *ALTITUDE_M, signed=True)


def _rmc(fields: _Fields, talker: str) -> Record:
    valid = fields.status("status")
    if valid is None:
        raise fields.fail("no status")
    mode = fields.mode("mode_indicator")
    lat, lon = fields.position()
    raw = fields.text("datestamp")
    date = None
    if raw:
        if len(raw) != 6 or not raw.isdigit() or not raw.isascii():
            raise fields.fail(f"bad date {raw!r}")
        day, month, year = int(raw[:2]), int(raw[2:4]), int(raw[4:])
        if not (1 <= day <= 31 and 1 <= month <= 12):
            raise fields.fail(f"bad date {raw!r}")
        date = DateField(year, month, day, two_digit_year=True)
    return Record(
        "RMC",
        talker,
        fields.time(),
        valid and mode != "N",
        date=date,
        lat=lat,
        lon=lon,
        speed_mps=_speed(fields, "spd_over_grnd"),
        course_deg=_course(fields, "true_course"),
        mode=mode,
    )


def _gga(fields: _Fields, talker: str) -> Record:
    quality = fields.integer("gps_qual", 0, MAX_QUALITY) or 0
    lat, lon = fields.position()
    return Record(
        "GGA",
        talker,
        fields.time(),
        quality > 0,
        lat=lat,
        lon=lon,
        quality=quality,
        satellites=fields.integer("num_sats", 0, MAX_SATELLITES),
        hdop=fields.number("horizontal_dil", 0.0, MAX_HDOP),
        altitude_m=_altitude(fields),
    )


def _gns(fields: _Fields, talker: str) -> Record:
    mode = fields.mode("mode_indicator", many=True)
    lat, lon = fields.position()
    # One letter per constellation, N for one not used: the fix is valid when any is used. The
    # per-constellation GNS that follow a GN one may leave the field empty: no voice then.
    return Record(
        "GNS",
        talker,
        fields.time(),
        None if not mode else any(letter != "N" for letter in mode),
        lat=lat,
        lon=lon,
        mode=mode,
        satellites=fields.integer("num_sats", 0, MAX_SATELLITES),
        hdop=fields.number("hdop", 0.0, MAX_HDOP),
        altitude_m=_altitude(fields),
    )


def _gsa(fields: _Fields, talker: str) -> Record:
    fix_type = fields.integer("mode_fix_type", 1, 3)
    used = 0
    for i in range(1, 13):
        if fields.integer(f"sv_id{i:02d}", 0, 999) is not None:
            used += 1
    return Record(
        "GSA",
        talker,
        None,
        None if fix_type is None else fix_type >= 2,
        satellites=used,
        hdop=fields.number("hdop", 0.0, MAX_HDOP),
        fix_type=fix_type,
    )


def _gll(fields: _Fields, talker: str) -> Record:
    lat, lon = fields.position()
    status = fields.status("status")
    mode = fields.mode("faa_mode")
    return Record(
        "GLL",
        talker,
        fields.time(),
        None if status is None else status and mode != "N",
        lat=lat,
        lon=lon,
        mode=mode,
    )


def _vtg(fields: _Fields, talker: str) -> Record:
    mode = fields.mode("faa_mode")
    speed = _speed(fields, "spd_over_grnd_kts")
    if speed is None:
        kmh = fields.number("spd_over_grnd_kmph", 0.0, MAX_SPEED_KNOTS * 1.852)
        speed = None if kmh is None else kmh / 3.6
    return Record(
        "VTG",
        talker,
        None,
        None if not mode else mode != "N",
        speed_mps=speed,
        course_deg=_course(fields, "true_track"),
        mode=mode,
    )


def _zda(fields: _Fields, talker: str) -> Record:
    day = fields.integer("day", 1, 31)
    month = fields.integer("month", 1, 12)
    year = fields.integer("year", 1980, 9999)
    date = None
    if day is not None and month is not None and year is not None:
        date = DateField(year, month, day, two_digit_year=False)
    return Record("ZDA", talker, fields.time(), None, date=date)


_PARSERS = {
    "RMC": _rmc,
    "GGA": _gga,
    "GNS": _gns,
    "GSA": _gsa,
    "GLL": _gll,
    "VTG": _vtg,
    "ZDA": _zda,
}
