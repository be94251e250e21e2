"""NMEA 0183: finding sentences in a noisy byte stream, and the receiver's side of the contract.

The line framer is pure (bytes in, sentences out) and skips whatever is not NMEA: receivers
interleave binary protocols such as u-blox UBX on the same port. What the sentences say is read by
edge.sentences and assembled, one fix per epoch, by edge.epoch. The formatters are the
simulator's half of the same contract.
"""

from __future__ import annotations

from datetime import UTC, datetime

from edge.epoch import EpochSettings, Fix
from edge.sentences import (
    KNOT_MPS,
    TALKERS,
    FixError,
    checksum,
)

__all__ = [
    "KNOT_MPS",
    "MAX_SENTENCE",
    "TALKERS",
    "EpochSettings",
    "Fix",
    "FixError",
    "NmeaFramer",
    "checksum",
    "format_gga",
    "format_gll",
    "format_gns",
    "format_gsa",
    "format_rmc",
    "format_vtg",
    "format_zda",
]

# NMEA 0183 allows 82 characters with the '$' and the line end. Real receivers exceed it: a
# Trimble BX-960 sends a 91-character GGA, SkyTraq a 100-character PSTI, high-precision
# receivers GGA and RMC with extra decimals. Lines are accepted up to 102 characters with the line end (100
# without it); longer ones are two sentences merged by a glitch (seen on Garmin units) or noise.
MAX_SENTENCE = 100  # characters from '$' to the checksum, without the line end


class NmeaFramer:
    """Splits a byte stream into NMEA sentences, counting what it throws away.

    A sentence must carry a matching checksum; with `require_checksum` False, one without any
    (`$GPGGA,...` ending at the line end, as a few old receivers send) is accepted too. A
    checksum that is present must always match.
    """

    def __init__(self, require_checksum: bool = True) -> None:
        self._buffer = bytearray()
        self.require_checksum = require_checksum
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
                if len(self._buffer) > MAX_SENTENCE + 1:  # room for the '\r' of the line end
                    self.bad_sentences += 1
                    del self._buffer[:1]
                    continue
                return out
            raw = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            sentence = _checked(raw, self.require_checksum)
            if sentence is None:
                self.bad_sentences += 1
            else:
                out.append(sentence)


_HEX = frozenset("0123456789ABCDEFabcdef")


def _checked(raw: bytes, require_checksum: bool) -> str | None:
    """The sentence as text when it is printable ASCII of sane length with a matching checksum
    (or, when not required, none at all)."""
    if len(raw) > MAX_SENTENCE or len(raw) < 7 or not raw.isascii():
        return None
    text = raw.decode("ascii")
    if not text.isprintable():
        return None
    star = text.rfind("*")
    if star < 0:
        return None if require_checksum else text
    digits = text[star + 1 :]
    if len(digits) != 2 or not set(digits) <= _HEX or star < 6:
        return None
    return text if checksum(text[1:star]) == int(digits, 16) else None


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


def _position(lat: float | None, lon: float | None) -> str:
    if lat is None or lon is None:
        return ",,,"
    (la, ns), (lo, ew) = _lat_field(lat), _lon_field(lon)
    return f"{la},{ns},{lo},{ew}"


def format_gns(
    moment: datetime,
    lat: float | None,
    lon: float | None,
    *,
    mode: str = "AA",
    satellites: int = 12,
    hdop: float = 0.9,
    altitude_m: float = 45.0,
    talker: str = "GN",
) -> str:
    moment = moment.astimezone(UTC)
    body = (
        f"{talker}GNS,{_stamp(moment)},{_position(lat, lon)},{mode},{satellites:02d},"
        f"{hdop:.1f},{altitude_m:.1f},-8.0,,,V"
    )
    return _sentence(body)


def format_gll(
    moment: datetime,
    lat: float | None,
    lon: float | None,
    *,
    valid: bool = True,
    talker: str = "GN",
) -> str:
    moment = moment.astimezone(UTC)
    status, mode = ("A", "A") if valid else ("V", "N")
    return _sentence(f"{talker}GLL,{_position(lat, lon)},{_stamp(moment)},{status},{mode}")


def format_gsa(
    satellites: int = 12,
    *,
    fix_type: int = 3,
    hdop: float = 0.9,
    talker: str = "GN",
) -> str:
    """A GSA listing `satellites` (at most 12) made-up satellite numbers."""
    prns = [f"{n + 1:02d}" for n in range(min(satellites, 12))]
    prns += [""] * (12 - len(prns))
    body = f"{talker}GSA,A,{fix_type},{','.join(prns)},{hdop + 0.4:.1f},{hdop:.1f},{hdop + 0.6:.1f}"
    return _sentence(body)


def format_vtg(
    speed_mps: float, course_deg: float, *, valid: bool = True, talker: str = "GN"
) -> str:
    knots = speed_mps / KNOT_MPS
    body = (
        f"{talker}VTG,{course_deg % 360.0:.1f},T,,M,{knots:.2f},N,{speed_mps * 3.6:.2f},K,"
        f"{'A' if valid else 'N'}"
    )
    return _sentence(body)


def format_zda(moment: datetime, *, talker: str = "GN") -> str:
    moment = moment.astimezone(UTC)
    return _sentence(f"{talker}ZDA,{_stamp(moment)},{moment.strftime('%d,%m,%Y')},00,00")
