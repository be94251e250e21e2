"""Real parts for the ingest's fault tests: a private Mosquitto that can be restarted, a TCP proxy
in front of PostgreSQL that can blackhole or cut connections, a QoS 1 publisher that records
what the broker acknowledged, and the ingest as a process that can be killed with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from demo.embedded import free_port
from edge.wire import Position, Reading, encode_message

_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
MOSQUITTO = shutil.which("mosquitto", path=_SEARCH_PATH)
needs_mosquitto = pytest.mark.skipif(
    MOSQUITTO is None,
    reason="needs the Mosquitto broker binary (Debian: apt-get install mosquitto)",
)
REPO = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class PrivateBroker:
    """Mosquitto on a free loopback port with persistence in a test directory; anonymous access.
    `max_queued_messages 0` (no limit): the default of 1000 silently drops beyond that."""

    def __init__(self, directory: Path) -> None:
        assert MOSQUITTO is not None
        self.directory = directory
        self.port = free_port()
        self.conf = directory / "mosquitto.conf"
        self.log_path = directory / "mosquitto.log"
        user = pwd.getpwuid(os.getuid()).pw_name
        self.conf.write_text(
            "\n".join(
                [
                    f"user {user}",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {directory}/",
                    "autosave_interval 1",
                    "max_queued_messages 0",
                    "max_inflight_messages 0",
                    f"listener {self.port} 127.0.0.1",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert MOSQUITTO is not None
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        proc = self.proc
        wait_for(
            lambda: proc.poll() is not None or _listening(self.port), 10, "mosquitto to listen"
        )
        if proc.poll() is not None:
            raise AssertionError(f"mosquitto exited:\n{self.log_path.read_text(errors='replace')}")

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its persistence file (sessions, queued messages) and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class TcpProxy:
    """A loopback TCP proxy to `target`. `blackhole()` keeps every connection open and accepts new
    ones but forwards nothing (a silently dead path); `cut()` closes every connection and refuses
    new ones for as long as it lasts; `restore()` forwards again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self.mode = "forward"
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tcp-proxy", daemon=True)
        self._thread.start()

    def url_for(self, database_url: str) -> str:
        parts = urlsplit(database_url)
        user = parts.username or "postgres"
        return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{self.port}"))

    def blackhole(self) -> None:
        self.mode = "blackhole"

    def cut(self) -> None:
        with self._lock:
            self.mode = "cut"
            for a, b in self._pairs:
                for s in (a, b):
                    if s is not None:
                        with contextlib.suppress(OSError):
                            s.close()
            self._pairs.clear()

    def restore(self) -> None:
        self.mode = "forward"

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pairs = list(self._pairs)
            sockets: list[socket.socket] = [self._listener]
            for a, b in pairs:
                sockets.append(a)
                if b is not None:
                    sockets.append(b)
            try:
                ready, _, _ = select.select(sockets, [], [], 0.05)
            except (OSError, ValueError):
                continue  # a socket closed under us by cut(); look again
            if self.mode == "blackhole":
                # Accept new connections (so connect() hangs at the startup exchange) and leave
                # every byte unread: nothing moves in either direction.
                if self._listener in ready:
                    client, _ = self._listener.accept()
                    with self._lock:
                        self._pairs.append((client, None))
                time.sleep(0.05)
                continue
            for s in ready:
                if s is self._listener:
                    self._accept()
                else:
                    self._pump(s, pairs)

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        if self.mode == "cut":
            client.close()
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._pairs.append((client, server))

    def _pump(
        self, s: socket.socket, pairs: list[tuple[socket.socket, socket.socket | None]]
    ) -> None:
        for a, b in pairs:
            if b is None or s not in (a, b):
                continue
            other = b if s is a else a
            try:
                data = s.recv(65536)
                if data:
                    other.sendall(data)
                    return
            except OSError:
                pass
            with self._lock, contextlib.suppress(ValueError):
                self._pairs.remove((a, b))
            for x in (a, b):
                with contextlib.suppress(OSError):
                    x.close()
            return


