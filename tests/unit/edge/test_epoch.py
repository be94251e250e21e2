"""Epoch assembly: one fix per epoch, from that epoch's sentences only, dated by a date the agent
can trust."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.epoch import EpochAssembler, EpochSettings, Fix
from edge.gnss_time import AHEAD_OF_HOST, ERA, RELEASE_DATE
from edge.gps import FixKeeper
from edge.nmea import (
    NmeaFramer,
    _sentence,
    format_gga,
    format_gll,
    format_gns,
    format_gsa,
    format_rmc,
    format_vtg,
    format_zda,
)

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
HOST = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def run(text: str, assembler: EpochAssembler | None = None) -> list[Fix]:
    assembler = assembler or EpochAssembler(wall=lambda: HOST)
    return [f for s in NmeaFramer().feed(text.encode()) for f in assembler.feed(s)]


def lat_of(second: float) -> float:
    """A truth track whose latitude tells the epoch it belongs to."""
    return 39.8 + second * 1e-4


def ublox(moment: datetime, second: float) -> str:
    lat = lat_of(second)
    return (
        format_rmc(moment, lat, 116.4, speed_mps=5.0)
        + format_vtg(5.0, 90.0)
        + format_gga(moment, lat, 116.4, satellites=11)
        + format_gsa(7)
        + format_gsa(4)
        + format_gll(moment, lat, 116.4)
    )


def test_stale_gga_is_never_recombined_with_later_rmc() -> None:
    """One GGA at 08:00, then RMC only every 30 min: no later fix has the GGA's position."""
    text = format_gga(T0, 10.0, 10.0)
    for k in range(1, 30):
        moment = T0 + timedelta(minutes=30 * k)
        text += format_rmc(moment, lat_of(k), 116.4, speed_mps=3.0)
    fixes = run(text)
    assert [round(f.lat, 4) for f in fixes] == [10.0] + [round(lat_of(k), 4) for k in range(1, 30)]
    assert all(f.satellites is None for f in fixes[1:])
    # An RMC-only fix lacks what the filter needs: rejected unless the policy says otherwise.
    keeper = FixKeeper(wall=lambda: HOST)
    assert not keeper.offer(fixes[5]).fix.valid
    assert keeper.filtered["incomplete"] == 1
    assert FixKeeper(wall=lambda: HOST, incomplete="accept").offer(fixes[5]).fix.valid


def test_rmc_valid_but_its_own_gga_says_three_satellites() -> None:
    moment = T0
    text = format_rmc(moment, 39.9, 116.4) + format_gga(
        moment, 39.9, 116.4, satellites=3, hdop=99.0
    )
    (fix,) = run(text + format_rmc(moment + timedelta(seconds=1), 39.9, 116.4))
    assert (fix.satellites, fix.hdop) == (3, 99.0)
    keeper = FixKeeper()
    assert keeper.offer(fix).fix.valid is False
    assert keeper._accepted is None  # not the jump reference


def test_restart_with_time_stepping_back_emits_nothing_valid_from_the_past() -> None:
    text = "".join(ublox(T0 + timedelta(seconds=s), s) for s in range(5))
    # The receiver restarts: almanac date 2006, no fix, time back at midnight.
    boot = datetime(2006, 1, 1, 0, 0, 1, tzinfo=UTC)
    for s in range(8):
        moment = boot + timedelta(seconds=s)
        text += format_rmc(moment, None, None, valid=False) + format_gga(
            moment, None, None, quality=0, satellites=0
        )
    fixes = run(text)
    assert [f.valid for f in fixes[:4]] == [True] * 4
    after = fixes[5:]
    assert after
    assert not any(f.valid for f in after)
    assert all(f.time is None for f in after)  # 2006 (or 2006 + an era) is no time to trust


def test_a_time_stepping_back_a_little_is_its_own_epoch() -> None:
    first, back = T0 + timedelta(seconds=0.3), T0
    text = ublox(first, 0.3) + ublox(back, 0.0) + ublox(T0 + timedelta(seconds=1), 1.0)
    fixes = run(text)
    assert [(f.time, round(f.lat, 5)) for f in fixes] == [
        (first, round(lat_of(0.3), 5)),
        (back, round(lat_of(0.0), 5)),
        (T0 + timedelta(seconds=1), round(lat_of(1.0), 5)),
    ]


