"""The agent tags readings on the clock it is given (edge.clock), in drive seconds, and a
recording keeps that clock's readings exactly; the clock, held to GNSS time, dates readings that
have no GNSS time of their own, and no reading falls outside [release, now + bound]."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.agent import Agent
from edge.clock import EARLIEST_READING, ClockDiscipline, Dated, DatingSettings, SystemClock
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.gps import GpsReceiver
from edge.modbus import ReadRequest
from edge.mqtt import MqttSettings
from edge.nmea import format_gga, format_rmc
from edge.recording import load_recording
from tests.unit.edge.ports import AnsweringPort

GNSS = datetime(2026, 3, 2, 1, 0, 0, tzinfo=UTC)
HOST = datetime(2026, 3, 2, 1, 0, 7, 123456, tzinfo=UTC)


class StillClock:
    """Moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return HOST

    def boottime(self) -> float | None:
        return 50.0


def same_block(request: ReadRequest) -> list[int]:
    """A box that answers every request with the same register block."""
    return list(range(request.count))


def make_agent(tmp_path: Path, clock: StillClock, record: bool = False) -> Agent:
    settings = EdgeSettings(
        vehicle="v",
        mqtt=MqttSettings.from_url("mqtt://127.0.0.1:1883"),
        box=BoxSettings(port="/dev/box"),
        gps=GpsSettings(port="/dev/gps"),
        outbox_path=str(tmp_path / "outbox.sqlite3"),
        time_scale=200.0,  # the clock already reads drive seconds: the scale is not applied again
        record_path=str(tmp_path / "drive.jsonl.gz") if record else None,
    )
    return Agent(settings, open_port=lambda *_: AnsweringPort(same_block), clock=clock)


def test_the_agent_dates_and_ages_on_its_clock(tmp_path: Path) -> None:
    clock = StillClock()
    agent = make_agent(tmp_path, clock, record=True)
    assert agent.started == 1000.0
    assert agent.powered_for == 50.0
    first = agent.poll_once()
    assert first is not None
    assert first.time == HOST  # no fix yet: the clock's wall time
    assert first.time_source == "host"
    receiver = agent.gps
    assert isinstance(receiver, GpsReceiver)
    clock.now = 1003.0
    receiver.feed((format_gga(GNSS, 39.89, 116.47) + format_rmc(GNSS, 39.89, 116.47)).encode())
    clock.now = 1004.25
    second = agent.poll_once()
    assert second is not None
    assert second.position is not None
    assert second.position.age_s == 1.25
    assert second.time == GNSS + timedelta(seconds=1.25)
    assert "stale_fix" not in second.flags
    agent.outbox.close()
    assert agent.recorder is not None
    agent.recorder.close()

    recording = load_recording(tmp_path / "drive.jsonl.gz")
    assert recording.header["clock"] == {"origin": 1000.0, "started": 1000.0, "powered_for": 50.0}
    assert [(r.tagged_at, r.fix_received) for r in recording.readings] == [
        (1000.0, None),
        (1004.25, 1003.0),
    ]


def test_the_system_clock_reads_drive_seconds() -> None:
    before = time.monotonic()
    scaled = SystemClock(400.0).monotonic()
    after = time.monotonic()
    assert before * 400.0 <= scaled <= after * 400.0
    assert SystemClock().wall().tzinfo is UTC
    boot = SystemClock(2.0).boottime()
    if boot is None:
        pytest.skip("no CLOCK_BOOTTIME on this platform")
    assert boot >= 2.0 * time.clock_gettime(time.CLOCK_BOOTTIME) - 1.0


# -- the disciplined clock -----------------------------------------------------------------------

AHEAD = timedelta(days=1)  # a gateway without RTC whose calendar clock is a day off


def test_before_any_fix_a_reading_has_the_host_time_unverified() -> None:
    dated = ClockDiscipline().date(None, 10.0, HOST)
    assert dated == Dated(HOST, "host", ("clock_unverified",))


def test_after_fixes_a_reading_without_gnss_time_is_dated_on_the_gnss_timeline() -> None:
    discipline = ClockDiscipline()
    for i in range(5):
        discipline.observe(GNSS + timedelta(seconds=i), 100.0 + i)
    # The fix is lost: 30 s later on the agent's clock, whatever the calendar clock says.
    dated = discipline.date(None, 134.0, HOST + AHEAD)
    assert dated == Dated(GNSS + timedelta(seconds=34), "host", ("clock_corrected",))


def test_one_fix_dating_several_readings_is_one_sample() -> None:
    discipline = ClockDiscipline()
    for _ in range(3):
        discipline.observe(GNSS, 100.0)
    assert discipline.samples == 1


def test_a_lone_misdated_fix_moves_neither_the_clock_nor_beyond_the_bound() -> None:
    discipline = ClockDiscipline(DatingSettings(max_ahead_s=600.0))
    for i in range(6):
        discipline.observe(GNSS + timedelta(seconds=i), 100.0 + i)
    wrong = GNSS + timedelta(days=3)
    discipline.observe(wrong, 106.0)
    assert discipline.now(106.0) == GNSS + timedelta(seconds=6)
    dated = discipline.date(wrong, 106.0, HOST)
    assert dated == Dated(GNSS + timedelta(seconds=606), "gnss", ("clock_clamped",))
    assert discipline.clamped == 1


