"""GGA's numeric fields are bounded where the sentence is read: a damaged or hostile sentence
with a checksum that fits is counted and skipped, never carried into a reading."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.nmea import (
    GGA_ALTITUDE_M,
    GGA_MAX_HDOP,
    GGA_MAX_QUALITY,
    GGA_MAX_SATELLITES,
    FixAssembler,
    _sentence,
    format_gga,
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


def read(sentence: str) -> FixAssembler:
    assembler = FixAssembler()
    assembler.update(sentence)
    return assembler


def test_a_plausible_gga_is_read() -> None:
    assembler = FixAssembler()
    fix = assembler.update(format_gga(MOMENT, 39.89, 116.46, satellites=12, hdop=1.2).strip())
    assert fix is not None
    assert (fix.satellites, fix.hdop, assembler.unparsed) == (12, 1.2, 0)
    assert read(gga(satellites="99", hdop="99.9", altitude="-400.0")).unparsed == 0


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
    assembler = FixAssembler()
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
    assembler = FixAssembler()
    fix = assembler.update(
        gga(satellites=str(satellites), hdop=repr(hdop), altitude=repr(altitude))
    )
    if fix is None:
        return
    assert fix.quality is not None
    assert 0 <= fix.quality <= GGA_MAX_QUALITY
    assert fix.satellites is None or 0 <= fix.satellites <= GGA_MAX_SATELLITES
    assert fix.hdop is None or 0.0 <= fix.hdop <= GGA_MAX_HDOP
    assert fix.altitude_m is None or GGA_ALTITUDE_M[0] <= fix.altitude_m <= GGA_ALTITUDE_M[1]
