"""NMEA: sentences survive binary noise, RMC and GGA of any talker assemble into one fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.nmea import FixAssembler, NmeaFramer, format_gga, format_rmc

moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
).map(lambda m: m.replace(microsecond=m.microsecond // 10000 * 10000))
talkers = st.sampled_from(["GP", "GN", "GB", "BD", "GL", "GA"])


@given(
    moments,
    st.floats(-89.9, 89.9),
    st.floats(-179.9, 179.9),
    st.floats(0, 40),
    st.floats(0, 359.9),
    talkers,
    st.booleans(),
)
def test_rmc_and_gga_round_trip(
    moment: datetime,
    lat: float,
    lon: float,
    speed: float,
    course: float,
    talker: str,
    gga_first: bool,
) -> None:
    rmc = format_rmc(moment, lat, lon, speed_mps=speed, course_deg=course, talker=talker)
    gga = format_gga(moment, lat, lon, quality=2, satellites=9, hdop=1.3, talker=talker)
    stream = (gga + rmc) if gga_first else (rmc + gga)
    framer = NmeaFramer()
    assembler = FixAssembler()
    fixes = [assembler.update(s) for s in framer.feed(stream.encode())]
    fix = fixes[-1]
    assert fix is not None
    assert fix.time == moment
    assert fix.lat == pytest.approx(lat, abs=1e-6)
    assert fix.lon == pytest.approx(lon, abs=1e-6)
    assert fix.valid
    assert (fix.quality, fix.satellites, fix.hdop) == (2, 9, 1.3)
    assert fix.speed_mps == pytest.approx(speed, abs=0.01)
    assert fix.talker == talker


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_binary_noise_never_yields_a_false_sentence(before: bytes, after: bytes) -> None:
    moment = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    good = format_rmc(moment, 39.89, 116.46).encode()
    framer = NmeaFramer()
    # Noise may swallow the sentence only if it ends inside an unfinished '$...' run.
    out = framer.feed(before + b"\r\n" + good + after)
    assert all(s.startswith("$") and "*" in s for s in out)
    assert good.decode().strip() in out


def test_bad_checksum_missing_checksum_and_truncation_are_counted() -> None:
    moment = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    good = format_rmc(moment, 39.89, 116.46)
    bad_sum = good[:-4] + "00\r\n"
    no_sum = good[: good.rindex("*")] + "\r\n"
    truncated = good[:30]
    framer = NmeaFramer()
    out = framer.feed((bad_sum + no_sum + truncated + good).encode())
    assert out == [good.strip()]
    assert framer.bad_sentences == 3


def test_void_fix_is_not_valid_and_gga_quality_zero_invalidates() -> None:
    moment = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    assembler = FixAssembler()
    fix = assembler.update(format_rmc(moment, 39.89, 116.46, valid=False).strip())
    assert fix is not None
    assert not fix.valid
    assembler.update(format_rmc(moment + timedelta(seconds=1), 39.89, 116.46).strip())
    fix = assembler.update(
        format_gga(moment + timedelta(seconds=1), 39.89, 116.46, quality=0).strip()
    )
    assert fix is not None
    assert not fix.valid


def test_gga_alone_has_no_time_until_a_date_is_known() -> None:
    moment = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    assembler = FixAssembler()
    fix = assembler.update(format_gga(moment, 39.89, 116.46).strip())
    assert fix is not None
    assert fix.time is None
