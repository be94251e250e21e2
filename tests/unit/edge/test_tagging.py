"""How a reading gets its time, position and flags from the newest fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge.agent import Tagging, tag_reading
from edge.gps import TimedFix
from edge.nmea import Fix
from edge.profile import load_profile

PROFILE = load_profile("default-multi")
BLOCK = tuple(PROFILE.encode({"pm25": 30.0, "temperature": 10.0}))
WALL = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
GNSS = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def _fix(valid: bool = True) -> Fix:
    return Fix(GNSS, 39.89, 116.46, valid, 1 if valid else 0, 10, 0.8, 40.0, 5.0, 90.0, "GN")


def test_valid_fix_gives_gnss_time_plus_age() -> None:
    reading = tag_reading(
        "v", 1, PROFILE, BLOCK, TimedFix(_fix(), 100.0), 100.5, WALL, Tagging(5.0, 1.0)
    )
    assert reading.time == GNSS + timedelta(seconds=0.5)
    assert reading.time_source == "gnss"
    assert reading.position is not None
    assert reading.position.age_s == 0.5
    assert reading.flags == ()
    assert reading.values["pm25"] == 30.0
    assert reading.channel_flags["humidity"] == ("sentinel",)


def test_age_is_scaled_in_simulated_drives() -> None:
    reading = tag_reading(
        "v", 1, PROFILE, BLOCK, TimedFix(_fix(), 100.0), 100.5, WALL, Tagging(5.0, 60.0)
    )
    assert reading.time == GNSS + timedelta(seconds=30)
    assert "stale_fix" in reading.flags


def test_no_fix_uses_host_time_and_flags_it() -> None:
    reading = tag_reading("v", 1, PROFILE, BLOCK, None, 0.0, WALL, Tagging())
    assert reading.time == WALL
    assert reading.position is None
    assert set(reading.flags) == {"no_fix", "host_time", "clock_unverified"}


def test_invalid_fix_keeps_position_but_not_time() -> None:
    reading = tag_reading("v", 1, PROFILE, BLOCK, TimedFix(_fix(False), 0.0), 0.0, WALL, Tagging())
    assert reading.position is not None
    assert not reading.position.valid
    assert reading.time == WALL
    assert "no_fix" in reading.flags


def test_quality_history_and_warmup_come_from_the_tracker() -> None:
    from edge.quality import QualitySettings, QualityTracker

    tracker = QualityTracker(QualitySettings(warmup_s=60.0))
    tagging = Tagging(5.0, 1.0)
    first = tag_reading(
        "v", 1, PROFILE, BLOCK, TimedFix(_fix(), 100.0), 100.0, WALL, tagging, tracker, 10.0
    )
    assert first.channel_flags["pm25"] == ("warmup",)
    spiky = tuple(PROFILE.encode({"pm25": 1900.0, "temperature": 10.0}))
    second = tag_reading(
        "v", 2, PROFILE, spiky, TimedFix(_fix(), 110.0), 110.0, WALL, tagging, tracker, 70.0
    )
    assert second.channel_flags["pm25"] == ("spike",)
    assert second.channel_flags["humidity"] == ("sentinel",)


def test_a_valid_fix_without_a_trusted_time_places_but_does_not_date() -> None:
    """A fix whose date the agent refused (edge.gnss_time) keeps its position; the reading is
    dated by the host and says so."""
    from dataclasses import replace

    fix = replace(_fix(), time=None)
    reading = tag_reading("v", 1, PROFILE, BLOCK, TimedFix(fix, 100.0), 100.5, WALL, Tagging())
    assert reading.time == WALL
    assert reading.time_source == "host"
    assert reading.position is not None
    assert reading.position.valid
    assert "host_time" in reading.flags
    assert "no_fix" not in reading.flags
