"""The ingest's memory while PostgreSQL is down and the broker keeps delivering.

    .venv/bin/python -m bench.ingest_memory             # 300,000 QoS 0 + 300,000 QoS 1
    .venv/bin/python -m bench.ingest_memory --quick     # 30,000 + 30,000, a smoke run

`envpatrol ingest` (its own process, default settings) runs against a private Mosquitto whose
queue limits hold the whole QoS 1 backlog, and reaches a scratch database on the machine's
PostgreSQL through a relay of this process. Once a probe reading is stored the relay is shut
(its connections cut, its port refusing): the database is down. Two publisher processes then
send 1 KB health documents at QoS 0 and one-reading messages at QoS 1, 1,000 vehicles each,
while the ingest's resident memory (VmRSS) is sampled every 100 ms. Then the relay opens again
and the bench waits until every QoS 1 reading is stored.

Target: RSS under 150 MB throughout; every QoS 1 reading stored (docs/performance.md).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import psycopg

from bench.ingest import REPO, database, fleet, machine, messages, wait_for_consumer
from bench.publishing import publish_windowed
from demo.embedded import free_port

VEHICLES = 1_000
TARGET_MB = 150.0
SAMPLE_S = 0.1


# --- the database, switched on and off ----------------------------------------------------------


class Relay:
    """A TCP relay to the database: `open` listens on `port` and forwards to `target`; `shut`
    closes the listener and cuts every connection, so the port refuses like a stopped server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def shut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # shut
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def url_for(self, database_url: str) -> str:
        parts = urlsplit(database_url)
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))


# --- broker, ingest, publishers ----------------------------------------------------------------


@contextlib.contextmanager
def broker(directory: Path, backlog: int) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A private Mosquitto configured like deploy/mosquitto (in-flight window, no QoS 0 queued
    for offline clients) with queue limits that hold the whole QoS 1 backlog."""
    exe = shutil.which("mosquitto", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if exe is None:
        raise SystemExit("mosquitto not found (apt-get install mosquitto)")
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"user {pwd.getpwuid(os.getuid()).pw_name}\nallow_anonymous true\npersistence false\n"
        f"max_queued_messages {backlog * 2}\nmax_queued_bytes {2 * 1024**3}\n"
        "max_inflight_messages 100\nqueue_qos0_messages false\n"
        f"listener {port} 127.0.0.1\nlog_dest stderr\nlog_type error\n"
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def start_ingest(
    port: int, url: str, directory: Path, metrics_port: int, inbox_max_bytes: int | None
) -> subprocess.Popen[bytes]:
    bound = "" if inbox_max_bytes is None else f"inbox_max_bytes = {inbox_max_bytes}\n"
    config = directory / "ingest.toml"
    config.write_text(
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{port}"\nclient_id = "bench-ingest-memory"\n'
        f'[database]\nurl = "{url}"\n[ingest]\nmetrics_port = {metrics_port}\n{bound}'
    )
    command = [sys.executable, "-m", "edge.cli", "ingest", "--config", str(config)]
    log = (directory / "ingest.log").open("ab")
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)


def health_document(vehicle: str, n: int) -> bytes:
    """A health document of about 1 KB, shaped like the edge agent's."""
    return orjson.dumps(
        {
            "schema_version": 1,
            "vehicle": vehicle,
            "time": datetime.now(UTC).isoformat(),
            "software": "envpatrol-edge bench",
            "uptime_s": float(n),
            "readings": n,
            "poll_success_rate": 0.9987,
            "crc_errors": n % 7,
            "box": {f"channel_{c:02d}_polls": n * 3 + c for c in range(30)},
            "gps": {"sentences": n * 5, "fix_valid": True, "satellites": 9, "hdop": 0.9},
            "outbox": {"pending": n % 50, "oldest_age_s": 12.5, "bytes": 81920},
        }
    )


