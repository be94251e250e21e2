"""The edge's GPS path against real receivers' output, generated from a known truth track.

The bytes of firmware_sim.receivers go through what the agent runs on a vehicle (the framer and
assembler inside `GpsReceiver.feed`, the fix keeper with the default filter, `tag_reading`), cut
into reads at random byte boundaries. Whatever the receiver, the track, the cuts and the start
time (across midnight, new year, a leap second), these must hold:

- a fix marked valid has a date, stands for an epoch the receiver called valid and the default
  filter passes, and its position is that epoch's to 1 cm;
- every epoch the receiver sent whole and called valid becomes a valid fix (all voices heard);
- a reading dated from GNSS is within `TIME_BOUND` of true time; no fix or reading is dated
  before the agent's build or beyond the host's now plus `FUTURE_BOUND`;
- how the bytes were cut changes no fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from edge.agent import Tagging, tag_reading
from edge.gnss_time import RELEASE_DATE
from edge.gps import GpsReceiver, TimedFix
from edge.nmea import Fix
from edge.profile import load_profile
from edge.quality import QualityTracker, distance_m
from edge.wire import Reading
from firmware_sim.receivers import (
    RECEIVERS,
    Burst,
    Chunk,
    ReceiverModel,
    Segment,
    TruthEpoch,
    epochs_at,
    make_track,
    per_burst,
    rechunk,
    transmit,
    utc_at,
)

PROFILE = load_profile("default-multi")
BLOCK = tuple(PROFILE.encode({"pm25": 30.0, "temperature": 10.0}))
# No date before this is the agent's (its release).
BUILD_DATE = datetime.combine(RELEASE_DATE, datetime.min.time(), tzinfo=UTC)
FUTURE_BOUND = timedelta(seconds=10)  # beyond the host clock's offset from true time
# An epoch judged when the next one begins reaches a reading one epoch late.
TIME_BOUND = timedelta(seconds=2)
POSITION_M = 0.01
# A reader keeping up returns what the port holds well within the epoch timeout.
KEEPING_UP = 0.1
LEAP_DAYS = frozenset({date(2026, 12, 31), date(2027, 6, 30)})

# Receivers whose every fix carries what the filter needs, so each valid epoch must be a fix.
# Without its checksum-less GGA a receiver's fixes are judged by the configured policy.
COMPLETE = frozenset(RECEIVERS) - {"legacy-no-checksum"}


@dataclass
class Run:
    fixes: list[Fix] = field(default_factory=list)  # as the keeper left them, in order
    readings: list[tuple[float, datetime, Reading]] = field(default_factory=list)


def drive(
    track: Sequence[TruthEpoch],
    chunks: Sequence[Chunk],
    host_offset_s: float,
    require_checksum: bool = True,
) -> Run:
    """Feed the reads to a receiver on a clock that follows the track; tag a reading after
    each read that ends a new second, as the agent's polls would."""
    run = Run()
    now = [0.0]
    origin = track[0].utc

    def wall() -> datetime:
        return origin + timedelta(seconds=now[0] + host_offset_s)

    class Recording(GpsReceiver):
        def offer(self, fix: Fix, publish: bool = True) -> TimedFix:
            timed = super().offer(fix, publish)
            run.fixes.append(timed.fix)
            return timed

    # Epoch timeouts run on the line's time, not on how fast this machine runs the test.
    receiver = Recording(
        "unused",
        clock=lambda: now[0],
        wall=wall,
        timer=lambda: now[0],
        require_checksum=require_checksum,
    )
    tracker = QualityTracker()
    last_second = -1
    for chunk in chunks:
        now[0] = chunk.at_s
        receiver.feed(chunk.data)
        if int(chunk.at_s) != last_second:
            last_second = int(chunk.at_s)
            seq = len(run.readings) + 1
            reading = tag_reading(
                "v", seq, PROFILE, BLOCK, receiver.latest(), now[0], wall(), Tagging(), tracker
            )
            run.readings.append((now[0], wall(), reading))
    return run