def test_constellation_ggas_of_one_epoch_are_combined() -> None:
    text = ""
    for s in range(3):
        moment = T0 + timedelta(seconds=s)
        text += (
            format_gga(moment, lat_of(s), 116.4, satellites=8, hdop=1.1, talker="GP")
            + format_gga(moment, lat_of(s), 116.4, satellites=2, hdop=2.5, talker="GL")
            + format_rmc(moment, lat_of(s), 116.4, talker="GP")
        )
    fixes = run(text)
    assert [(f.satellites, f.hdop) for f in fixes] == [(10, 1.1)] * 3
    assert all(f.valid for f in fixes)


def test_combined_gn_sentences_are_preferred() -> None:
    text = (
        format_gga(T0, 39.9, 116.4, satellites=3, talker="GP")
        + format_gga(T0, 39.9, 116.4, satellites=14, hdop=0.6, talker="GN")
        + format_rmc(T0, 39.9, 116.4)
    )
    (fix,) = run(text)
    assert (fix.satellites, fix.hdop) == (14, 0.6)


@pytest.mark.parametrize(
    "dissent",
    [
        format_gga(T0, 39.9, 116.4, quality=0),
        format_gns(T0, 39.9, 116.4, mode="NN"),
        format_gll(T0, 39.9, 116.4, valid=False),
        format_gsa(0, fix_type=1),
        format_vtg(5.0, 90.0, valid=False),
    ],
)
def test_every_present_voice_must_agree(dissent: str) -> None:
    fixes = run(
        format_rmc(T0, 39.9, 116.4) + dissent + format_rmc(T0 + timedelta(seconds=1), 39.9, 116.4)
    )
    assert not fixes[0].valid


def test_a_no_fix_sentence_clears_the_fix_at_once_and_is_not_bad() -> None:
    assembler = EpochAssembler(wall=lambda: HOST)
    fixes = run(ublox(T0, 0) + "$GPRMC,,V,,,,,,,,,,N*53\r\n", assembler)
    assert [f.valid for f in fixes] == [True, False]
    assert (assembler.unparsed, assembler.no_fix) == (0, 1)
    empty_gga = _sentence("GPGGA,,,,,,0,00,99.99,,,,,,")
    assert [f.valid for f in run(empty_gga, assembler)] == [False]


def test_a_v_status_settles_the_epoch_without_waiting() -> None:
    assembler = EpochAssembler(wall=lambda: HOST)
    run(ublox(T0, 0) + ublox(T0 + timedelta(seconds=1), 1), assembler)
    moment = T0 + timedelta(seconds=2)
    (fix,) = run(format_rmc(moment, lat_of(2), 116.4, valid=False), assembler)
    assert not fix.valid
    assert fix.lat == pytest.approx(lat_of(2))  # the position stays visible


def test_learned_order_judges_each_epoch_at_its_last_sentence() -> None:
    assembler = EpochAssembler(wall=lambda: HOST)
    framer = NmeaFramer()
    emitted_after: list[str] = []
    for s in range(4):
        for sentence in framer.feed(ublox(T0 + timedelta(seconds=s), s).encode()):
            if assembler.feed(sentence):
                emitted_after.append(sentence[3:6])
    # The first epoch is judged as soon as it holds a full fix; the others at their GLL.
    assert emitted_after == ["GGA", "GLL", "GLL", "GLL"]
    assert assembler.late == 3  # the first epoch's GSA, GSA and GLL came after its judgement


def test_an_incomplete_epoch_is_judged_after_the_timeout() -> None:
    assembler = EpochAssembler(EpochSettings(timeout_s=0.3), wall=lambda: HOST)
    for s in range(2):
        for sentence in NmeaFramer().feed(ublox(T0 + timedelta(seconds=s), s).encode()):
            assembler.feed(sentence, now=float(s))
    moment = T0 + timedelta(seconds=2)
    partial = format_rmc(moment, lat_of(2), 116.4) + format_vtg(5.0, 90.0)
    fixes = [f for x in NmeaFramer().feed(partial.encode()) for f in assembler.feed(x, now=2.0)]
    assert fixes == []
    assert assembler.expire(2.2) == []
    (fix,) = assembler.expire(2.31)
    assert fix.time == moment
    assert fix.satellites is None  # judged as it was: the filter's policy decides


