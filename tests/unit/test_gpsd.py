"""gpsd's JSON protocol: the pure decoder, and the client against a small fake gpsd that speaks
the real newline-delimited JSON on a local socket (VERSION, then WATCH, TPV and SKY reports)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.gpsd import GpsdClient, GpsdDecoder
from edge.quality import FixFilter

VERSION = {
    "class": "VERSION",
    "release": "3.25",
    "rev": "3.25",
    "proto_major": 3,
    "proto_minor": 15,
}
SKY = {
    "class": "SKY",
    "device": "/dev/ttyACM0",
    "hdop": 0.8,
    "satellites": [
        {"PRN": 1, "used": True},
        {"PRN": 7, "used": True},
        {"PRN": 9, "used": False},
        {"PRN": 12, "used": True},
        {"PRN": 30, "used": True},
    ],
}


def tpv(
    mode: int = 3, lat: float = 39.8917, lon: float = 116.4661, **extra: object
) -> dict[str, object]:
    return {
        "class": "TPV",
        "device": "/dev/ttyACM0",
        "mode": mode,
        "time": "2026-11-21T08:00:01.000Z",
        "lat": lat,
        "lon": lon,
        "altMSL": 45.2,
        "speed": 6.1,
        "track": 87.5,
        **extra,
    }


def line(doc: dict[str, object]) -> bytes:
    return json.dumps(doc).encode()


def test_tpv_after_sky_makes_a_full_fix() -> None:
    decoder = GpsdDecoder()
    assert decoder.line(line(SKY)) is None
    fix = decoder.line(line(tpv()))
    assert fix is not None
    assert fix.valid
    assert fix.time == datetime(2026, 11, 21, 8, 0, 1, tzinfo=UTC)
    assert (fix.lat, fix.lon) == (39.8917, 116.4661)
    assert (fix.satellites, fix.hdop, fix.quality) == (4, 0.8, 1)
    assert (fix.speed_mps, fix.course_deg, fix.altitude_m) == (6.1, 87.5, 45.2)


def test_usat_and_dgps_status() -> None:
    decoder = GpsdDecoder()
    decoder.line(line({"class": "SKY", "uSat": 9, "hdop": 1.2}))
    fix = decoder.line(line(tpv(status=2)))
    assert fix is not None
    assert (fix.satellites, fix.quality) == (9, 2)


def test_no_fix_modes_give_an_invalid_fix() -> None:
    decoder = GpsdDecoder()
    fix = decoder.line(line({"class": "TPV", "mode": 1, "time": "2026-11-21T08:00:01Z"}))
    assert fix is not None
    assert not fix.valid
    assert fix.quality == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1,2]",
        b'{"class":"TPV","mode":"3"}',
        b'{"class":"TPV","mode":3,"time":"yesterday"}',
        b"\xff\xfe",
    ],
)
def test_bad_lines_are_counted_not_raised(raw: bytes) -> None:
    decoder = GpsdDecoder()
    assert decoder.line(raw) is None
    assert decoder.bad_lines == 1


@given(st.binary(max_size=300))
def test_decoder_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    GpsdDecoder().line(raw)


@given(
    st.dictionaries(
        st.sampled_from(
            ["class", "mode", "time", "lat", "lon", "speed", "track", "status", "hdop", "uSat"]
        ),
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)),
    )
)
def test_decoder_never_raises_on_odd_reports(doc: dict[str, object]) -> None:
    decoder = GpsdDecoder()
    decoder.line(json.dumps({**doc, "class": "SKY"}).encode())
    fix = decoder.line(json.dumps({**doc, "class": "TPV"}).encode())
    if fix is not None and fix.valid:
        assert -90 <= fix.lat <= 90
        assert -180 <= fix.lon <= 180


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