def check(
    model: ReceiverModel,
    track: Sequence[TruthEpoch],
    bursts: list[Burst],
    run: Run,
    *,
    live: bool,
    complete: bool,
) -> None:
    """`live`: the reads kept up with the receiver, so reading times can be held to the truth
    (a read that waited for bytes dates everything in it by its last byte). `complete`: every
    valid epoch sent whole must become a valid fix."""
    last_wall = track[-1].utc + timedelta(seconds=5)
    valid = [fix for fix in run.fixes if fix.valid]
    for fix in valid:
        assert fix.time is not None, f"{model.name}: valid fix without a date: {fix}"
        assert BUILD_DATE <= fix.time <= last_wall + FUTURE_BOUND, f"{model.name}: dated {fix}"
        candidates = [e for e in epochs_at(track, fix.time) if e.usable]
        assert candidates, (
            f"{model.name}: valid fix at {fix.time.isoformat()} but the receiver said "
            f"{[e.state for e in epochs_at(track, fix.time)] or 'nothing'} then: {fix}"
        )
        off = min(distance_m(e.lat, e.lon, fix.lat, fix.lon) for e in candidates)
        assert off <= POSITION_M, f"{model.name}: {off:.3f} m from truth at {fix.time}: {fix}"
    if complete:
        whole = {b.epoch for b in bursts if b.complete}
        # The last epochs may still wait for what closes them.
        for epoch in track[:-2]:
            if epoch.usable and epoch.index in whole:
                low, high = epoch.window()
                assert any(
                    low <= f.time <= high
                    and distance_m(epoch.lat, epoch.lon, f.lat, f.lon) <= POSITION_M
                    for f in valid
                    if f.time is not None
                ), f"{model.name}: the valid epoch {epoch.utc.isoformat()} gave no valid fix"
    for elapsed, host, reading in run.readings:
        assert BUILD_DATE <= reading.time <= host + FUTURE_BOUND, (
            f"{model.name}: reading dated {reading.time.isoformat()} at {host.isoformat()}"
        )
        if live and reading.time_source == "gnss":
            truth = utc_at(track, elapsed)
            assert abs(reading.time - truth) <= TIME_BOUND, (
                f"{model.name}: reading dated {reading.time.isoformat()}, truly {truth}"
            )


# -- strategies ----------------------------------------------------------------------------------


