"""NMEA framing: sentences survive binary noise and chunking, checksums and lengths are held, and
what the formatters write reads back as the same fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.epoch import EpochAssembler
from edge.nmea import (
    MAX_SENTENCE,
    NmeaFramer,
    _sentence,
    format_gga,
    format_rmc,
)

# Within the window the agent trusts without a host clock (edge.gnss_time).
moments = st.datetimes(
    min_value=datetime(2026, 1, 2), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
).map(lambda m: m.replace(microsecond=m.microsecond // 10000 * 10000))
talkers = st.sampled_from(["GP", "GN", "GB", "BD", "GL", "GA", "IN"])


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
    assembler = EpochAssembler()
    fixes = [f for s in framer.feed(stream.encode()) for f in assembler.feed(s)]
    # Before the receiver's habits are learned, an epoch is judged once it holds all a fix needs.
    assert len(fixes) == 1
    fix = fixes[0]
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
    out = framer.feed(before + b"\r\n" + good + after)
    assert all(s.startswith("$") and "*" in s for s in out)
    assert good.decode().strip() in out


@given(st.lists(st.integers(1, 40), max_size=30), st.booleans())
def test_chunking_never_changes_the_sentences(cuts: list[int], require_checksum: bool) -> None:
    moment = datetime(2026, 11, 21, 23, 59, 58, tzinfo=UTC)
    stream = b"\xb5b\x01\x07junk".join(
        (
            format_gga(moment + timedelta(seconds=s), 39.89, 116.46)
            + format_rmc(moment + timedelta(seconds=s), 39.89, 116.46)
        ).encode()
        for s in range(4)
    )
    whole = NmeaFramer(require_checksum).feed(stream)
    framer = NmeaFramer(require_checksum)
    pieces: list[str] = []
    at = 0
    for cut in cuts:
        pieces += framer.feed(stream[at : at + cut])
        at += cut
    pieces += framer.feed(stream[at:])
    assert pieces == whole
    assert len(whole) == 8


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


def test_sentences_without_a_checksum_only_when_configured() -> None:
    moment = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    good = format_rmc(moment, 39.89, 116.46)
    no_sum = good[: good.rindex("*")]
    bad_sum = good[:-4] + "00\r\n"
    lenient = NmeaFramer(require_checksum=False)
    assert lenient.feed((no_sum + "\r\n" + bad_sum).encode()) == [no_sum]
    assert lenient.bad_sentences == 1  # a checksum that is there must still match
    assembler = EpochAssembler()
    fixes = assembler.feed(no_sum) + assembler.feed(format_gga(moment, 39.89, 116.46).strip())
    assert [f.valid for f in fixes] == [True]
    assert assembler.unparsed == 0


def test_lower_case_checksums_are_accepted() -> None:
    body = "GPGGA,080000.00,3953.40000,N,11627.60000,E,1,09,0.9,45.0,M,-8.0,M,,"
    line = _sentence(body).strip()
    lower = line[:-2] + line[-2:].lower()
    assert NmeaFramer().feed((lower + "\r\n").encode()) == [lower]


def test_sentence_length_limit() -> None:
    """NMEA says 82 characters with the line end; receivers send up to 100 without it."""
    body = "GPTXT," + "x" * 200
    for length in (MAX_SENTENCE, MAX_SENTENCE + 1):
        line = _sentence(body[: length - 4])  # '$' + body + '*hh'
        assert len(line.strip()) == length
        out = NmeaFramer().feed(line.encode())
        assert out == ([line.strip()] if length <= MAX_SENTENCE else [])
