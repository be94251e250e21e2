"""The GPS receiver: a thread reading NMEA from a serial port and keeping the newest fix.

Every fix goes through the fix filter (edge.quality.fix_problem) before it may place a reading:
a fix that fails it is kept as *invalid* (its coordinates stay visible, its time is not used),
and the reason is counted. A fix missing what the filter needs to judge it (satellites, HDOP,
speed: an RMC-only or GGA-only receiver) is judged by the `incomplete` policy: "reject" (the
default) keeps it invalid as `incomplete`, "accept" lets the checks it cannot take be skipped.
The host clock's skew against GNSS time is measured on each fix.
"""

from __future__ import annotations

import logging
import termios
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import serial

from edge.box import SerialPort, open_serial
from edge.epoch import EpochAssembler, EpochSettings, Fix
from edge.errors import SettingsError
from edge.nmea import NmeaFramer
from edge.quality import FixFilter, fix_problem

log = logging.getLogger("envpatrol.edge.gps")

# After this many fixes in a row rejected as jumps, the new place is believed (the previous
# accepted fix was the wrong one, or the vehicle was carried, e.g. on a ferry).
JUMPS_BEFORE_RESET = 3
INCOMPLETE_POLICIES = ("reject", "accept")
LEAP_SQUEEZE_S = 0.001


@dataclass(frozen=True, slots=True)
class TimedFix:
    fix: Fix
    received: float  # the agent's clock (edge.clock, drive seconds) when the fix arrived
    skew_s: float | None = None  # host wall clock minus GNSS time at that moment


class FixKeeper:
    """The newest fix, filtered, with counters; shared by the NMEA and gpsd sources.

    `clock` stamps each fix as it arrives (the agent's clock, edge.clock.Clock.monotonic).
    """

    def __init__(
        self,
        limits: FixFilter | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        incomplete: str = "reject",
    ) -> None:
        if incomplete not in INCOMPLETE_POLICIES:
            raise SettingsError("gps.incomplete_fix", f"must be one of {INCOMPLETE_POLICIES}")
        self.limits = limits or FixFilter()
        self.incomplete = incomplete
        self._clock = clock
        self._wall = wall
        self._latest: TimedFix | None = None
        # When the fix being offered arrived, if before now (an epoch judged only when the next
        # one began): its age counts from its own sentences.
        self._arrived: float | None = None
        self._accepted: Fix | None = None
        self._jumps = 0
        self._lock = threading.Lock()
        self.fixes = 0
        self.filtered: Counter[str] = Counter()
        self.last_error = ""

    def latest(self) -> TimedFix | None:
        with self._lock:
            return self._latest

    def offer(self, fix: Fix, publish: bool = True) -> TimedFix:
        """Filter a new fix and, when `publish`, make it the latest. `fixes` counts it once
        that is done (a replay waits on it before it lets the clock move on)."""
        now = self._clock() if self._arrived is None else self._arrived
        previous = self._accepted
        if (
            previous is not None
            and previous.time is not None
            and fix.time is not None
            and abs((fix.time - previous.time).total_seconds()) < LEAP_SQUEEZE_S
        ):
            # A leap second's epochs are dated the last microsecond of their day (edge.epoch):
            # two epochs a second apart in truth, too close in time to be compared as a move.
            previous = None
        problem = fix_problem(fix, previous, self.limits)
        if problem is None and self.incomplete == "reject" and _incomplete(fix):
            problem = "incomplete"
        if problem == "jump":
            self._jumps += 1
            if self._jumps >= JUMPS_BEFORE_RESET:
                problem = None
        if problem is None:
            self._jumps = 0
            self._accepted = fix
        else:
            self.filtered[problem] += 1
            fix = replace(fix, valid=False)
        skew = None
        if fix.time is not None and problem is None:
            skew = (self._wall() - fix.time).total_seconds()
        timed = TimedFix(fix, now, skew)
        if publish:
            with self._lock:
                self._latest = timed
        self.fixes += 1
        return timed


def _incomplete(fix: Fix) -> bool:
    return fix.satellites is None or fix.hdop is None or fix.speed_mps is None