def _whole(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


anywhere = st.datetimes(
    min_value=datetime(2026, 12, 10), max_value=datetime(2027, 11, 30), timezones=st.just(UTC)
).map(_whole)
# Starts just before a midnight, a new year, or a leap second (at the end of LEAP_DAYS).
before_midnight = st.builds(
    lambda day, back: (
        datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(days=1, seconds=-back)
    ),
    st.dates(min_value=date(2026, 12, 10), max_value=date(2027, 11, 30)),
    st.integers(1, 40),
)
before_new_year = st.integers(1, 40).map(
    lambda back: datetime(2027, 1, 1, tzinfo=UTC) - timedelta(seconds=back)
)
before_leap = st.sampled_from(sorted(LEAP_DAYS)).flatmap(
    lambda day: st.integers(1, 30).map(
        lambda back: (
            datetime.combine(day, datetime.min.time(), tzinfo=UTC)
            + timedelta(days=1, seconds=-back)
        )
    )
)


def segments(states: Sequence[str]) -> st.SearchStrategy[list[Segment]]:
    segment = st.builds(
        Segment,
        state=st.sampled_from(states),
        epochs=st.integers(1, 8),
        speed_mps=st.floats(0.0, 30.0),
        turn_deg_per_s=st.floats(-15.0, 15.0),
    )
    opening = st.builds(Segment, state=st.just("fix"), epochs=st.integers(3, 8))
    return st.tuples(opening, st.lists(segment, max_size=5)).map(lambda p: [p[0], *p[1]])


cuts = st.one_of(
    st.lists(st.integers(1, 400), min_size=1, max_size=8),
    st.just([1 << 30]),  # the whole stream in one read
)


@dataclass(frozen=True)
class Case:
    start: datetime
    lat: float
    lon: float
    segments: list[Segment]
    seed: int
    course: float
    sizes: list[int]
    host_offset_s: float


def cases(starts: st.SearchStrategy[datetime], states: Sequence[str]) -> st.SearchStrategy[Case]:
    return st.builds(
        Case,
        start=starts,
        lat=st.floats(-60.0, 60.0),
        lon=st.floats(-179.0, 179.0),
        segments=segments(states),
        seed=st.integers(0, 2**16),
        course=st.floats(0.0, 359.9),
        sizes=cuts,
        host_offset_s=st.floats(-2.0, 2.0),
    )


def exercise(
    name: str, case: Case, *, require_checksum: bool = True, max_wait_s: float | None = KEEPING_UP
) -> None:
    model = RECEIVERS[name]
    track = make_track(
        case.start,
        case.lat,
        case.lon,
        case.segments,
        seed=case.seed,
        leap_days=LEAP_DAYS,
        course_deg=case.course,
    )
    bursts = transmit(model, track)
    epoch_reads = drive(track, per_burst(bursts), case.host_offset_s, require_checksum)
    reads = rechunk(bursts, case.sizes, max_wait_s)
    cut_reads = drive(track, reads, case.host_offset_s, require_checksum)
    assert cut_reads.fixes == epoch_reads.fixes, f"{name}: the cut bytes gave other fixes"
    complete = name in COMPLETE or not require_checksum
    check(model, track, bursts, epoch_reads, live=True, complete=complete)
    check(model, track, bursts, cut_reads, live=False, complete=complete)


# Shrinking a failure of a marked receiver would cost minutes; the messages name the epoch.
EXAMPLES = settings(max_examples=12, phases=(Phase.explicit, Phase.reuse, Phase.generate))
CLEAN = ("fix", "fix", "void", "outage")

# -- the properties, one family of situations at a time ------------------------------------------


@pytest.mark.parametrize(
    "name",
    sorted(RECEIVERS),
)
@EXAMPLES
@given(case=cases(anywhere, CLEAN))
def test_fixes_are_the_truth_the_receiver_reported(name: str, case: Case) -> None:
    exercise(name, case)


@pytest.mark.parametrize(
    "name",
    sorted(RECEIVERS),
)
@EXAMPLES
@given(case=cases(anywhere, ("fix", "weak")))
def test_epochs_too_weak_for_the_filter_never_place_a_reading(name: str, case: Case) -> None:
    exercise(name, case)


@pytest.mark.parametrize(
    "name",
    sorted(RECEIVERS),
)
@EXAMPLES
@given(case=cases(st.one_of(before_midnight, before_new_year, before_leap), CLEAN))
def test_midnight_new_year_and_the_leap_second(name: str, case: Case) -> None:
    exercise(name, case)


restarts = st.builds(
    Segment,
    state=st.just("restart"),
    epochs=st.integers(1, 8),
    speed_mps=st.floats(0.0, 20.0),
    step_back_s=st.sampled_from([0.3, 1.0, 30.0, 3600.0, 5 * 3600.0, 16 * 365.25 * 86400.0]),
)


@pytest.mark.parametrize(
    "name",
    sorted(RECEIVERS),
)
@EXAMPLES
@given(
    case=cases(anywhere, CLEAN),
    restart=restarts,
    after=st.integers(3, 8),
    where=st.integers(0, 5),
)
def test_a_restart_stepping_time_back_revives_nothing(
    name: str, case: Case, restart: Segment, after: int, where: int
) -> None:
    at = 1 + where % len(case.segments)
    tail = [Segment("fix", after)]
    placed = [*case.segments[:at], restart, *tail, *case.segments[at:]]
    exercise(name, replace(case, segments=placed))


@pytest.mark.parametrize(
    "name",
    # Without its GGA the checksum-less receiver's fixes are not required, so nothing shows.
    sorted(RECEIVERS),
)
def test_the_leap_second_is_an_epoch_like_any_other(name: str) -> None:
    start = datetime(2026, 12, 31, 23, 59, 54, tzinfo=UTC)
    case = Case(start, 48.1, 11.5, [Segment("fix", 14)], 7, 80.0, [97], 0.5)
    exercise(name, case)


@EXAMPLES
@given(case=cases(anywhere, ("fix", "fix", "weak", "void", "outage")))
def test_checksum_less_sentences_count_when_configured(case: Case) -> None:
    exercise("legacy-no-checksum", case, require_checksum=False)


@pytest.mark.parametrize("name", ["ublox-m8", "sirf-star3", "beidou-bd"])
@EXAMPLES
@given(case=cases(anywhere, CLEAN))
def test_a_reader_fallen_behind_changes_no_fix(name: str, case: Case) -> None:
    exercise(name, case, max_wait_s=None)
