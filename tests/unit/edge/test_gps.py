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
    assert receiver.fixes == 6  # one fix per epoch, each through the filter
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
    assert receiver.fixes == 1
    # The epoch's one fix becomes the latest, and is counted after that.
    assert seen == [(1, 250.0)]


def test_an_epoch_left_incomplete_is_judged_on_the_real_timer() -> None:
    real = [10.0]
    receiver = GpsReceiver("unused", timer=lambda: real[0], clock=lambda: 5000.0)
    receiver.feed(epoch(0, 39.89) + epoch(1, 39.8901))
    moment = START + timedelta(seconds=2)
    receiver.feed(format_gga(moment, 39.8902, 116.46).encode())  # its RMC never comes
    assert receiver.fixes == 2
    real[0] = 10.2
    receiver.expire()
    assert receiver.fixes == 2
    real[0] = 10.4
    receiver.expire()
    latest = receiver.latest()
    assert latest is not None
    assert receiver.fixes == 3
    # A GGA alone has no speed: kept, but not valid unless the policy accepts it.
    assert not latest.fix.valid
    assert receiver.filtered["incomplete"] == 1
    assert receiver.counters()["late_sentences"] == 0


def test_no_fix_sentences_clear_the_latest_and_are_not_bad() -> None:
    receiver = GpsReceiver("unused")
    receiver.feed(epoch(0, 39.89) + epoch(1, 39.8901))
    latest = receiver.latest()
    assert latest is not None
    assert latest.fix.valid
    receiver.feed(b"$GPRMC,,V,,,,,,,,,,N*53\r\n")
    latest = receiver.latest()
    assert latest is not None
    assert not latest.fix.valid
    assert receiver.bad_sentences == 0
    assert receiver.counters()["no_fix_sentences"] == 1


def test_sentences_without_checksum_need_the_setting() -> None:
    text = epoch(0, 39.89).decode()
    bare = "".join(line[: line.rindex("*")] + "\r\n" for line in text.splitlines())
    strict = GpsReceiver("unused")
    strict.feed(bare.encode())
    assert (strict.fixes, strict.bad_sentences) == (0, 2)
    lenient = GpsReceiver("unused", require_checksum=False)
    lenient.feed(bare.encode())
    assert lenient.fixes == 1
