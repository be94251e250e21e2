"""The unit tier opens no socket: not to a server, not between two of its own objects.

Every phase of a unit test (fixtures of any scope included) runs with `socket.socket` and
`socket.socketpair` replaced by ones that refuse. A refusal raises, and it also fails the test
when the code under test swallows the error (a client that retries on OSError, say). The one
socket allowed is the wake-up pipe an asyncio event loop makes for itself (FastAPI's TestClient
runs one): no test talks through it.
"""

from __future__ import annotations

import _socket
import socket
import sys
from collections.abc import Generator
from typing import Any

import pytest

_SOCKET = socket.socket
_EVENT_LOOP = "asyncio.selector_events"


class SocketInUnitTestError(RuntimeError):
    """Not an OSError, so code that handles a refused connection does not take it for one."""


_attempts: list[str] = []  # refusals in the phase under way, swallowed or not


class _RefusedSocket(socket.socket):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _refuse(f"socket.socket(*{args!r}, **{kwargs!r})")


def _refuse(what: str) -> None:
    _attempts.append(what)
    raise SocketInUnitTestError(
        f"a unit test opened a socket ({what}): use an in-memory transport, or move the test "
        "to tests/integration"
    )


def _socketpair(
    family: int | None = None, type: int = socket.SOCK_STREAM, proto: int = 0
) -> tuple[socket.socket, socket.socket]:
    if sys._getframe(1).f_globals.get("__name__") != _EVENT_LOOP:
        _refuse("socket.socketpair()")
    a, b = _socket.socketpair(socket.AF_UNIX if family is None else family, type, proto)
    return (
        _SOCKET(a.family, a.type, a.proto, a.detach()),
        _SOCKET(b.family, b.type, b.proto, b.detach()),
    )


def _guarded() -> Generator[None, object, object]:
    _attempts.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "socket", _RefusedSocket)
        patch.setattr(socket, "socketpair", _socketpair)
        result = yield
    if _attempts:
        pytest.fail(f"a unit test opened a socket: {'; '.join(_attempts)}", pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:  # noqa: ARG001
    return (yield from _guarded())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:  # noqa: ARG001
    return (yield from _guarded())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:  # noqa: ARG001
    return (yield from _guarded())