def test_midnight_gga_before_rmc_gets_the_new_day() -> None:
    text = ""
    start = datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC)
    for s in range(4):
        moment = start + timedelta(seconds=s)
        text += format_gga(moment, lat_of(s), 116.4) + format_rmc(moment, lat_of(s), 116.4)
    # Cut each epoch at its GGA: the GGA alone is dated from what came before.
    fixes = run(text, EpochAssembler(wall=lambda: datetime(2027, 1, 1, 1, tzinfo=UTC)))
    assert [f.time for f in fixes] == [start + timedelta(seconds=s) for s in range(4)]


def test_midnight_for_a_gga_only_epoch() -> None:
    assembler = EpochAssembler(wall=lambda: datetime(2027, 1, 2, tzinfo=UTC))
    start = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    run(format_rmc(start, 39.9, 116.4) + format_gga(start, 39.9, 116.4), assembler)
    midnight = start + timedelta(seconds=1)
    fixes = run(
        format_gga(midnight, 39.9, 116.4)
        + format_gga(midnight + timedelta(seconds=1), 39.9, 116.4),
        assembler,
    )
    assert fixes[0].time == midnight


def test_gga_and_zda_without_rmc_are_dated() -> None:
    text = "".join(
        format_gga(T0 + timedelta(seconds=s), lat_of(s), 116.4)
        + format_zda(T0 + timedelta(seconds=s))
        for s in range(3)
    )
    fixes = run(text)
    assert [f.time for f in fixes] == [T0 + timedelta(seconds=s) for s in range(3)]
    assert all(f.valid and f.speed_mps is None for f in fixes)


def test_gll_only_seconds_are_dated_from_the_last_date() -> None:
    assembler = EpochAssembler(wall=lambda: HOST)
    run(ublox(T0, 0) + ublox(T0 + timedelta(seconds=1), 1), assembler)
    text = "".join(format_gll(T0 + timedelta(seconds=s), lat_of(s), 116.4) for s in (2, 3, 4))
    fixes = run(text, assembler)
    assert [(f.time, f.valid) for f in fixes] == [
        (T0 + timedelta(seconds=s), True) for s in (2, 3, 4)
    ]


def test_the_leap_second_is_accepted() -> None:
    start = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    leap = _sentence("GNRMC,235960.00,A,3953.40000,N,11627.60000,E,1.0,0.0,311226,,,A")
    gga = _sentence("GNGGA,235960.00,3953.40000,N,11627.60000,E,1,09,0.9,45.0,M,-8.0,M,,")
    after = start + timedelta(seconds=1)
    text = ublox(start, 0) + leap + gga + ublox(after, 2)
    fixes = run(text, EpochAssembler(wall=lambda: datetime(2027, 1, 1, 1, tzinfo=UTC)))
    assert [f.time for f in fixes[:3]] == [
        start,
        datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        after,
    ]
    assert all(f.valid for f in fixes)


def test_the_in_talker_is_read() -> None:
    (fix,) = run(
        format_rmc(T0, 39.9, 116.4, talker="IN") + format_gga(T0, 39.9, 116.4, talker="IN")
    )
    assert (fix.talker, fix.valid) == ("IN", True)


def test_week_rollover_victim_is_dated_today() -> None:
    today = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assembler = EpochAssembler(wall=lambda: today)
    (fix,) = run(
        format_rmc(today - ERA, 39.9, 116.4) + format_gga(today - ERA, 39.9, 116.4), assembler
    )
    assert fix.time == today
    assert assembler.rollovers == 1


def test_a_date_ahead_of_the_host_is_not_trusted() -> None:
    assembler = EpochAssembler(wall=lambda: HOST)
    ahead = HOST + AHEAD_OF_HOST + timedelta(hours=1)
    (fix,) = run(format_rmc(ahead, 39.9, 116.4) + format_gga(ahead, 39.9, 116.4), assembler)
    assert fix.time is None
    assert assembler.untrusted_times == 1


# -- properties ------------------------------------------------------------------------------

