"""Polling the box over a serial line: one Modbus request, retried within the poll, counted.

The port is opened through pyserial's `serial_for_url`, so `/dev/ttyUSB0`, a pseudo-terminal,
`socket://host:port` and `loop://` all work; tests may inject their own `open_port`.

Modbus RTU answers carry no request number, so the client accounts for every byte it reads:
each byte either belongs to an answer it accepted or is reported as a `Discard`, in the order it
arrived (an answer that came after its request was given up, garbage, a frame with a bad CRC or
cut short, an exception response).
"""

from __future__ import annotations

import logging
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import serial

from edge.errors import EnvpatrolError
from edge.modbus import ExceptionResponse, ReadResponse, decode_response
from edge.profile import BoxProfile

log = logging.getLogger("envpatrol.edge.box")

# What a port raises once its adapter is unplugged or its pseudo-terminal closed; termios.error
# (from pyserial's termios calls) is not an OSError.
_PORT_ERRORS = (serial.SerialException, OSError, termios.error)


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


class BoxError(EnvpatrolError):
    """A poll that produced no registers after all its attempts."""

    def __init__(self, kind: str, detail: str, attempts: int) -> None:
        super().__init__("box", f"poll failed after {attempts} attempt(s): {kind}: {detail}")
        self.kind = kind  # "timeout", "short", "crc", "exception", "port"
        self.detail = detail
        self.attempts = attempts


DiscardReason = Literal["stale", "skipped", "surplus", "short", "crc", "exception", "port"]


@dataclass(frozen=True, slots=True)
class Discard:
    """Bytes read from the box that made no reading.

    `after` is the number of answers the client had accepted when it read these bytes, so the
    line as read is: the discards with `after` 0, accepted answer 1, the discards with `after` 1,
    accepted answer 2, and so on. `reason` says where the bytes were met:

    - `stale`: waiting before a request: an answer, or its rest, to a request already given up;
    - `skipped`: read while waiting for an answer, before the frame that was taken;
    - `surplus`: read together with the frame that was taken, after it;
    - `short`, `crc`: what a failed attempt read (no whole frame; frames with a bad CRC);
    - `exception`: an exception response, with anything read after it;
    - `port`: read before the port failed.
    """

    reason: DiscardReason
    data: bytes
    after: int


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
    requests: int = 0  # requests written to the line
    discarded_bytes: int = 0  # bytes read that made no reading (see Discard)

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
    # Told of each discard as it happens; the client itself keeps only counters, so a vehicle
    # running for months holds nothing more.
    on_discard: Callable[[Discard], None] | None = None
    # What the exchanges go through (the drive recorder). The bytes waiting before a request
    # belong to no exchange: they are read from the port as opened, around it.
    wrap_port: Callable[[SerialPort], SerialPort] | None = None
    _port: SerialPort | None = None
    _line: SerialPort | None = None  # the port as opened
    _reopen_at: float = 0.0
    _backoff: float = 0.5

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            finally:
                self._port = self._line = None

    def poll(self) -> tuple[int, ...]:
        """Read the profile's register block; raise BoxError when every attempt failed."""
        self.counters.polls += 1
        last: BoxError | None = None
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                self.counters.retries += 1
            try:
                registers, surplus = self._attempt()
            except BoxError as exc:
                last = BoxError(exc.kind, exc.detail, attempt)
                if exc.kind == "port":
                    break
                continue
            self.counters.ok += 1
            self._discard("surplus", surplus)
            return registers
        self.counters.failed += 1
        assert last is not None
        raise last

    def _ensure_port(self) -> tuple[SerialPort, SerialPort]:
        """The port for exchanges, and the port as opened."""
        if self._port is not None and self._line is not None:
            return self._port, self._line
        now = self.clock()
        if now < self._reopen_at:
            raise BoxError(
                "port", f"{self.url} unavailable; next try in {self._reopen_at - now:.1f}s", 0
            )
        line = self.profile.line
        try:
            opened = self.open_port(
                self.url, line.baudrate, line.bytesize, line.parity, line.stopbits
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self._reopen_at = now + self._backoff
            self._backoff = min(self._backoff * 2, 30.0)
            raise BoxError("port", f"cannot open {self.url}: {exc}", 0) from exc
        self._line = opened
        self._port = opened if self.wrap_port is None else self.wrap_port(opened)
        self.counters.reopens += 1
        self._backoff = 0.5
        return self._port, self._line

    def _discard(self, reason: DiscardReason, data: bytes) -> None:
        if not data:
            return
        self.counters.discarded_bytes += len(data)
        discard = Discard(reason, data, self.counters.ok)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "discarded %d byte(s) (%s) after answer %d: %s",
                len(data),
                reason,
                discard.after,
                data.hex(),
            )
        if self.on_discard is not None:
            self.on_discard(discard)

    def _attempt(self) -> tuple[tuple[int, ...], bytes]:
        """One request: the registers of the frame taken, and what was read after it."""
        port, line = self._ensure_port()
        request = self.profile.request
        received = bytearray()
        try:
            # Read what waits instead of flushing it, so that it is accounted for: an answer
            # that came after its request was given up on.
            waiting = line.in_waiting
            if waiting:
                self._discard("stale", line.read(waiting))
            port.write(request.encode())
            self.counters.requests += 1
            return self._read_response(port, received)
        except _PORT_ERRORS as exc:
            self._discard("port", bytes(received))
            log.warning("box port %s failed: %s; reopening", self.url, exc)
            self.close()
            raise BoxError("port", str(exc), 0) from exc

    def _read_response(self, port: SerialPort, buffer: bytearray) -> tuple[tuple[int, ...], bytes]:
        """Read into `buffer` until it holds an answer to the request; `buffer` keeps what was
        read, for the caller to account for when the port fails midway."""
        request = self.profile.request
        deadline = self.clock() + self.timeout_s
        crc_seen = 0
        last_byte = self.clock()
        while True:
            chunk = port.read(max(1, port.in_waiting))
            if chunk:
                last_byte = self.clock()
                buffer += chunk
                data = bytes(buffer)
                decoded = decode_response(data, request)
                crc_seen = decoded.crc_errors
                if decoded.frame is not None:
                    self.counters.garbage_bytes += decoded.skipped
                    self.counters.crc_errors += decoded.crc_errors
                    # The decoder skips byte by byte up to the frame, so `skipped` is its start.
                    self._discard("skipped", data[: decoded.skipped])
                    surplus = data[decoded.consumed :]
                    buffer.clear()
                    if isinstance(decoded.frame, ExceptionResponse):
                        self.counters.exceptions += 1
                        self._discard("exception", data[decoded.skipped :])
                        raise BoxError("exception", decoded.frame.name, 0)
                    assert isinstance(decoded.frame, ReadResponse)
                    return decoded.frame.registers, surplus
            now = self.clock()
            if now >= deadline or (crc_seen and now - last_byte >= self.quiet_s):
                data = bytes(buffer)
                buffer.clear()
                if crc_seen:
                    self.counters.crc_errors += crc_seen
                    self._discard("crc", data)
                    raise BoxError("crc", f"{crc_seen} frame(s) with a bad CRC", 0)
                if data:
                    # Something arrived but never made a whole frame: cut short or garbled.
                    self.counters.short_frames += 1
                    self.counters.garbage_bytes += len(data)
                    self._discard("short", data)
                    raise BoxError(
                        "short", f"{len(data)} bytes but no whole frame in {self.timeout_s}s", 0
                    )
                self.counters.timeouts += 1
                raise BoxError("timeout", f"no response in {self.timeout_s}s", 0)