class GpsReceiver(FixKeeper):
    """Reads a receiver's serial port in a background thread; `latest()` is the newest fix.

    Sentences are assembled one fix per epoch (edge.epoch). An epoch times out on `timer`, the
    host's real monotonic clock: the serial line's pauses are real time even in a simulated
    drive, whose `clock` runs faster.
    """

    def __init__(
        self,
        url: str,
        baudrate: int = 9600,
        open_port: Callable[[str, int, int, str, int], SerialPort] = open_serial,
        clock: Callable[[], float] = time.monotonic,
        limits: FixFilter | None = None,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        epoch: EpochSettings | None = None,
        require_checksum: bool = True,
        incomplete: str = "reject",
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(limits, clock, wall, incomplete)
        self.url = url
        self.baudrate = baudrate
        self._open_port = open_port
        self._timer = timer
        self._framer = NmeaFramer(require_checksum)
        self._assembler = EpochAssembler(epoch, wall=wall)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gps-reader", daemon=True)
        self.sentences = 0
        self.reopens = 0

    @property
    def garbage_bytes(self) -> int:
        return self._framer.garbage_bytes

    @property
    def bad_sentences(self) -> int:
        return self._framer.bad_sentences + self._assembler.unparsed

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def feed(self, data: bytes) -> None:
        """Process raw bytes from the receiver (the reader thread's work; public for tests).

        Every fix in the chunk goes through the filter in order, but only the chunk's last one
        becomes the latest: when the reader has fallen behind, the chunk holds seconds of older
        epochs, and a reading tagged meanwhile must not take one of those as just received.
        """
        now, arrived = self._timer(), self._clock()
        settled = []
        # The chunk's sentences first: they were waiting in the buffer, so however late they
        # are read, no quiet time passed between them. Quiet time is judged on idle reads
        # (`expire`).
        for sentence in self._framer.feed(data):
            self.sentences += 1
            settled.extend(self._assembler.settle(sentence, now, arrived, lapse=False))
        for i, (fix, received) in enumerate(settled):
            self._offer_arrived(fix, received, publish=i == len(settled) - 1)

    def expire(self) -> None:
        """Judge an epoch the receiver left incomplete for longer than its timeout."""
        for fix, received in self._assembler.lapse(self._timer()):
            self._offer_arrived(fix, received, publish=True)

    def _offer_arrived(self, fix: Fix, received: float | None, *, publish: bool) -> None:
        self._arrived = received
        try:
            self.offer(fix, publish)
        finally:
            self._arrived = None

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                port = self._open_port(self.url, self.baudrate, 8, "N", 1)
            except (serial.SerialException, OSError, ValueError) as exc:
                self.last_error = f"cannot open {self.url}: {exc}"
                log.warning("%s; retrying in %.1fs", self.last_error, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self.reopens += 1
            backoff = 0.5
            try:
                # A read returns as soon as a byte arrives; the timeout bounds how long an epoch
                # the receiver left incomplete waits past its own timeout, and how long stop()
                # waits.
                port.timeout = min(0.5, self._assembler.settings.timeout_s / 2)
                while not self._stop.is_set():
                    data = port.read(max(1, port.in_waiting))
                    if data:
                        self.feed(data)
                    else:
                        self.expire()
            except (serial.SerialException, OSError, termios.error) as exc:
                self.last_error = f"{self.url}: {exc}"
                log.warning("GPS port failed: %s; reopening", exc)
                self._stop.wait(backoff)
            finally:
                port.close()

    def counters(self) -> dict[str, Any]:
        return {
            "source": "nmea",
            "sentences": self.sentences,
            "bad_sentences": self.bad_sentences,
            "garbage_bytes": self.garbage_bytes,
            "reopens": self.reopens,
            "fixes": self.fixes,
            "filtered": dict(self.filtered),
            "late_sentences": self._assembler.late,
            "no_fix_sentences": self._assembler.no_fix,
            "untrusted_times": self._assembler.untrusted_times,
            "rollovers": self._assembler.rollovers,
        }
