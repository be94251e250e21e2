"""`envpatrol demo` as a new user runs it: it catches up with now and keeps storing in real time;
it names its URLs and an admin key; a taken port stops it before anything starts."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from api import keys
from tests.services import wait_until


class Demo:
    """The demo's process and the lines it prints, read as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "demo", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))

    def line(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """The first printed line matching `pattern`, waiting for it up to `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        for seen in self.lines:
            if found := re.search(pattern, seen):
                return found
        while time.monotonic() < deadline:
            try:
                seen = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self._queue.empty():
                    break
                continue
            self.lines.append(seen)
            if found := re.search(pattern, seen):
                return found
        raise AssertionError(f"no line matching {pattern!r}; printed:\n" + "\n".join(self.lines))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
        code = self.process.wait()
        self._reader.join(10)  # the pipe's end reached: closing it now races no reader
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


@pytest.fixture
def demo_env(database_url: str, broker_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "ENVPATROL_DATABASE_URL": database_url,
        "ENVPATROL_MQTT_URL": broker_url,
    }


@pytest.fixture
def demo(demo_env: dict[str, str]) -> Iterator[Demo]:
    running = Demo(
        ["--vehicles", "2", "--speed", "60", "--hours-back", "0.1", "--port", "0"], demo_env
    )
    yield running
    running.stop()


def test_the_demo_catches_up_with_now_and_keeps_storing_in_real_time(
    demo: Demo, database_url: str
) -> None:
    base = demo.line(r"dashboard:\s+(http://127\.0\.0\.1:\d+)/", 90).group(1)
    demo.line(r"database:\s+postgresql://", 5)
    key = demo.line(r"admin key:\s+(\S+)", 5).group(1)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT role FROM api_key WHERE key_id = %s", (keys.key_id_of(key),)
        ).fetchone()
    assert row == ("admin",)
    # The map's streets come with the demo, whatever the network.
    with urllib.request.urlopen(f"{base}/v1/streets", timeout=10) as response:  # noqa: S310
        streets = json.loads(response.read())
    names = {f["properties"].get("name:en") for f in streets["features"]}
    assert {"Guangqu Road", "Xidawang Road", "East 3rd Ring Middle Road"} <= names
    # Six simulated minutes at 60x: the clock reaches now after about six wall seconds.
    demo.line(r"has reached now", 60)
    switched = datetime.now(UTC)

    def stored_after(moment: datetime) -> dict[str, int]:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT vehicle, count(*) FROM reading WHERE time > %s GROUP BY vehicle",
                (moment,),
            ).fetchall()
        return dict(rows)

    # Readings keep arriving, stamped with the real time, from both vehicles.
    wait_until(
        lambda: len(stored_after(switched + timedelta(seconds=5))) == 2,
        60,
        "readings after the switch from both vehicles",
        every=1.0,
    )
    later = datetime.now(UTC)
    wait_until(
        lambda: sum(stored_after(later).values()) >= 2,
        60,
        "readings keep coming",
        every=1.0,
    )
    with psycopg.connect(database_url) as conn:
        newest = conn.execute("SELECT max(time) FROM reading").fetchone()
        refused = conn.execute(
            "SELECT count(*) FROM dead_letter WHERE reason = 'time_out_of_range'"
        ).fetchone()
    assert newest is not None
    assert newest[0] <= datetime.now(UTC) + timedelta(seconds=5)  # never ahead of now
    assert refused == (0,)
    assert demo.stop() == 0


def test_a_taken_port_stops_the_demo_before_anything_starts(demo_env: dict[str, str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = Demo(["--port", str(port)], demo_env)
        demo.line(rf"port {port} is already in use", 20)
        assert demo.process.wait(20) == 2
        demo.stop()
    assert not any("started" in line for line in demo.lines)
