from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.drive import SimClock

WALL = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_plain_clock_runs_at_its_speed_for_ever() -> None:
    ticks = Ticks()
    clock = SimClock(WALL - timedelta(hours=1), speed=240.0, monotonic=ticks)
    ticks.t += 60.0
    assert clock.now() == WALL + timedelta(hours=3)  # ahead of the wall clock
    assert clock.real_time_in_s() == math.inf


def test_a_catching_up_clock_meets_the_wall_clock_and_then_keeps_pace() -> None:
    ticks = Ticks()
    clock = SimClock(
        WALL - timedelta(hours=4), speed=241.0, monotonic=ticks, catch_up=True, wall=lambda: WALL
    )
    assert clock.real_time_in_s() == pytest.approx(60.0)  # 4 h at 240 s gained per second
    ticks.t += 30.0
    assert clock.now() == WALL - timedelta(hours=2) + timedelta(seconds=30)
    ticks.t += 30.0
    assert clock.now() == WALL + timedelta(seconds=60)
    assert clock.real_time_in_s() == 0.0
    ticks.t += 3600.0
    assert clock.now() == WALL + timedelta(seconds=3660)


@given(
    st.floats(0.0, 48 * 3600.0),
    st.floats(1.0, 1000.0),
    st.lists(st.floats(0.0, 600.0), min_size=1, max_size=20),
)
def test_a_catching_up_clock_never_runs_ahead_of_the_wall_nor_backwards(
    lead_s: float, speed: float, steps: list[float]
) -> None:
    ticks = Ticks()
    start = WALL - timedelta(seconds=lead_s)
    clock = SimClock(start, speed=speed, monotonic=ticks, catch_up=True, wall=lambda: WALL)
    before = clock.now()
    elapsed = 0.0
    for step in steps:
        ticks.t += step
        elapsed += step
        now = clock.now()
        assert now >= before
        # never past the wall clock at this moment (the wall moved by `elapsed` as well)
        assert now <= WALL + timedelta(seconds=elapsed, microseconds=1)
        before = now


def test_a_start_at_or_after_now_runs_at_real_time_from_the_start() -> None:
    ticks = Ticks()
    clock = SimClock(
        WALL + timedelta(hours=1), speed=10.0, monotonic=ticks, catch_up=True, wall=lambda: WALL
    )
    assert clock.real_time_in_s() == 0.0
    ticks.t += 6.0
    assert clock.now() == WALL + timedelta(hours=1, seconds=6)
