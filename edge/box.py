"""Polling the box over a serial line: one Modbus request, retried within the poll, counted.

The port is opened through pyserial's `serial_for_url`, so `/dev/ttyUSB0`, a pseudo-terminal,
`socket://host:port` and `loop://` all work; tests may inject their own `open_port`.

Modbus RTU answers carry no request number, so the client accounts for every byte it reads:
each byte either belongs to an answer it accepted or is reported as a `Discard`, in the order it
arrived (an answer that came after its request was given up, garbage, a frame with a bad CRC or
cut short, an exception response).

When the profile names identity registers, the client asks the box who it is on every (re)open
of the port and after every poll that got no answer, before it takes readings again: a port path
can lead to another box than before (USB adapters re-enumerate, a box is swapped on its cable).
Readings are taken only from the box with the configured serial, else from the first box seen;
another box is refused, counted and logged, and asked again at the next poll.
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
from edge.modbus import ExceptionResponse, ReadRequest, ReadResponse, decode_response
from edge.profile import BoxIdentity, BoxProfile

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
        self.kind = kind  # "timeout", "short", "crc", "exception", "port", "identity"
        self.detail = detail
        self.attempts = attempts


DiscardReason = Literal["stale", "skipped", "surplus", "short", "crc", "exception", "port"]


@dataclass(frozen=True, slots=True)
class Discard:
    """Bytes read from the box that made no reading.

    `after` is the number of answers the client had accepted when it read these bytes, so the
    line as read is: the discards with `after` 0, accepted answer 1, the discards with `after` 1,
    accepted answer 2, and so on. Answers are the readings' blocks: an identity answer the client
    took is neither counted there nor discarded. `reason` says where the bytes were met:

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
    identity_reads: int = 0  # identity answers received
    identity_mismatches: int = 0  # of them, from a box readings are not taken from

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
    # The serial number the box must have (configured); None takes the first box seen.
    expected_serial: str | None = None
    # The box readings are taken from, once it has answered; and the last box asked, which
    # may be another one that was refused.
    identity: BoxIdentity | None = None
    seen: BoxIdentity | None = None
    _identified: bool = False  # the box on the port as opened now is `identity`
    _refused: BoxIdentity | None = None  # the box refused last, logged once per streak
    _port: SerialPort | None = None
    _line: SerialPort | None = None  # the port as opened
    _reopen_at: float = 0.0
    _backoff: float = 0.5

    def close(self) -> None:
        self._identified = False
        if self._port is not None:
            try:
                self._port.close()
            finally:
                self._port = self._line = None

    def poll(self) -> tuple[int, ...]:
        """Read the profile's register block; raise BoxError when every attempt failed or the
        box on the port is not the one readings are taken from."""
        self.counters.polls += 1
        try:
            if self.profile.identity is not None and not self._identified:
                self._identify()
            registers, surplus = self._read(self.profile.request)
        except BoxError:
            self.counters.failed += 1
            # A box that stopped answering may be swapped before it answers again.
            self._identified = False
            raise
        self.counters.ok += 1
        self._discard("surplus", surplus)
        return registers

    def _read(self, request: ReadRequest) -> tuple[tuple[int, ...], bytes]:
        """One request, retried: the registers of the answer taken, and what was read after
        it."""
        last: BoxError | None = None
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                self.counters.retries += 1
            try:
                registers, surplus = self._attempt(request)
            except BoxError as exc:
                last = BoxError(exc.kind, exc.detail, attempt)
                if exc.kind == "port":
                    break
                continue
            return registers, surplus
        assert last is not None
        raise last

    def _identify(self) -> None:
        """Ask the box who it is; raise BoxError unless readings may be taken from it."""
        identity_map = self.profile.identity
        assert identity_map is not None
        registers, surplus = self._read(identity_map.request(self.profile.address))
        self._discard("surplus", surplus)
        found = identity_map.decode(registers)
        self.counters.identity_reads += 1
        self.seen = found
        problem = self._refusal(found)
        if problem is not None:
            self.counters.identity_mismatches += 1
            if found != self._refused:
                log.warning("box port %s: %s; readings refused", self.url, problem)
                self._refused = found
            # Open the path again at the next poll: the right box may be back on it by then.
            self.close()
            raise BoxError("identity", problem, 1)
        if self.identity is None:
            log.info("box on %s: %s", self.url, found)
        elif self._refused is not None:
            log.warning("box port %s: %s is back; readings resume", self.url, found)
        elif found.firmware != self.identity.firmware:
            log.info(
                "box on %s: firmware %r is now %r", self.url, self.identity.firmware, found.firmware
            )
        self._refused = None
        self.identity = found
        self._identified = True

    def _refusal(self, found: BoxIdentity) -> str | None:
        """Why readings must not be taken from `found`; None when they may."""
        if self.expected_serial is not None and found.serial != self.expected_serial:
            return f"box is {found}, not the configured serial {self.expected_serial!r}"
        if self.identity is not None and not self.identity.same_box(found):
            return f"box is {found}, not {self.identity} that readings were taken from"
        return None

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

    def _attempt(self, request: ReadRequest) -> tuple[tuple[int, ...], bytes]:
        """One request: the registers of the frame taken, and what was read after it."""
        port, line = self._ensure_port()
        received = bytearray()
        try:
            # Read what waits instead of flushing it, so that it is accounted for: an answer
            # that came after its request was given up on.
            waiting = line.in_waiting
            if waiting:
                self._discard("stale", line.read(waiting))
            port.write(request.encode())
            self.counters.requests += 1
            return self._read_response(port, request, received)
        except _PORT_ERRORS as exc:
            self._discard("port", bytes(received))
            log.warning("box port %s failed: %s; reopening", self.url, exc)
            self.close()
            raise BoxError("port", str(exc), 0) from exc

    def _read_response(
        self, port: SerialPort, request: ReadRequest, buffer: bytearray
    ) -> tuple[tuple[int, ...], bytes]:
        """Read into `buffer` until it holds an answer to `request`; `buffer` keeps what was
        read, for the caller to account for when the port fails midway."""
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
