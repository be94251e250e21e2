"""Polling the box over a serial line: one Modbus request, retried within the poll, counted.

The port is opened through pyserial's `serial_for_url`, so `/dev/ttyUSB0`, a pseudo-terminal,
`socket://host:port` and `loop://` all work; tests may inject their own `open_port`.
"""

from __future__ import annotations

import logging
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import serial

from edge.modbus import ExceptionResponse, ReadResponse, decode_response
from edge.profile import BoxProfile

log = logging.getLogger("envpatrol.edge.box")


class SerialPort(Protocol):
    """The part of pyserial's Serial the agent uses."""

    timeout: float | None

    def write(self, data: bytes, /) -> int | None: ...
    def read(self, size: int = 1, /) -> bytes: ...
    def reset_input_buffer(self) -> None: ...
    def close(self) -> None: ...

    @property
    def in_waiting(self) -> int: ...


def open_serial(url: str, baudrate: int, bytesize: int, parity: str, stopbits: int) -> SerialPort:
    port: SerialPort = serial.serial_for_url(
        url, baudrate=baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits, timeout=0.05
    )
    return port


class BoxError(Exception):
    """A poll that produced no registers after all its attempts."""

    def __init__(self, kind: str, detail: str, attempts: int) -> None:
        self.kind = kind  # "timeout", "short", "crc", "exception", "port"
        self.detail = detail
        self.attempts = attempts
        super().__init__(f"box poll failed after {attempts} attempt(s): {kind}: {detail}")


@dataclass(slots=True)
class BoxCounters:
    polls: int = 0
    ok: int = 0
    failed: int = 0
    retries: int = 0
    timeouts: int = 0
    short_frames: int = 0
    crc_errors: int = 0
    garbage_bytes: int = 0
    exceptions: int = 0
    reopens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


@dataclass
class BoxClient:
    profile: BoxProfile
    url: str
    timeout_s: float = 0.5
    retries: int = 2
    # After a frame with a bad CRC, this long without another byte means the answer was the
    # corrupted one: retry now instead of waiting out the whole timeout.
    quiet_s: float = 0.05
    open_port: Callable[[str, int, int, str, int], SerialPort] = open_serial
    counters: BoxCounters = field(default_factory=BoxCounters)
    clock: Callable[[], float] = time.monotonic
    _port: SerialPort | None = None
    _reopen_at: float = 0.0
    _backoff: float = 0.5

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            finally:
                self._port = None

    def poll(self) -> tuple[int, ...]:
        """Read the profile's register block; raise BoxError when every attempt failed."""
        self.counters.polls += 1
        last: BoxError | None = None
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                self.counters.retries += 1
            try:
                registers = self._attempt()
            except BoxError as exc:
                last = BoxError(exc.kind, exc.detail, attempt)
                if exc.kind == "port":
                    break
                continue
            self.counters.ok += 1
            return registers
        self.counters.failed += 1
        assert last is not None
        raise last

    def _ensure_port(self) -> SerialPort:
        if self._port is not None:
            return self._port
        now = self.clock()
        if now < self._reopen_at:
            raise BoxError(
                "port", f"{self.url} unavailable; next try in {self._reopen_at - now:.1f}s", 0
            )
        line = self.profile.line
        try:
            self._port = self.open_port(
                self.url, line.baudrate, line.bytesize, line.parity, line.stopbits
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self._reopen_at = now + self._backoff
            self._backoff = min(self._backoff * 2, 30.0)
            raise BoxError("port", f"cannot open {self.url}: {exc}", 0) from exc
        self.counters.reopens += 1
        self._backoff = 0.5
        return self._port

    def _attempt(self) -> tuple[int, ...]:
        port = self._ensure_port()
        request = self.profile.request
        try:
            port.reset_input_buffer()
            port.write(request.encode())
            return self._read_response(port)
        except (serial.SerialException, OSError, termios.error) as exc:
            # termios.error is what an unplugged adapter or a closed pseudo-terminal raises
            # from tcflush; it is not an OSError.
            log.warning("box port %s failed: %s; reopening", self.url, exc)
            self.close()
            raise BoxError("port", str(exc), 0) from exc

    def _read_response(self, port: SerialPort) -> tuple[int, ...]:
        request = self.profile.request
        deadline = self.clock() + self.timeout_s
        buffer = b""
        crc_seen = 0
        last_byte = self.clock()
        while True:
            chunk = port.read(max(1, port.in_waiting))
            if chunk:
                last_byte = self.clock()
                buffer += chunk
                decoded = decode_response(buffer, request)
                crc_seen = decoded.crc_errors
                if decoded.frame is not None:
                    self.counters.garbage_bytes += decoded.skipped
                    self.counters.crc_errors += decoded.crc_errors
                    if isinstance(decoded.frame, ExceptionResponse):
                        self.counters.exceptions += 1
                        raise BoxError("exception", decoded.frame.name, 0)
                    assert isinstance(decoded.frame, ReadResponse)
                    return decoded.frame.registers
            now = self.clock()
            if now >= deadline or (crc_seen and now - last_byte >= self.quiet_s):
                if crc_seen:
                    self.counters.crc_errors += crc_seen
                    raise BoxError("crc", f"{crc_seen} frame(s) with a bad CRC", 0)
                if buffer:
                    # Something arrived but never made a whole frame: cut short or garbled.
                    self.counters.short_frames += 1
                    self.counters.garbage_bytes += len(buffer)
                    raise BoxError(
                        "short", f"{len(buffer)} bytes but no whole frame in {self.timeout_s}s", 0
                    )
                self.counters.timeouts += 1
                raise BoxError("timeout", f"no response in {self.timeout_s}s", 0)
