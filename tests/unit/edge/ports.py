"""An in-memory serial port with a box on the far end that answers each Modbus read request."""

from __future__ import annotations

from collections.abc import Callable

from edge.modbus import ReadRequest, decode_request, encode_read_response

# The registers a box answers a request with; None: it stays silent.
Answer = Callable[[ReadRequest], list[int] | None]


class AnsweringPort:
    """The agent's side of the line: each request written is answered, whole, by `answer`."""

    def __init__(self, answer: Answer, timeout: float = 0.5) -> None:
        self.timeout: float | None = timeout
        self._answer = answer
        self._pending = b""

    def write(self, data: bytes, /) -> int | None:
        request = decode_request(bytes(data)).frame
        assert request is not None, data
        registers = self._answer(request)
        if registers is not None:
            self._pending = encode_read_response(request.address, request.function, registers)
        return len(data)

    def read(self, size: int = 1, /) -> bytes:
        out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def reset_input_buffer(self) -> None:
        self._pending = b""

    def close(self) -> None:
        pass

    @property
    def in_waiting(self) -> int:
        return len(self._pending)
