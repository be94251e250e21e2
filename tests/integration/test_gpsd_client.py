"""The gpsd client against a small fake gpsd that speaks the real newline-delimited JSON on a
local socket (VERSION, then WATCH, TPV and SKY reports): it watches, keeps the newest fix, and
comes back when gpsd hangs up or is not there at all."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from edge.gpsd import GpsdClient
from edge.quality import FixFilter
from tests.unit.edge.test_gpsd import SKY, VERSION, line, tpv


class FakeGpsd:
    """Accepts clients like gpsd: greets with VERSION, waits for ?WATCH, then streams reports."""

    def __init__(self, reports: list[bytes]) -> None:
        self.reports = reports
        self.watch_requests: list[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):  # the client may hang up first
                conn.sendall(line(VERSION) + b"\n")
                conn.settimeout(5)
                request = conn.recv(1024)
                self.watch_requests.append(request)
                conn.sendall(line({"class": "DEVICES", "devices": []}) + b"\n")
                conn.sendall(line({"class": "WATCH", "enable": True, "json": True}) + b"\n")
                for report in self.reports:
                    conn.sendall(report)
                    time.sleep(0.01)
                # gpsd restarting: the connection drops, the client must come back.

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.server.close()


@pytest.fixture
def fake_gpsd() -> Iterator[Callable[[list[bytes]], FakeGpsd]]:
    servers: list[FakeGpsd] = []

    def start(reports: list[bytes]) -> FakeGpsd:
        server = FakeGpsd(reports)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_client_watches_and_keeps_the_newest_fix(
    fake_gpsd: Callable[[list[bytes]], FakeGpsd],
) -> None:
    reports = [
        line(SKY) + b"\n",
        b"garbage that is not json\n",
        line(tpv(lat=39.8917)) + b"\n" + line(tpv(lat=39.8918))[:20],  # split across writes
        line(tpv(lat=39.8918))[20:] + b"\n",
    ]
    server = fake_gpsd(reports)
    client = GpsdClient(f"127.0.0.1:{server.port}", FixFilter())
    client.start()
    try:
        wait_for(lambda: client.fixes >= 2)
        latest = client.latest()
        assert latest is not None
        assert latest.fix.valid
        assert latest.fix.lat == 39.8918
        assert latest.skew_s is not None  # host clock against GNSS time, measured
        assert client.decoder.bad_lines >= 1
        assert server.watch_requests[0].startswith(b"?WATCH=")
        wait_for(lambda: client.reconnects >= 2)  # the server hung up; the client came back
    finally:
        client.stop()
    assert client.counters()["source"] == "gpsd"


def test_client_survives_no_gpsd_at_all() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = GpsdClient(f"127.0.0.1:{port}")
    client.start()
    try:
        wait_for(lambda: bool(client.last_error))
        assert client.latest() is None
    finally:
        client.stop()
