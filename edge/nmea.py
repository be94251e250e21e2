"""NMEA 0183: finding sentences in a noisy byte stream, and turning RMC and GGA into fixes.

The line framer is pure (bytes in, sentences out) and skips whatever is not NMEA: receivers
interleave binary protocols such as u-blox UBX on the same port. Field parsing is pynmea2's;
assembling RMC (date, status, speed) and GGA (quality, satellites, HDOP) into one fix is ours.
The formatters are the simulator's half of the same contract.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import pynmea2

from edge.errors import EnvpatrolError

MAX_SENTENCE = 120  # NMEA says 82; some receivers send longer proprietary lines
KNOT_MPS = 1852.0 / 3600.0
TALKERS = frozenset({"GP", "GL", "GA", "GB", "BD", "GN", "GQ", "GI"})


def checksum(body: str) -> int:
    """XOR of every character between '$' and '*'."""
    value = 0
    for char in body.encode("ascii"):
        value ^= char
    return value


class NmeaFramer:
    """Splits a byte stream into checksummed NMEA sentences, counting what it throws away."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.garbage_bytes = 0
        self.bad_sentences = 0

    def feed(self, data: bytes) -> list[str]:
        self._buffer += data
        out: list[str] = []
        while True:
            start = self._buffer.find(b"$")
            if start < 0:
                self.garbage_bytes += len(self._buffer)
                self._buffer.clear()
                return out
            if start:
                self.garbage_bytes += start
                del self._buffer[:start]
            end = self._buffer.find(b"\n")
            nxt = self._buffer.find(b"$", 1)
            if 0 <= nxt < (end if end >= 0 else len(self._buffer)):
                # A new sentence starts before this one ended: the first was cut short.
                self.bad_sentences += 1
                del self._buffer[:nxt]
                continue
            if end < 0:
                if len(self._buffer) > MAX_SENTENCE:
                    self.bad_sentences += 1
                    del self._buffer[:1]
                    continue
                return out
            raw = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            sentence = _checked(raw)
            if sentence is None:
                self.bad_sentences += 1
            else:
                out.append(sentence)


_HEX = frozenset("0123456789ABCDEFabcdef")


def _checked(raw: bytes) -> str | None:
    """The sentence as text when it is printable ASCII of sane length with a matching checksum."""
    if len(raw) > MAX_SENTENCE or len(raw) < 10 or not raw.isascii():
        return None
    text = raw.decode("ascii")
    star = text.rfind("*")
    digits = text[star + 1 :]
    if not text.isprintable() or star < 0 or len(digits) != 2 or not set(digits) <= _HEX:
        return None
    return text if checksum(text[1:star]) == int(digits, 16) else None


@dataclass(frozen=True, slots=True)
class Fix:
    """One position fix as the receiver reported it (WGS-84)."""

    time: datetime | None  # GNSS UTC; None until a sentence with a date has been seen
    lat: float
    lon: float
    valid: bool  # RMC status A and, when GGA was seen, quality > 0
    quality: int | None  # GGA fix quality: 0 invalid, 1 GPS, 2 DGPS, 4 RTK fixed, 5 float, 6 DR
    satellites: int | None
    hdop: float | None
    altitude_m: float | None
    speed_mps: float | None
    course_deg: float | None
    talker: str


class FixError(EnvpatrolError, ValueError):
    """A checksummed sentence whose fields make no sense; `subject` quotes the sentence."""

    def __init__(self, sentence: str, problem: str) -> None:
        super().__init__(repr(sentence), problem)


@dataclass(frozen=True, slots=True)
class _Rmc:
    stamp: time
    day: date | None
    valid: bool
    lat: float | None
    lon: float | None
    speed_mps: float | None
    course_deg: float | None
    talker: str


@dataclass(frozen=True, slots=True)
class _Gga:
    stamp: time
    quality: int
    satellites: int | None
    hdop: float | None
    altitude_m: float | None
    lat: float | None
    lon: float | None
    talker: str


