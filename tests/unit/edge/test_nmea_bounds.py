"""Numeric fields are bounded where the sentence is read: a damaged or hostile sentence with a
checksum that fits is counted and skipped, never carried into a reading."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.epoch import EpochAssembler
from edge.nmea import (
    _sentence,
    format_gga,
)
from edge.sentences import (
    ALTITUDE_M,
    MAX_HDOP,
    MAX_QUALITY,
    MAX_SATELLITES,
    FixError,
    Record,
    parse_sentence,
)

MOMENT = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def gga(
    quality: str = "1", satellites: str = "09", hdop: str = "0.9", altitude: str = "45.0"
) -> str:
    """A GGA sentence with these fields as written, and a checksum that fits them."""
    body = (
        f"GNGGA,080000.00,3953.40000,N,11627.60000,E,{quality},{satellites},{hdop},"
        f"{altitude},M,-8.0,M,,"
    )
    return _sentence(body).strip()


def read(sentence: str) -> EpochAssembler:
    assembler = EpochAssembler()
    assembler.update(sentence)
    return assembler


def test_a_plausible_gga_is_read() -> None:
    record = parse_sentence(format_gga(MOMENT, 39.89, 116.46, satellites=12, hdop=1.2).strip())
    assert (record.satellites, record.hdop, record.quality) == (12, 1.2, 1)
    # A receiver without a fix reports HDOP 99.99: a no-fix sentence, not a damaged one.
    assert read(gga(satellites="99", hdop="99.99", altitude="-400.0")).unparsed == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"satellites": "100000000000000000000"},  # 10^20
        {"satellites": "100"},
        {"satellites": "-1"},
        {"quality": "10"},
        {"quality": "-1"},
        {"hdop": "100.0"},
        {"hdop": "-0.5"},
        {"hdop": "1e300"},
        {"altitude": "1e300"},
        {"altitude": "-20000.0"},
        {"altitude": "99999.0"},
    ],
)
def test_an_implausible_gga_is_counted_and_skipped(fields: dict[str, str]) -> None:
    assembler = EpochAssembler()
    assert assembler.update(gga(**fields)) is None
    assert assembler.unparsed == 1


@given(
    st.integers(-(10**25), 10**25),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
)
def test_whatever_the_numbers_a_fix_holds_only_bounded_ones(
    satellites: int, hdop: float, altitude: float
) -> None:
    try:
        fix: Record = parse_sentence(
            gga(satellites=str(satellites), hdop=repr(hdop), altitude=repr(altitude))
        )
    except FixError:
        return
    assert fix.quality is not None
    assert 0 <= fix.quality <= MAX_QUALITY
    assert fix.satellites is None or 0 <= fix.satellites <= MAX_SATELLITES
    assert fix.hdop is None or 0.0 <= fix.hdop <= MAX_HDOP
    assert fix.altitude_m is None or ALTITUDE_M[0] <= fix.altitude_m <= ALTITUDE_M[1]


@pytest.mark.parametrize(
    "body",
    [
        "GNRMC,080000.00,A,9100.00000,N,11627.60000,E,0.0,0.0,211126,,,A",  # latitude > 90
        "GNRMC,080000.00,A,3960.00000,N,11627.60000,E,0.0,0.0,211126,,,A",  # 60 minutes
        "GNRMC,080000.00,A,3953.40000,N,18100.00000,E,0.0,0.0,211126,,,A",  # longitude > 180
        "GNRMC,080000.00,A,3953.40000,X,11627.60000,E,0.0,0.0,211126,,,A",  # hemisphere
        "GNRMC,080000.00,A,3953.40000,N,11627.60000,E,1000.1,0.0,211126,,,A",  # speed
        "GNRMC,080000.00,A,3953.40000,N,11627.60000,E,-1.0,0.0,211126,,,A",
        "GNRMC,080000.00,A,3953.40000,N,11627.60000,E,0.0,360.5,211126,,,A",  # course
        "GNRMC,080000.00,A,3953.40000,N,11627.60000,E,nan,0.0,211126,,,A",
        "GNRMC,080000.00,A,3953.40000,N,11627.60000,E,0.0,0.0,321126,,,A",  # day 32
        "GNRMC,080000.00,A,3953.40000,N,11627.60000,E,0.0,0.0,211326,,,A",  # month 13
        "GNRMC,246000.00,A,3953.40000,N,11627.60000,E,0.0,0.0,211126,,,A",  # hour 24
        "GNRMC,125960.00,A,3953.40000,N,11627.60000,E,0.0,0.0,211126,,,A",  # 60 s, not 23:59
        "GNRMC,080000.00,X,3953.40000,N,11627.60000,E,0.0,0.0,211126,,,A",  # status
        "GNGNS,080000.00,3953.40000,N,11627.60000,E,AA,100,0.9,45.0,-8.0,,,V",  # satellites
        "GNGSA,A,4,01,02,03,,,,,,,,,,1.3,0.9,1.5",  # fix type
        "GNVTG,400.0,T,,M,1.0,N,1.9,K,A",  # course
        "GNZDA,080000.00,21,13,2026,00,00",  # month
        "GNGLL,3953.40000,N,11627.60000,E,080000.00,B,A",  # status
    ],
)
def test_every_numeric_field_is_range_checked(body: str) -> None:
    with pytest.raises(FixError):
        parse_sentence(_sentence(body).strip())
    assembler = EpochAssembler()
    assert assembler.feed(_sentence(body).strip()) == []
    assert assembler.unparsed == 1


def test_the_leap_second_is_a_time() -> None:
    record = parse_sentence(
        _sentence("GNRMC,235960.00,A,3953.40000,N,11627.60000,E,0.0,0.0,311216,,,A").strip()
    )
    assert record.time_us == 86_400_000_000
