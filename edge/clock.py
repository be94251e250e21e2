"""The agent's clock: what tagging reads to date readings and to age fixes.

Every reading time, fix age and quality duration the agent derives comes from one `Clock`, in
**drive seconds**: real seconds multiplied by the agent's time_scale (a real vehicle: plain
seconds; a simulation at 400x: simulated seconds). The system clock is the default; a replay
drives its own clock from the recording's timestamps (firmware_sim/replay.py), so the agent
computes exactly the ages it computed on the road, whatever the speed-up.

Scheduling (the poll grid, timeouts, the outbox's age limit) stays on the host's real clock.

`ClockDiscipline` holds that clock to GNSS time, so a reading without a GNSS time of its own is
dated on GNSS's timeline rather than by the host's calendar clock, and bounds every reading time
(docs/edge.md, "Clock discipline").
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Drive seconds on a clock that never steps back (its origin means nothing)."""
        ...

    def wall(self) -> datetime:
        """The host's calendar time (UTC), which dates readings without a GNSS time."""
        ...

    def boottime(self) -> float | None:
        """Drive seconds since the host powered on (None where the host cannot tell)."""
        ...


class SystemClock:
    """The host's clocks, with monotonic and boot time scaled to drive seconds."""

    def __init__(self, time_scale: float = 1.0) -> None:
        self.time_scale = time_scale

    def monotonic(self) -> float:
        return time.monotonic() * self.time_scale

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def boottime(self) -> float | None:
        if not hasattr(time, "CLOCK_BOOTTIME"):
            return None
        return time.clock_gettime(time.CLOCK_BOOTTIME) * self.time_scale


# -- dating readings -----------------------------------------------------------------------------

# No reading is dated before this day: the agent did not exist then, so an earlier time is a
# host clock that lost its setting (a gateway without RTC boots in 1970) or a receiver a GPS week
# rollover behind. Moved forward with each release.
EARLIEST_READING = datetime(2026, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DatingSettings:
    """How reading times are kept plausible (see `ClockDiscipline`)."""

    # No reading is dated before this (the agent's release); an earlier time is raised to it.
    earliest: datetime = EARLIEST_READING
    # No GNSS time may lead the disciplined clock by more than this (drive seconds): a lone
    # misdated fix would otherwise date readings, and whatever sorts by time, in the future.
    max_ahead_s: float = 600.0
    # How many of the latest fixes the offset is the median of: enough that a lone bad fix
    # never moves it, few enough that a real step (a suspended gateway) is taken up quickly.
    window: int = 15

    def check(self) -> None:
        """Raise ValueError naming the first setting that cannot work."""
        if self.earliest.tzinfo is None:
            raise ValueError("earliest must carry a time zone")
        if not math.isfinite(self.max_ahead_s) or self.max_ahead_s <= 0:
            raise ValueError("max_ahead_s must be a positive number")
        if self.window < 1:
            raise ValueError("window must be >= 1")


@dataclass(frozen=True, slots=True)
class Dated:
    """A reading's time, where it came from, and the flags that say how far to trust it."""

    time: datetime
    source: Literal["gnss", "host"]
    flags: tuple[str, ...] = ()


class ClockDiscipline:
    """The agent's clock held to GNSS time: dates readings that have no GNSS time of their own.

    Each fix that dates a reading gives one sample of the offset between GNSS time and the
    agent's monotonic clock at the fix's arrival (`TimedFix.received`); the offset is the median
    of the latest `window` samples. The monotonic clock is disciplined rather than the host's
    calendar clock because the calendar clock steps (an NTP sync on a gateway without RTC) and,
    in a time-scaled drive, runs slower than the simulated GNSS time, while the monotonic clock
    reads drive seconds, as GNSS time advances. Samples come only from fixes that date readings,
    with the clock readings a recording keeps, so a replay disciplines its clock identically.

    Pure: the caller passes every clock reading in.
    """

    def __init__(self, settings: DatingSettings | None = None) -> None:
        self.settings = settings or DatingSettings()
        self.settings.check()
        self._offsets: deque[float] = deque(maxlen=self.settings.window)
        self._last: tuple[datetime, float] | None = None
        self.samples = 0
        self.clamped = 0

    def observe(self, gnss_time: datetime, received: float) -> None:
        """One fix's GNSS time and the agent's clock (drive seconds) when the fix arrived."""
        if self._last == (gnss_time, received):
            return  # the same fix dating another reading: one sample per fix
        self._last = (gnss_time, received)
        self._offsets.append((gnss_time - _EPOCH).total_seconds() - received)
        self.samples += 1

    def offset_s(self) -> float | None:
        """GNSS time minus the agent's clock, in seconds since 1970; None before any fix."""
        if not self._offsets:
            return None
        return statistics.median_low(self._offsets)  # an observed offset, never a blend

    def now(self, mono: float) -> datetime | None:
        """GNSS time at the agent's clock reading `mono`; None before any fix."""
        offset = self.offset_s()
        if offset is None:
            return None
        return _EPOCH + timedelta(seconds=offset + mono)

    def date(self, gnss_time: datetime | None, mono: float, wall: datetime) -> Dated:
        """A reading's time: its GNSS time when it has one, else the disciplined clock's time
        (`clock_corrected`), else, before any fix, the host's calendar time (`clock_unverified`);
        then bounded (`clock_clamped`) to [earliest, disciplined now + max_ahead_s]."""
        estimate = self.now(mono)
        flags: list[str] = []
        source: Literal["gnss", "host"] = "host"
        if gnss_time is not None:
            moment, source = gnss_time, "gnss"
        elif estimate is not None:
            moment = estimate
            flags.append("clock_corrected")
        else:
            moment = wall
            flags.append("clock_unverified")
        if estimate is not None:
            latest = estimate + timedelta(seconds=self.settings.max_ahead_s)
            if moment > latest:
                moment = latest
                flags.append("clock_clamped")
        # At the bound counts as before it: a replay hands the recorded, raised time back as
        # the host's time, and must flag it alike.
        if moment <= self.settings.earliest:
            moment = self.settings.earliest
            flags.append("clock_clamped")
        if "clock_clamped" in flags:
            self.clamped += 1
        return Dated(moment, source, tuple(flags))