STYLES = ["ublox", "sirf", "quectel", "garmin", "hemisphere", "beidou", "gns"]


def receiver(style: str, moment: datetime, second: int, valid: bool) -> str:
    lat = lat_of(second) if valid else None
    if style == "ublox":
        return (
            ublox(moment, second)
            if valid
            else format_rmc(moment, None, None, valid=False)
            + format_gga(moment, None, None, quality=0)
        )
    if style == "sirf":
        text = (
            format_gga(moment, lat, 116.4, quality=int(valid), satellites=6, talker="GP")
            + format_gga(moment, lat, 116.4, quality=int(valid), satellites=3, talker="GL")
            + format_gsa(9, fix_type=3 if valid else 1, talker="GP")
            + format_rmc(moment, lat, 116.4, valid=valid, speed_mps=2.0, talker="GP")
        )
    elif style == "quectel":
        text = (
            format_rmc(moment, lat, 116.4, valid=valid, speed_mps=2.0)
            + format_vtg(2.0, 10.0, valid=valid)
            + format_gga(moment, lat, 116.4, quality=int(valid))
            + format_gsa(9, fix_type=3 if valid else 1)
            + format_gll(moment, lat, 116.4, valid=valid)
        )
    elif style == "garmin":
        text = (
            format_rmc(moment, lat, 116.4, valid=valid, talker="GP")
            + format_gga(moment, lat, 116.4, quality=int(valid), talker="GP")
            + format_gll(moment, lat, 116.4, valid=valid, talker="GP")
        )
    elif style == "hemisphere":
        text = (
            format_gga(moment, lat, 116.4, quality=int(valid), talker="GP")
            + format_vtg(2.0, 10.0, valid=valid, talker="GP")
            + format_zda(moment, talker="GP")
        )
    if style == "beidou":
        return format_rmc(moment, lat, 116.4, valid=valid, talker="BD") + format_gga(
            moment, lat, 116.4, quality=int(valid), talker="BD"
        )
    return format_gns(moment, lat, 116.4, mode="AA" if valid else "NN") + format_rmc(
        moment, lat, 116.4, valid=valid
    )
    return text


@st.composite
def drives(draw: st.DrawFn) -> tuple[str, datetime, bytes, dict[datetime, float]]:
    style = draw(st.sampled_from(STYLES))
    start = draw(
        st.datetimes(
            min_value=datetime(2026, 1, 2), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
        )
    ).replace(microsecond=0)
    count = draw(st.integers(2, 12))
    truth: dict[datetime, float] = {}
    text = ""
    for s in range(count):
        moment = start + timedelta(seconds=s)
        valid = draw(st.booleans()) if s % 3 == 2 else True
        epoch = receiver(style, moment, s, valid)
        if draw(st.integers(0, 9)) == 0:
            epoch = epoch[: draw(st.integers(0, len(epoch)))]  # cut mid-epoch, as at a reset
        text += epoch
        truth[moment] = lat_of(s)
    return style, start, text.encode(), truth


@settings(max_examples=150, deadline=None)
@given(drives(), st.lists(st.integers(1, 60), max_size=40))
def test_properties_of_any_receiver(
    drive: tuple[str, datetime, bytes, dict[datetime, float]], cuts: list[int]
) -> None:
    _style, start, data, truth = drive
    host = start + timedelta(minutes=5)

    def assemble(chunks: list[bytes]) -> list[Fix]:
        framer, assembler = NmeaFramer(), EpochAssembler(wall=lambda: host)
        return [f for c in chunks for s in framer.feed(c) for f in assembler.feed(s)]

    whole = assemble([data])
    chunks, at = [], 0
    for cut in cuts:
        chunks.append(data[at : at + cut])
        at += cut
    chunks.append(data[at:])
    # Chunking at any byte boundary never changes the result.
    assert assemble(chunks) == whole
    for fix in whole:
        if fix.time is not None:
            # No fix dated outside [release date, now + bound].
            assert fix.time.date() >= RELEASE_DATE
            assert fix.time <= host + AHEAD_OF_HOST
        if fix.valid and fix.time is not None:
            # Every valid fix's position comes from its own epoch.
            assert fix.lat == pytest.approx(truth[fix.time], abs=1e-7)
