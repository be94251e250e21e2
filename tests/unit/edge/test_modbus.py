"""The Modbus RTU codec: CRC vectors, round trips, and resynchronisation on bad bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.modbus import (
    ExceptionResponse,
    ReadRequest,
    ReadResponse,
    crc16,
    decode_request,
    decode_response,
    encode_exception_response,
    encode_read_response,
    with_crc,
)


@pytest.mark.parametrize(
    ("body", "crc"),
    [("010300040001", "c5cb"), ("010300000002", "c40b"), ("ff0307d00001", "9159")],
)
def test_crc_check_vectors(body: str, crc: str) -> None:
    assert with_crc(bytes.fromhex(body))[-2:].hex() == crc


def test_crc_of_frame_with_its_crc_is_zero() -> None:
    assert crc16(with_crc(b"\x01\x03\x02\x00\x2a")) == 0


requests = st.builds(
    ReadRequest,
    address=st.integers(1, 247),
    function=st.sampled_from([3, 4]),
    start=st.integers(0, 0xFF00),
    count=st.integers(1, 125),
)


@given(requests, st.data())
def test_response_round_trip(request: ReadRequest, data: st.DataObject) -> None:
    registers = tuple(
        data.draw(st.lists(st.integers(0, 0xFFFF), min_size=request.count, max_size=request.count))
    )
    frame = encode_read_response(request.address, request.function, registers)
    decoded = decode_response(frame, request)
    assert decoded.frame == ReadResponse(request.address, request.function, registers)
    assert decoded.consumed == len(frame)


@given(requests)
def test_request_round_trip(request: ReadRequest) -> None:
    decoded = decode_request(request.encode())
    assert decoded.frame == request


@given(requests, st.data())
def test_split_frames_need_more_bytes_then_decode(
    request: ReadRequest, data: st.DataObject
) -> None:
    registers = [0x1234] * request.count
    frame = encode_read_response(request.address, request.function, registers)
    cut = data.draw(st.integers(0, len(frame) - 1))
    assert decode_response(frame[:cut], request).frame is None
    assert decode_response(frame, request).frame is not None


@given(requests, st.binary(max_size=40), st.data())
def test_garbage_before_a_frame_is_skipped(
    request: ReadRequest, garbage: bytes, data: st.DataObject
) -> None:
    registers = tuple(
        data.draw(st.lists(st.integers(0, 0xFFFF), min_size=request.count, max_size=request.count))
    )
    frame = encode_read_response(request.address, request.function, registers)
    decoded = decode_response(garbage + frame, request)
    # The only frame that decodes is the real one (a false frame inside random garbage would need
    # a matching address, function, length and CRC).
    assert decoded.frame is not None
    assert isinstance(decoded.frame, ReadResponse)
    if decoded.frame.registers != registers:  # pragma: no cover - astronomically unlikely
        pytest.fail("garbage decoded as a frame")


@given(requests, st.data())
def test_corrupted_frame_is_never_misdecoded(request: ReadRequest, data: st.DataObject) -> None:
    registers = tuple(
        data.draw(st.lists(st.integers(0, 0xFFFF), min_size=request.count, max_size=request.count))
    )
    frame = bytearray(encode_read_response(request.address, request.function, registers))
    position = data.draw(st.integers(0, len(frame) - 1))
    flip = data.draw(st.integers(1, 255))
    frame[position] ^= flip
    decoded = decode_response(bytes(frame), request)
    assert decoded.frame is None or decoded.frame == ReadResponse(
        request.address, request.function, registers
    )
    # A good frame after the corrupted one is found.
    good = encode_read_response(request.address, request.function, registers)
    again = decode_response(bytes(frame) + good, request)
    assert again.frame == ReadResponse(request.address, request.function, registers)


def test_exception_response() -> None:
    request = ReadRequest(1, 3, 0, 16)
    decoded = decode_response(encode_exception_response(1, 3, 2), request)
    assert decoded.frame == ExceptionResponse(1, 3, 2)
    assert isinstance(decoded.frame, ExceptionResponse)
    assert decoded.frame.name == "illegal data address"


def test_requests_for_other_devices_are_ignored() -> None:
    other = ReadRequest(2, 3, 0, 4).encode()
    mine = ReadRequest(1, 3, 0, 4).encode()
    decoded = decode_request(other + mine, address=1)
    assert decoded.frame == ReadRequest(1, 3, 0, 4)
    assert decoded.skipped == len(other)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"address": 300, "function": 3, "start": 0, "count": 1},
        {"address": 1, "function": 6, "start": 0, "count": 1},
        {"address": 1, "function": 3, "start": 0, "count": 126},
        {"address": 1, "function": 3, "start": 0xFFFF, "count": 2},
    ],
)
def test_invalid_requests_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"."):
        ReadRequest(**kwargs)


def test_frames_agree_with_pymodbus() -> None:
    """An independent implementation computes the same CRC for our frames."""
    pymodbus_utilities = pytest.importorskip("pymodbus.pdu")
    del pymodbus_utilities
    from pymodbus.framer.rtu import FramerRTU

    request = ReadRequest(1, 3, 0, 16)
    frame = encode_read_response(1, 3, list(range(16)))
    assert FramerRTU.compute_CRC(frame[:-2]).to_bytes(2, "big") == frame[-2:]
    assert FramerRTU.compute_CRC(request.encode()[:-2]).to_bytes(2, "big") == request.encode()[-2:]
