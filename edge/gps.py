"""The GPS receiver: a thread reading NMEA from a serial port and keeping the newest fix."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

from edge.box import SerialPort, open_serial
from edge.nmea import Fix, FixAssembler, NmeaFramer

log = logging.getLogger("envpatrol.edge.gps")


@dataclass(frozen=True, slots=True)
class TimedFix:
    fix: Fix
    received: float  # host monotonic clock when the fix's last sentence arrived


class GpsReceiver:
    """Reads a receiver's port in a background thread; `latest()` is the newest fix, if any."""

    def __init__(
        self,
        url: str,
        baudrate: int = 9600,
        open_port: Callable[[str, int, int, str, int], SerialPort] = open_serial,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self._open_port = open_port
        self._clock = clock
        self._framer = NmeaFramer()
        self._assembler = FixAssembler()
        self._latest: TimedFix | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gps-reader", daemon=True)
        self.sentences = 0
        self.reopens = 0
        self.last_error = ""

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

    def latest(self) -> TimedFix | None:
        with self._lock:
            return self._latest

    def feed(self, data: bytes) -> None:
        """Process raw bytes from the receiver (the reader thread's work; public for tests)."""
        now = self._clock()
        for sentence in self._framer.feed(data):
            self.sentences += 1
            fix = self._assembler.update(sentence)
            if fix is not None:
                with self._lock:
                    self._latest = TimedFix(fix, now)

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
                while not self._stop.is_set():
                    data = port.read(max(1, port.in_waiting))
                    if data:
                        self.feed(data)
            except (serial.SerialException, OSError) as exc:
                self.last_error = f"{self.url}: {exc}"
                log.warning("GPS port failed: %s; reopening", exc)
            finally:
                port.close()