class FixAssembler:
    """Merges the RMC and GGA sentences of one epoch into a Fix.

    `update` returns the newest fix whenever a sentence changes it; the order in which a receiver
    sends RMC and GGA does not matter. GGA alone (no date) gives no fix time until an RMC has
    supplied the date.
    """

    def __init__(self) -> None:
        self._rmc: _Rmc | None = None
        self._gga: _Gga | None = None
        self._day: date | None = None
        self.unparsed = 0

    def update(self, sentence: str) -> Fix | None:
        kind = sentence[3:6]
        if kind not in ("RMC", "GGA") or sentence[1:3] not in TALKERS:
            return None
        try:
            if kind == "RMC":
                self._rmc = _parse_rmc(sentence)
                if self._rmc.day is not None:
                    self._day = self._rmc.day
            else:
                self._gga = _parse_gga(sentence)
        except FixError:
            self.unparsed += 1
            return None
        return self._assemble()

    def _assemble(self) -> Fix | None:
        rmc, gga = self._rmc, self._gga
        if rmc is not None and gga is not None and gga.stamp != rmc.stamp:
            # Keep only the newer of the two epochs.
            if _later(gga.stamp, rmc.stamp):
                rmc = None
            else:
                gga = None
        anchor_stamp = rmc.stamp if rmc is not None else gga.stamp if gga is not None else None
        if anchor_stamp is None:
            return None
        lat = rmc.lat if rmc is not None else gga.lat if gga is not None else None
        lon = rmc.lon if rmc is not None else gga.lon if gga is not None else None
        if lat is None or lon is None:
            lat, lon = (gga.lat, gga.lon) if gga is not None else (None, None)
        valid = (rmc.valid if rmc is not None else True) and (
            gga.quality > 0 if gga is not None else True
        )
        if lat is None or lon is None:
            lat, lon, valid = 0.0, 0.0, False
        day = rmc.day if rmc is not None and rmc.day is not None else self._day
        stamp = datetime.combine(day, anchor_stamp, tzinfo=UTC) if day is not None else None
        return Fix(
            time=stamp,
            lat=lat,
            lon=lon,
            valid=valid,
            quality=gga.quality if gga is not None else None,
            satellites=gga.satellites if gga is not None else None,
            hdop=gga.hdop if gga is not None else None,
            altitude_m=gga.altitude_m if gga is not None else None,
            speed_mps=rmc.speed_mps if rmc is not None else None,
            course_deg=rmc.course_deg if rmc is not None else None,
            talker=(rmc or gga).talker if (rmc or gga) is not None else "",  # type: ignore[union-attr]
        )


def _later(a: time, b: time) -> bool:
    """Whether time-of-day a is after b, allowing for the wrap at midnight."""
    seconds_a = a.hour * 3600 + a.minute * 60 + a.second + a.microsecond / 1e6
    seconds_b = b.hour * 3600 + b.minute * 60 + b.second + b.microsecond / 1e6
    delta = (seconds_a - seconds_b) % 86400
    return 0 < delta < 43200


def _parse(sentence: str) -> pynmea2.NMEASentence:
    try:
        return pynmea2.parse(sentence, check=True)
    except (pynmea2.ParseError, ValueError, AttributeError) as exc:
        raise FixError(sentence, f"unparseable: {exc}") from exc


# What a GGA sentence can mean (its fields are fixed-width in NMEA 0183: two digits of
# satellites, HDOP below 100); anything else is a damaged sentence, refused here rather than
# carried in a reading that the ingest would then refuse whole.
GGA_MAX_QUALITY = 9
GGA_MAX_SATELLITES = 99
GGA_MAX_HDOP = 99.9
GGA_ALTITUDE_M = (-1_000.0, 20_000.0)  # below the Dead Sea shore, above any road


def _float(field: object) -> float | None:
    """A numeric field as pynmea2 gives it (str, float or None); empty means absent."""
    if field is None or field == "":
        return None
    value = float(field)  # type: ignore[arg-type]
    return value if math.isfinite(value) else None


def _coord(sentence: str, msg: pynmea2.NMEASentence) -> tuple[float | None, float | None]:
    if not msg.lat or not msg.lon:
        return None, None
    try:
        lat = float(msg.latitude)
        lon = float(msg.longitude)
    except (ValueError, TypeError) as exc:
        raise FixError(sentence, "bad coordinates") from exc
    if (
        not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0)
        or msg.lat_dir not in ("N", "S")
        or (msg.lon_dir not in ("E", "W"))
    ):
        raise FixError(sentence, "coordinates out of range")
    return lat, lon


