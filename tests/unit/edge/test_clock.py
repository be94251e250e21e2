"""The agent tags readings on the clock it is given (edge.clock), in drive seconds, and a
recording keeps that clock's readings exactly."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.clock import SystemClock
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.gps import GpsReceiver
from edge.modbus import encode_read_response
from edge.mqtt import MqttSettings
from edge.nmea import format_gga, format_rmc
from edge.recording import load_recording

GNSS = datetime(2026, 3, 2, 1, 0, 0, tzinfo=UTC)
HOST = datetime(2026, 3, 2, 1, 0, 7, 123456, tzinfo=UTC)


class StillClock:
    """Moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return HOST

    def boottime(self) -> float | None:
        return 50.0


class AnsweringPort:
    """A box that answers every request with the same register block."""

    def __init__(self) -> None:
        self.timeout: float | None = 0.5
        self._pending = b""

    def write(self, data: bytes, /) -> int | None:
        self._pending = encode_read_response(1, 3, list(range(16)))
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


def make_agent(tmp_path: Path, clock: StillClock, record: bool = False) -> Agent:
    settings = EdgeSettings(
        vehicle="v",
        mqtt=MqttSettings.from_url("mqtt://127.0.0.1:1883"),
        box=BoxSettings(port="/dev/box"),
        gps=GpsSettings(port="/dev/gps"),
        outbox_path=str(tmp_path / "outbox.sqlite3"),
        time_scale=200.0,  # the clock already reads drive seconds: the scale is not applied again
        record_path=str(tmp_path / "drive.jsonl.gz") if record else None,
    )
    return Agent(settings, open_port=lambda *_: AnsweringPort(), clock=clock)


def test_the_agent_dates_and_ages_on_its_clock(tmp_path: Path) -> None:
    clock = StillClock()
    agent = make_agent(tmp_path, clock, record=True)
    assert agent.started == 1000.0
    assert agent.powered_for == 50.0
    first = agent.poll_once()
    assert first is not None
    assert first.time == HOST  # no fix yet: the clock's wall time
    assert first.time_source == "host"
    receiver = agent.gps
    assert isinstance(receiver, GpsReceiver)
    clock.now = 1003.0
    receiver.feed((format_gga(GNSS, 39.89, 116.47) + format_rmc(GNSS, 39.89, 116.47)).encode())
    clock.now = 1004.25
    second = agent.poll_once()
    assert second is not None
    assert second.position is not None
    assert second.position.age_s == 1.25
    assert second.time == GNSS + timedelta(seconds=1.25)
    assert "stale_fix" not in second.flags
    agent.outbox.close()
    assert agent.recorder is not None
    agent.recorder.close()

    recording = load_recording(tmp_path / "drive.jsonl.gz")
    assert recording.header["clock"] == {"origin": 1000.0, "started": 1000.0, "powered_for": 50.0}
    assert [(r.tagged_at, r.fix_received) for r in recording.readings] == [
        (1000.0, None),
        (1004.25, 1003.0),
    ]


def test_the_system_clock_reads_drive_seconds() -> None:
    before = time.monotonic()
    scaled = SystemClock(400.0).monotonic()
    after = time.monotonic()
    assert before * 400.0 <= scaled <= after * 400.0
    assert SystemClock().wall().tzinfo is UTC
    boot = SystemClock(2.0).boottime()
    if boot is None:
        pytest.skip("no CLOCK_BOOTTIME on this platform")
    assert boot >= 2.0 * time.clock_gettime(time.CLOCK_BOOTTIME) - 1.0