def publish_all(port: int, qos: int, count: int, done: Any) -> None:
    """Publishes `count` messages at `qos` (a separate process): health documents at QoS 0,
    one-reading messages at QoS 1; sets `done` once the broker has taken them all."""
    if qos == 0:
        names = [f"car-{v:04d}" for v in range(VEHICLES)]
        payloads = [
            (f"envpatrol/v1/{names[i % VEHICLES]}/health", health_document(names[i % VEHICLES], i))
            for i in range(count)
        ]
    else:
        per_vehicle = max(1, count // VEHICLES)
        start = datetime.now(UTC) - timedelta(seconds=10 * per_vehicle + 60)
        payloads = messages(fleet(VEHICLES, per_vehicle, start), 1)
    # within the broker's Receive Maximum (its max_inflight_messages)
    publish_windowed(port, f"bench-publisher-{qos}", payloads, qos, inflight=100, timeout_s=900)
    done.set()


# --- measuring --------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler:
    """VmRSS of a process every `SAMPLE_S`, by phase."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.phase = "start"
        self.peaks: dict[str, float] = {}
        self.last = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            with contextlib.suppress(OSError):
                self.last = rss_mb(self.pid)
                self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), self.last)


def dropped(metrics_port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("envpatrol_ingest_messages_dropped_total "):
            return float(line.split()[1])
    return float("nan")


def stored_readings(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM reading WHERE vehicle <> 'probe'").fetchone()
    return int(row[0]) if row else 0


def dead_letters(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM dead_letter").fetchone()
    return int(row[0]) if row else 0


# --- the run ----------------------------------------------------------------------------------


def run(count: int, inbox_max_bytes: int | None) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp, database() as url:
        directory = Path(tmp)
        parts = urlsplit(url)
        relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
        relay.open()
        with broker(directory, count) as (port, broker_proc):
            metrics_port = free_port()
            ingest = start_ingest(
                port, relay.url_for(url), directory, metrics_port, inbox_max_bytes
            )
            sampler = Sampler(ingest.pid)
            try:
                sampler.start()
                wait_for_consumer(port, url)  # subscribed, and the database reached
                baseline = sampler.last
                relay.shut()
                sampler.phase = "outage"
                started = time.monotonic()
                events = [ctx.Event(), ctx.Event()]
                publishers = [
                    ctx.Process(target=publish_all, args=(port, qos, count, events[qos]))
                    for qos in (0, 1)
                ]
                for p in publishers:
                    p.start()
                for p in publishers:
                    p.join(timeout=1200)
                if not all(e.is_set() for e in events):
                    raise SystemExit("a publisher did not finish")
                published_s = time.monotonic() - started
                # the outage goes on a while after the last publish: the broker's last
                # deliveries arrive and RSS is sampled at its plateau
                time.sleep(10)
                outage_dropped = dropped(metrics_port)
                broker_mb = rss_mb(broker_proc.pid)
                relay.open()
                sampler.phase = "recovery"
                back = time.monotonic()
                deadline = back + 1200
                stored = 0
                while time.monotonic() < deadline:
                    stored = stored_readings(url)
                    if stored >= count:
                        break
                    time.sleep(1)
                drained_s = time.monotonic() - back
                hwm = peak_mb(ingest.pid)
                total_dropped = dropped(metrics_port)
            finally:
                sampler.stop()
                ingest.terminate()
                ingest.wait(timeout=30)
                relay.shut()
            return {
                "baseline_mb": baseline,
                "outage_peak_mb": sampler.peaks.get("outage", 0.0),
                "recovery_peak_mb": sampler.peaks.get("recovery", 0.0),
                "high_water_mb": hwm,
                "broker_mb_at_end_of_outage": broker_mb,
                "published_s": published_s,
                "qos0_dropped_in_outage": outage_dropped,
                "qos0_dropped_in_all": total_dropped,
                "qos1_published": float(count),
                "qos1_stored": float(stored),
                "dead_letters": float(dead_letters(url)),
                "drain_s": drained_s,
            }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="30,000 of each, a smoke run")
    parser.add_argument("--count", type=int, default=300_000, help="messages of each QoS")
    parser.add_argument(
        "--inbox-max-bytes",
        type=int,
        default=None,
        help="the ingest's inbox_max_bytes (default: its default); 1099511627776: no bound to speak of",
    )
    args = parser.parse_args()
    count = 30_000 if args.quick else args.count
    print(machine())
    result = run(count, args.inbox_max_bytes)
    for key, value in result.items():
        print(f"{key:30s} {value:12.1f}")
    ok = (
        max(result["high_water_mb"], result["outage_peak_mb"], result["recovery_peak_mb"])
        < TARGET_MB
        and result["qos1_stored"] == result["qos1_published"]
    )
    print(f"target: RSS < {TARGET_MB:.0f} MB throughout, every QoS 1 reading stored: "
          f"{'met' if ok else 'NOT met'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
