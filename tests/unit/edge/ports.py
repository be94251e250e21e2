"""An in-memory serial port with a box on the far end that answers each Modbus read request."""

from __future__ import annotations

from collections.abc import Callable

from edge.modbus import ReadRequest, decode_request, encode_read_response

# The registers a box answers a request with; None: it stays silent.
Answer = Callable[[ReadRequest], list[int] | None]
# The bytes a box sends back for a request (b"": nothing).
Reply = Callable[[ReadRequest], bytes]


class AnsweringPort:
    """The agent's side of the line: each request written is answered, whole, by `answer`."""

    def __init__(self, answer: Answer, timeout: float = 0.5) -> None:
        def reply(request: ReadRequest) -> bytes:
            registers = answer(request)
            if registers is None:
                return b""
            return encode_read_response(request.address, request.function, registers)

        self.timeout: float | None = timeout
        self._respond: Reply = reply
        self._pending = b""

    @classmethod
    def replying(cls, reply: Reply, timeout: float = 0.5) -> AnsweringPort:
        """A port whose far end sends `reply`'s bytes as they are (a simulated box's answers,
        faults included)."""
        port = cls(lambda _request: None, timeout)
        port._respond = reply
        return port

    def write(self, data: bytes, /) -> int | None:
        request = decode_request(bytes(data)).frame
        assert request is not None, data
        self._pending += self._respond(request)
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