@pytest.fixture
def pg_proxy(database_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(database_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    try:
        yield proxy
    finally:
        proxy.close()


def reading(vehicle: str, seq: int, moment: datetime) -> Reading:
    lon = 116.40 + 0.0004 * (seq % 200)
    return Reading(
        vehicle=vehicle,
        seq=seq,
        time=moment,
        time_source="gnss",
        position=Position(39.9, lon, True, 1, 9, 0.9, 8.0, 90.0, 0.4),
        values={"pm25": 20.0 + seq % 17, "noise": 55.0 + seq % 11},
        profile="default-multi",
    )


class Publisher:
    """Publishes readings at QoS 1 on a persistent session and records which were acknowledged
    by the broker: those are the readings the system must then hold, exactly once."""

    def __init__(self, broker_url: str, client_id: str, root: str = "envpatrol") -> None:
        parts = urlsplit(broker_url)
        self.root = root
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
        )
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_publish = self._on_publish
        if parts.username:  # a broker with accounts: mqtt://user:password@host:port
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        self._lock = threading.Lock()
        self._pending: dict[int, list[tuple[str, int]]] = {}
        self._early: set[int] = set()
        self.acknowledged: list[tuple[str, int]] = []
        self.sent = 0
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect(
            parts.hostname or "127.0.0.1",
            parts.port or 1883,
            30,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self._lock:
            keys = self._pending.pop(mid, None)
            if keys is None:
                self._early.add(mid)
            elif not reason.is_failure:
                self.acknowledged.extend(keys)

    def publish(self, vehicle: str, readings: list[Reading]) -> None:
        payload = encode_message(vehicle, readings)
        self.publish_raw(
            f"{self.root}/v1/{vehicle}/readings", payload, [(vehicle, r.seq) for r in readings]
        )

    def publish_raw(
        self, topic: str, payload: bytes, keys: list[tuple[str, int]] | None = None
    ) -> None:
        # Never hold our lock while paho works: its network thread holds paho's own lock while
        # it runs on_publish, which takes ours. An acknowledgement may arrive before we record
        # the mid; on_publish then leaves it in _early.
        info = self.client.publish(topic, payload, qos=1)
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                self.acknowledged.extend(keys or [])
            else:
                self._pending[info.mid] = keys or []
            self.sent += 1

    def outstanding(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def fleet_messages(
    vehicles: int, per_vehicle: int, start: datetime, batch: int = 1
) -> list[tuple[str, list[Reading]]]:
    """Messages of `batch` readings each, vehicles interleaved, 10 s apart per vehicle."""
    out = []
    for first in range(0, per_vehicle, batch):
        for v in range(vehicles):
            name = f"car-{v:04d}"
            out.append(
                (
                    name,
                    [
                        reading(name, seq, start + timedelta(seconds=10 * seq))
                        for seq in range(first, min(first + batch, per_vehicle))
                    ],
                )
            )
    return out


def recent_start(hours: float = 2.0) -> datetime:
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0)


def write_ingest_config(
    path: Path, broker_url: str, database_url: str, client_id: str, **ingest: object
) -> Path:
    lines = [
        "[mqtt]",
        f'url = "{broker_url}"',
        f'client_id = "{client_id}"',
        "[database]",
        f'url = "{database_url}"',
        "[ingest]",
    ]
    for key, value in ingest.items():
        lines.append(f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"')
    path.write_text("\n".join(lines) + "\n")
    return path


class IngestProcess:
    """`envpatrol ingest` in a process of its own, which a test can SIGKILL."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "ingest", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def wait_until_subscribed(publisher: Publisher, database_url: str, timeout: float = 30) -> None:
    """Publishes a status probe until the ingest has stored one: from then on its session holds
    a subscription, and the broker keeps every reading for it (before, nobody subscribed)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publisher.publish_raw(
            f"{publisher.root}/v1/probe/status",
            b'{"schema_version": 1, "vehicle": "probe", "state": "online"}',
        )
        with psycopg.connect(database_url) as conn:
            if conn.execute("SELECT 1 FROM vehicle WHERE vehicle = 'probe'").fetchone():
                return
        time.sleep(0.2)
    raise AssertionError("the ingest never stored the status probe")
