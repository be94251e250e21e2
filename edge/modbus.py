"""Modbus RTU framing for reading one block of registers: pure bytes in, frames out.

Nothing here does I/O. The decoders take the bytes received so far and say how many bytes they
used and what they found, so resynchronisation after garbage or a corrupted frame is a property of
data and can be tested without a serial port. On a pseudo-terminal there is no 3.5-character
silence between frames, so frames are found by their shape (address, function, length) and CRC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

READ_HOLDING_REGISTERS = 0x03
READ_INPUT_REGISTERS = 0x04
READ_FUNCTIONS = (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS)
MAX_READ_COUNT = 125  # the Modbus limit for one read (250 data bytes)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    11: "gateway target device failed to respond",
}


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS (reflected polynomial 0xA001, initial value 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    """Append the CRC, low byte first, as the wire wants it."""
    return body + crc16(body).to_bytes(2, "little")


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 3 and crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """A request to read `count` registers from `start` on device `address`."""

    address: int
    function: int
    start: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 247 and self.address != 255:
            raise ValueError(f"Modbus address {self.address} is outside 0..247 (or 255)")
        if self.function not in READ_FUNCTIONS:
            raise ValueError(f"function {self.function:#04x} is not a register read (3 or 4)")
        if not 0 <= self.start <= 0xFFFF:
            raise ValueError(f"start register {self.start} is outside 0..65535")
        if not 1 <= self.count <= MAX_READ_COUNT or self.start + self.count > 0x10000:
            raise ValueError(f"register count {self.count} from {self.start} is not readable")

    def encode(self) -> bytes:
        return with_crc(
            bytes((self.address, self.function))
            + self.start.to_bytes(2, "big")
            + self.count.to_bytes(2, "big")
        )

    @property
    def response_length(self) -> int:
        return 5 + 2 * self.count


@dataclass(frozen=True, slots=True)
class ReadResponse:
    address: int
    function: int
    registers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    address: int
    function: int
    code: int

    @property
    def name(self) -> str:
        return EXCEPTION_NAMES.get(self.code, f"exception {self.code}")


@dataclass(frozen=True, slots=True)
class Decoded(Generic[T]):
    """What a decoder made of a buffer.

    `consumed` bytes may be dropped from the front of the buffer. `frame` is None when more bytes
    are needed. `skipped` counts bytes discarded as garbage, `crc_errors` candidate frames whose
    CRC did not match (their first byte is discarded and the search goes on).
    """

    consumed: int
    frame: T | None
    skipped: int = 0
    crc_errors: int = 0


def encode_read_response(
    address: int, function: int, registers: tuple[int, ...] | list[int]
) -> bytes:
    if not 1 <= len(registers) <= MAX_READ_COUNT:
        raise ValueError(f"cannot send {len(registers)} registers in one response")
    data = b"".join((r & 0xFFFF).to_bytes(2, "big") for r in registers)
    return with_crc(bytes((address, function, len(data))) + data)


def encode_exception_response(address: int, function: int, code: int) -> bytes:
    return with_crc(bytes((address, function | 0x80, code)))


def decode_response(
    buffer: bytes, request: ReadRequest
) -> Decoded[ReadResponse | ExceptionResponse]:
    """Find the response to `request` in `buffer`, skipping anything that cannot be it."""
    skipped = 0
    crc_errors = 0
    i = 0
    n = len(buffer)
    normal_len = request.response_length
    while i < n:
        if buffer[i] != request.address:
            i += 1
            skipped += 1
            continue
        if i + 1 >= n:
            break
        function = buffer[i + 1]
        if function == request.function | 0x80:
            if i + 5 > n:
                break
            frame = buffer[i : i + 5]
            if crc_ok(frame):
                return Decoded(
                    i + 5,
                    ExceptionResponse(frame[0], request.function, frame[2]),
                    skipped,
                    crc_errors,
                )
            crc_errors += 1
        elif function == request.function:
            if i + 2 >= n:
                break
            if buffer[i + 2] == 2 * request.count:
                if i + normal_len > n:
                    break
                frame = buffer[i : i + normal_len]
                if crc_ok(frame):
                    data = frame[3:-2]
                    registers = tuple(
                        int.from_bytes(data[k : k + 2], "big") for k in range(0, len(data), 2)
                    )
                    return Decoded(
                        i + normal_len,
                        ReadResponse(frame[0], function, registers),
                        skipped,
                        crc_errors,
                    )
                crc_errors += 1
        i += 1
        skipped += 1
    return Decoded(i, None, skipped, crc_errors)


def decode_request(buffer: bytes, address: int | None = None) -> Decoded[ReadRequest]:
    """Find the next read request in `buffer` (for a device: the simulator's side of the line).

    With `address` set, requests for other devices on the bus are consumed and ignored like
    garbage, as a real RS-485 device ignores them.
    """
    skipped = 0
    crc_errors = 0
    i = 0
    n = len(buffer)
    while i < n:
        if (address is not None and buffer[i] != address) or (
            i + 1 < n and buffer[i + 1] not in READ_FUNCTIONS
        ):
            i += 1
            skipped += 1
            continue
        if i + 8 > n:
            break
        frame = buffer[i : i + 8]
        if crc_ok(frame):
            try:
                request = ReadRequest(
                    frame[0],
                    frame[1],
                    int.from_bytes(frame[2:4], "big"),
                    int.from_bytes(frame[4:6], "big"),
                )
            except ValueError:
                pass
            else:
                return Decoded(i + 8, request, skipped, crc_errors)
        else:
            crc_errors += 1
        i += 1
        skipped += 1
    return Decoded(i, None, skipped, crc_errors)
