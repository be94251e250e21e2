"""The GPS receiver's handling of what the reader thread takes from the port (no port here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge.gps import GpsReceiver, TimedFix
from edge.nmea import Fix, format_gga, format_rmc

START = datetime(2026, 11, 21, 8, 0, 0, tzinfo=UTC)


def epoch(second: int, lat: float) -> bytes:
    moment = START + timedelta(seconds=second)
    lon = 116.46
    text = format_gga(moment, lat, lon) + format_rmc(moment, lat, lon, speed_mps=5.0)
    return text.encode("ascii")


def test_a_backlog_chunk_publishes_only_its_newest_fix() -> None:
    """A reader that fell behind takes seconds of epochs at once; a reading tagged while it works
    through them must never see an old epoch stamped as just received."""
    published: list[float] = []

    class Watching(GpsReceiver):
        def offer(self, fix: Fix, publish: bool = True) -> TimedFix:
            timed = super().offer(fix, publish)
            latest = self.latest()
            published.append(latest.fix.lat if latest is not None else float("nan"))
            return timed

    receiver = Watching("unused")
    receiver.feed(epoch(0, 39.8900))
    chunk = b"".join(epoch(s, 39.8900 + s * 0.00004) for s in range(1, 6))
    receiver.feed(chunk)
    latest = receiver.latest()
    assert latest is not None
    assert latest.fix.time == START + timedelta(seconds=5)
    assert latest.fix.valid
    assert receiver.fixes == 12  # every sentence (GGA and RMC of 6 epochs) went through the filter
    # While the chunk was processed the latest stayed the previous chunk's fix until the end.
    assert published[1:-1] == [39.8900] * (len(published) - 2)
    assert published[-1] == latest.fix.lat


def test_fixes_are_stamped_on_the_given_clock_and_counted_once_published() -> None:
    """The agent's clock (drive seconds) stamps each fix; `fixes` counts the chunk's last fix
    only once it is the latest, which is what a replay waits on before it moves the clock on."""
    now = [250.0]
    seen: list[tuple[int, float | None]] = []

    class Watching(GpsReceiver):
        def offer(self, fix: Fix, publish: bool = True) -> TimedFix:
            before = self.fixes
            timed = super().offer(fix, publish)
            latest = self.latest()
            seen.append((self.fixes - before, None if latest is None else latest.received))
            return timed

    receiver = Watching("unused", clock=lambda: now[0])
    receiver.feed(epoch(0, 39.89))
    latest = receiver.latest()
    assert latest is not None
    assert latest.received == 250.0
    assert receiver.fixes == 2
    # GGA, then RMC: only the chunk's last fix becomes the latest, and is counted after that.
    assert seen == [(1, None), (1, 250.0)]