def _parse_rmc(sentence: str) -> _Rmc:
    msg = _parse(sentence)
    if not isinstance(msg.timestamp, time):
        raise FixError(sentence, "no time")
    day = msg.datestamp if isinstance(msg.datestamp, date) else None
    lat, lon = _coord(sentence, msg)
    try:
        speed = _float(msg.spd_over_grnd)
        course = _float(msg.true_course)
    except ValueError as exc:
        raise FixError(sentence, "bad speed or course") from exc
    return _Rmc(
        stamp=msg.timestamp.replace(tzinfo=None),
        day=day,
        valid=msg.status == "A",
        lat=lat,
        lon=lon,
        speed_mps=None if speed is None else speed * KNOT_MPS,
        course_deg=course,
        talker=msg.talker,
    )


def _parse_gga(sentence: str) -> _Gga:
    msg = _parse(sentence)
    if not isinstance(msg.timestamp, time):
        raise FixError(sentence, "no time")
    lat, lon = _coord(sentence, msg)
    try:
        quality = int(msg.gps_qual or 0)
        sats = int(msg.num_sats) if msg.num_sats not in (None, "") else None
        hdop = _float(msg.horizontal_dil)
        altitude = _float(msg.altitude)
    except (ValueError, TypeError) as exc:
        raise FixError(sentence, "bad quality, satellites, HDOP or altitude") from exc
    if not (
        0 <= quality <= GGA_MAX_QUALITY
        and (sats is None or 0 <= sats <= GGA_MAX_SATELLITES)
        and (hdop is None or 0.0 <= hdop <= GGA_MAX_HDOP)
        and (altitude is None or GGA_ALTITUDE_M[0] <= altitude <= GGA_ALTITUDE_M[1])
    ):
        raise FixError(sentence, "quality, satellites, HDOP or altitude out of range")
    return _Gga(
        stamp=msg.timestamp.replace(tzinfo=None),
        quality=quality,
        satellites=sats,
        hdop=hdop,
        altitude_m=altitude,
        lat=lat,
        lon=lon,
        talker=msg.talker,
    )


# ---------------------------------------------------------------------------------------------
# Formatting: the receiver's side, used by the simulator and the tests.


def _sentence(body: str) -> str:
    return f"${body}*{checksum(body):02X}\r\n"


def _lat_field(lat: float) -> tuple[str, str]:
    hemisphere = "N" if lat >= 0 else "S"
    minutes_total = round(abs(lat) * 60.0, 5)
    degrees, minutes = divmod(minutes_total, 60.0)
    return f"{int(degrees):02d}{minutes:08.5f}", hemisphere


def _lon_field(lon: float) -> tuple[str, str]:
    hemisphere = "E" if lon >= 0 else "W"
    minutes_total = round(abs(lon) * 60.0, 5)
    degrees, minutes = divmod(minutes_total, 60.0)
    return f"{int(degrees):03d}{minutes:08.5f}", hemisphere


def _stamp(moment: datetime) -> str:
    return moment.strftime("%H%M%S.") + f"{moment.microsecond // 10000:02d}"


def format_rmc(
    moment: datetime,
    lat: float | None,
    lon: float | None,
    *,
    valid: bool = True,
    speed_mps: float = 0.0,
    course_deg: float = 0.0,
    talker: str = "GN",
) -> str:
    moment = moment.astimezone(UTC)
    if lat is None or lon is None:
        position = ",,,"
    else:
        (la, ns), (lo, ew) = _lat_field(lat), _lon_field(lon)
        position = f"{la},{ns},{lo},{ew}"
    mode = "A" if valid else "N"
    body = (
        f"{talker}RMC,{_stamp(moment)},{'A' if valid else 'V'},{position},"
        f"{speed_mps / KNOT_MPS:.2f},{course_deg % 360.0:.1f},{moment.strftime('%d%m%y')},,,{mode}"
    )
    return _sentence(body)


def format_gga(
    moment: datetime,
    lat: float | None,
    lon: float | None,
    *,
    quality: int = 1,
    satellites: int = 12,
    hdop: float = 0.9,
    altitude_m: float = 45.0,
    talker: str = "GN",
) -> str:
    moment = moment.astimezone(UTC)
    if lat is None or lon is None:
        position = ",,,"
    else:
        (la, ns), (lo, ew) = _lat_field(lat), _lon_field(lon)
        position = f"{la},{ns},{lo},{ew}"
    body = (
        f"{talker}GGA,{_stamp(moment)},{position},{quality},{satellites:02d},{hdop:.1f},"
        f"{altitude_m:.1f},M,-8.0,M,,"
    )
    return _sentence(body)