def test_a_real_step_is_taken_up_once_it_is_the_majority() -> None:
    settings = DatingSettings(window=5)
    discipline = ClockDiscipline(settings)
    for i in range(5):
        discipline.observe(GNSS + timedelta(seconds=i), 100.0 + i)
    # The gateway was suspended for an hour: its monotonic clock stood still meanwhile.
    later = GNSS + timedelta(hours=1)
    for i in range(3):
        discipline.observe(later + timedelta(seconds=i), 105.0 + i)
    assert discipline.now(110.0) == later + timedelta(seconds=5)


def test_no_reading_is_dated_before_the_release_and_a_replay_dates_it_alike() -> None:
    discipline = ClockDiscipline()
    reset = datetime(1970, 1, 1, 0, 2, tzinfo=UTC)  # a gateway without RTC after boot
    dated = discipline.date(None, 10.0, reset)
    assert dated == Dated(EARLIEST_READING, "host", ("clock_unverified", "clock_clamped"))
    # A replay hands the recorded time back as the host's time.
    assert ClockDiscipline().date(None, 10.0, dated.time) == dated


def test_the_dating_settings_refuse_what_cannot_work() -> None:
    for bad, name in (
        (DatingSettings(max_ahead_s=0.0), "max_ahead_s"),
        (DatingSettings(max_ahead_s=float("nan")), "max_ahead_s"),
        (DatingSettings(window=0), "window"),
        (DatingSettings(earliest=datetime(2026, 1, 1)), "earliest"),
    ):
        with pytest.raises(ValueError, match=name):
            bad.check()


_times = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(
    base=st.datetimes(
        min_value=datetime(2026, 6, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    jitter=st.lists(st.floats(-0.5, 0.5), min_size=15, max_size=40),
    outliers=st.lists(st.tuples(st.integers(0, 39), st.floats(-1e8, 1e8)), max_size=7),
)
def test_the_offset_is_a_good_fix_s_however_the_outliers_fall(
    base: datetime, jitter: list[float], outliers: list[tuple[int, float]]
) -> None:
    """With fewer than half of the window's fixes misdated, by any amount, the clock reads
    within the good fixes' jitter of GNSS time."""
    wrong = {i % len(jitter): off for i, off in outliers if i % len(jitter) >= len(jitter) - 15}
    discipline = ClockDiscipline(DatingSettings(window=15))
    for i, j in enumerate(jitter):
        off = wrong.get(i, j)
        discipline.observe(base + timedelta(seconds=i + off), float(i))
    now = discipline.now(float(len(jitter)))
    assert now is not None
    assert abs((now - (base + timedelta(seconds=len(jitter)))).total_seconds()) <= 0.5 + 1e-6


@given(
    fixes=st.lists(st.tuples(_times, st.floats(0, 1e7)), max_size=20),
    gnss=st.one_of(st.none(), _times),
    mono=st.floats(0, 1e7),
    wall=_times,
)
def test_no_reading_is_dated_outside_the_release_and_now_plus_the_bound(
    fixes: list[tuple[datetime, float]], gnss: datetime | None, mono: float, wall: datetime
) -> None:
    settings = DatingSettings()
    discipline = ClockDiscipline(settings)
    for moment, received in fixes:
        discipline.observe(moment, received)
    dated = discipline.date(gnss, mono, wall)
    assert dated.time >= settings.earliest
    estimate = discipline.now(mono)
    if estimate is not None:
        bound = estimate + timedelta(seconds=settings.max_ahead_s)
        assert dated.time <= max(bound, settings.earliest)
    assert dated.source == ("host" if gnss is None else "gnss")
    expected = gnss if gnss is not None else estimate if estimate is not None else wall
    assert ("clock_clamped" in dated.flags) == (
        dated.time != expected or expected <= settings.earliest
    )
    # Dating a reading again from what it was dated with changes nothing (a replay).
    if gnss is None and estimate is None:
        assert ClockDiscipline(settings).date(None, mono, dated.time) == dated


def test_an_agent_dates_a_lost_fix_s_readings_on_gnss_time_not_a_wrong_calendar(
    tmp_path: Path,
) -> None:
    clock = StillClock()
    agent = make_agent(tmp_path, clock)
    receiver = agent.gps
    assert isinstance(receiver, GpsReceiver)
    first = agent.poll_once()
    assert first is not None
    assert set(first.flags) == {"no_fix", "host_time", "clock_unverified"}
    for i in range(3):
        clock.now = 1001.0 + i
        moment = GNSS + timedelta(seconds=i)
        receiver.feed(
            (format_gga(moment, 39.89, 116.47) + format_rmc(moment, 39.89, 116.47)).encode()
        )
        reading = agent.poll_once()
        assert reading is not None
        assert reading.time == moment
        assert reading.time_source == "gnss"
    # The receiver loses the sky: its fix is no longer valid.
    clock.now = 1040.0
    lost = GNSS + timedelta(seconds=39)
    receiver.feed(format_rmc(lost, 39.89, 116.47, valid=False).encode())
    reading = agent.poll_once()
    assert reading is not None
    assert reading.time == lost  # not HOST, seven seconds and a calendar off
    assert reading.time_source == "host"
    assert set(reading.flags) == {"no_fix", "host_time", "clock_corrected"}
    health = agent.health()["clock"]
    assert health["disciplined"] is True
    assert health["samples"] == 3
    agent.outbox.close()
