"""The agent's clock: what tagging reads to date readings and to age fixes.

Every reading time, fix age and quality duration the agent derives comes from one `Clock`, in
**drive seconds**: real seconds multiplied by the agent's time_scale (a real vehicle: plain
seconds; a simulation at 400x: simulated seconds). The system clock is the default; a replay
drives its own clock from the recording's timestamps (firmware_sim/replay.py), so the agent
computes exactly the ages it computed on the road, whatever the speed-up.

Scheduling (the poll grid, timeouts, the outbox's age limit) stays on the host's real clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


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
