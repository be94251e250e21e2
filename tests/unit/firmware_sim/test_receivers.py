"""The receiver corpus says what its truth says, in each receiver's documented form."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pynmea2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.nmea import checksum
from firmware_sim.receivers import (
    RECEIVERS,
    STATES,
    Segment,
    epoch_sentences,
    epochs_at,
    make_track,
    per_burst,
    rechunk,
    reported_date,
    transmit,
    utc_at,
)

names = st.sampled_from(sorted(RECEIVERS))
starts = st.datetimes(
    min_value=datetime(2026, 12, 1), max_value=datetime(2027, 12, 1), timezones=st.just(UTC)
).map(lambda m: m.replace(microsecond=0))
segment_lists = st.lists(
    st.builds(
        Segment,
        state=st.sampled_from(STATES),
        epochs=st.integers(1, 6),
        speed_mps=st.floats(0.0, 40.0),
        turn_deg_per_s=st.floats(-20.0, 20.0),
        step_back_s=st.sampled_from([0.0, 0.3, 60.0, 86_400.0 * 6000]),
    ),
    min_size=1,
    max_size=5,
)


def _minutes(field: str, hemisphere: str, degree_digits: int) -> float:
    value = int(field[:degree_digits]) + float(field[degree_digits:]) / 60.0
    return -value if hemisphere in ("S", "W") else value


@given(names, starts, st.floats(-70.0, 70.0), st.floats(-179.0, 179.0), segment_lists)
def test_every_sentence_is_the_truth_in_the_receivers_form(
    name: str, start: datetime, lat: float, lon: float, segments: list[Segment]
) -> None:
    model = RECEIVERS[name]
    track = make_track(start, lat, lon, segments, seed=3)
    for epoch in track:
        sentences = epoch_sentences(model, epoch)
        kinds = [s[3:6] if not s.startswith("$P") else s[1:6] for s in sentences]
        # The receiver's own order, each kind in one run (GSA and GSV may be several lines).
        runs = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
        expected = [k if k != "GGA2" else "GGA" for k in model.order]
        assert [k for i, k in enumerate(expected) if i == 0 or expected[i - 1] != k] == runs
        for sentence in sentences:
            assert sentence.endswith("\r\n")
            assert sentence.isascii()
            body, star, digits = sentence[1:-2].partition("*")
            if sentence[3:6] in model.no_checksum and not sentence.startswith("$P"):
                assert not star
            else:
                assert int(digits, 16) == checksum(body)
            msg = pynmea2.parse(sentence.strip(), check=not model.no_checksum)
            kind = msg.sentence_type
            if kind in ("RMC", "GGA", "GLL") and msg.lat:
                lat_deg = _minutes(msg.lat, msg.lat_dir, 2)
                lon_deg = _minutes(msg.lon, msg.lon_dir, 3)
                # Exact to the grid: far below a centimetre.
                assert abs(lat_deg - epoch.lat) < 1e-9
                assert abs(lon_deg - epoch.lon) < 1e-9
            if kind == "RMC":
                assert (msg.status == "A") == epoch.receiver_valid
            if kind == "GGA":
                assert (int(msg.gps_qual) > 0) == epoch.receiver_valid
        has_position = any(s[3:6] == "GGA" and ",,,,," not in s for s in sentences)
        assert has_position == (epoch.state in ("fix", "weak", "void"))


@given(starts, st.integers(1, 90))
def test_the_track_counts_seconds_and_leap_seconds(start: datetime, length: int) -> None:
    leap_day = start.date()
    track = make_track(start, 10.0, 20.0, [Segment("fix", length)], leap_days=frozenset({leap_day}))
    for before, after in pairwise(track):
        assert after.elapsed_s - before.elapsed_s == 1.0
        if before.leap:
            assert (after.day, after.second_of_day) == (leap_day + timedelta(days=1), 0)
        elif before.day == leap_day and before.second_of_day == 86_399:
            assert after.leap
        else:
            assert after.utc - before.utc == timedelta(seconds=1)
    for epoch in track:
        assert epoch in epochs_at(track, epoch.window()[0])
        assert utc_at(track, epoch.elapsed_s) == epoch.window()[0]


def test_the_leap_second_reads_235960_on_its_own_day() -> None:
    start = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    track = make_track(start, 1.0, 1.0, [Segment("fix", 3)], leap_days=frozenset({start.date()}))
    stamps = [epoch_sentences(RECEIVERS["beidou-bd"], e)[-1] for e in track]
    assert [s.split(",")[1:5] for s in stamps] == [
        ["235959.000", "31", "12", "2026"],
        ["235960.000", "31", "12", "2026"],
        ["000000.000", "01", "01", "2027"],
    ]


def test_a_receiver_past_its_rollover_reports_dates_1024_weeks_early() -> None:
    old = RECEIVERS["legacy-rollover"]
    assert reported_date(old, date(2019, 4, 7)) == date(1999, 8, 22)
    assert reported_date(old, date(2019, 4, 6)) == date(2019, 4, 6)
    assert reported_date(old, date(2026, 12, 7)) == date(2026, 12, 7) - timedelta(weeks=1024)
    track = make_track(datetime(2019, 4, 7, 12, tzinfo=UTC), 1.0, 1.0, [Segment("fix", 1)])
    rmc = epoch_sentences(old, track[0])[0]
    assert rmc.split(",")[9] == "220899"
    assert reported_date(RECEIVERS["ublox-m8"], date(2019, 4, 7)) == date(2019, 4, 7)


def test_a_restart_sends_no_fix_with_its_clock_stepped_back() -> None:
    start = datetime(2027, 3, 1, 8, 0, 0, tzinfo=UTC)
    segments = [Segment("fix", 3), Segment("restart", 2, step_back_s=16 * 365.25 * 86400)]
    track = make_track(start, 1.0, 1.0, segments)
    model = RECEIVERS["ublox-m8"]
    rmc = epoch_sentences(model, track[3])[0]
    assert rmc.startswith("$GNRMC,080003.00,V,,,,,,,")
    assert ",010311," in rmc
    bursts = transmit(model, track)
    # The epoch before the reset is cut in the middle of a sentence.
    assert [b.complete for b in bursts] == [True, True, False, True, True]
    assert not bursts[2].data.endswith(b"\r\n")


@given(names, st.lists(st.integers(1, 300), min_size=1, max_size=6))
def test_reads_hold_every_byte_in_order_dated_by_their_last_byte(
    name: str, sizes: list[int]
) -> None:
    start = datetime(2027, 5, 1, 23, 59, 50, tzinfo=UTC)
    track = make_track(start, 45.0, 7.0, [Segment("fix", 5), Segment("outage", 3)])
    bursts = transmit(RECEIVERS[name], track)
    chunks = rechunk(bursts, sizes)
    assert b"".join(c.data for c in chunks) == b"".join(b.data for b in bursts)
    assert b"".join(c.data for c in per_burst(bursts)) == b"".join(b.data for b in bursts)
    times = [c.at_s for c in chunks]
    assert times == sorted(times)
    assert all(b.start_s + len(b.data) * b.byte_s < b.epoch + 1 for b in bursts)


def test_a_segment_refuses_what_no_receiver_does() -> None:
    with pytest.raises(ValueError, match="state"):
        Segment("lost", 3)
    with pytest.raises(ValueError, match="epochs"):
        Segment("fix", 0)
    with pytest.raises(ValueError, match="whole second"):
        make_track(datetime(2027, 1, 1, 0, 0, 0, 5, tzinfo=UTC), 0.0, 0.0, [Segment("fix", 1)])
