"""Ingest throughput, in one run on one private Mosquitto and the machine's PostgreSQL.

    .venv/bin/python -m bench.ingest                 # everything (Node-RED if installed)
    .venv/bin/python -m bench.ingest --quick         # smaller counts, for a smoke run
    .venv/bin/python -m bench.ingest --ingest-workers 2   # the ingest as two shared-subscription
                                                          # workers (docs/storage.md)

(a) end to end at QoS 1, one reading per message: a publisher process sends N messages while
    `envpatrol ingest` (its own process) stores them; readings/s from the first publish to the
    last row committed. "a queued": the same messages already waiting in the ingest's persistent
    session when it starts (see `queued`): the consumer's own rate, not the publisher's.
(b) a fleet back from an outage: 1,000 vehicles x 1 hour (360,000 readings, 50 per message)
    waiting in the ingest's persistent session when it starts; from its process start to the last
    row committed. "b live" publishes the same while the ingest runs (publisher and ingest then
    share the two cores), timed like (a).
(c) raw COPY of the same 360,000 readings straight into `reading` (psycopg `write_row` of rows
    made before the clock starts, 5,000 rows per transaction): the ceiling for (b).
(d) Node-RED 4 (bench/nodered: mqtt in -> function node batching into a pg multi-row INSERT ...
    ON CONFLICT DO NOTHING), the same job as (a): the same messages at QoS 1 into the same
    table, measured the same ways (live, and queued in its persistent session). Install it once
    with `cd bench/nodered && npm install`.
(e) a paho QoS 1 subscriber that only acknowledges, the same messages queued: the ceiling for
    any Python consumer built on paho here, (a)'s included.

Every scenario gets a fresh migrated database. Each publisher waits until its consumer stores a
probe reading, so its session and subscription exist before the clock starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from demo.embedded import free_port
from edge.wire import Position, Reading, encode_message
from ingest.mqtt_client import IngestClient, Received
from ingest.writer import adapt_connection, copy_rows, row_of
from store.migrate import migrate
from store.reading_columns import COLUMNS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NODERED = HERE / "nodered"
ADMIN_URL = os.environ.get(
    "ENVPATROL_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# --- parts -----------------------------------------------------------------------------------------


BROKER_PID = [0]  # the private Mosquitto's process, for its CPU time
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_cpu_seconds() -> tuple[float, float, float]:
    """(busy, idle, stolen) CPU seconds of the whole machine so far, over all cores; stolen:
    time the hypervisor gave this virtual machine's cores to others."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:7]) - idle) / _TICK, idle / _TICK, ticks[7] / _TICK


def database_backends_cpu(conn: psycopg.Connection[Any]) -> float:
    """CPU time of the other PostgreSQL backends connected to this database (the consumer's)."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid()"
    ).fetchall()
    return sum(cpu_seconds(int(r[0])) for r in rows)


@contextlib.contextmanager
def broker(directory: Path) -> Iterator[int]:
    """A private Mosquitto: no queue limit (the default 1,000 drops the backlog silently)."""
    exe = shutil.which("mosquitto", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if exe is None:
        raise SystemExit("mosquitto not found (apt-get install mosquitto)")
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"user {pwd.getpwuid(os.getuid()).pw_name}\nallow_anonymous true\npersistence false\n"
        f"max_queued_messages 0\nmax_inflight_messages 0\nlistener {port} 127.0.0.1\n"
        "log_dest stderr\nlog_type error\n"
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
    BROKER_PID[0] = proc.pid
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def database() -> Iterator[str]:
    name = f"envpatrol_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = urlunsplit(urlsplit(ADMIN_URL)._replace(path="/" + name))
    try:
        with psycopg.connect(url) as conn:
            migrate(conn)
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            # the previous scenario's dirty pages written now, not during this one's clock
            admin.execute("CHECKPOINT")
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


class Stored:
    """How many of a scenario's readings are stored, asked every 50 ms without taking the machine
    from the consumer under test. Counting `reading` scans it with parallel workers, and polling
    by count took a large share of two cores late in a run; looking up every vehicle's newest
    reading by its key on every poll was still costly (docs/performance.md). So it asks in three
    steps, each only once the one before holds: the newest time stored (the top of each
    partition's time index) up to the newest time published; every vehicle's newest reading,
    looked up by its key (from a temporary table filled once); then the count, without parallel
    workers, until every reading is."""

    def __init__(self, conn: psycopg.Connection[Any], readings: dict[str, list[Reading]]) -> None:
        self.conn = conn
        self.n = sum(len(rs) for rs in readings.values())
        newest = [rs[-1] for rs in readings.values() if rs]
        self.vehicles = len(newest)
        self.latest = max((r.time for r in newest), default=None)
        self.latest_seen = False
        conn.execute("SET max_parallel_workers_per_gather = 0")
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS newest (v text, t timestamptz, s int8)")
        conn.execute("TRUNCATE newest")
        with conn.cursor() as cur, cur.copy("COPY newest (v, t, s) FROM STDIN") as copy:
            for r in newest:
                copy.write_row((r.vehicle, r.time, r.seq))

    def any(self) -> bool:
        row = self.conn.execute(
            "SELECT EXISTS (SELECT FROM reading WHERE vehicle <> 'probe')"
        ).fetchone()
        return bool(row and row[0])

    def count(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM reading WHERE vehicle <> 'probe'").fetchone()
        return int(row[0]) if row else 0

    def newest_stored(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM newest k WHERE EXISTS (SELECT FROM reading r"
            " WHERE r.vehicle = k.v AND r.time = k.t AND r.seq = k.s)"
        ).fetchone()
        return int(row[0]) if row else 0

    def all(self) -> bool:
        """Every reading stored (each step asked only once the one before holds)."""
        if not self.latest_seen and self.latest is not None:
            row = self.conn.execute(
                "SELECT max(time) >= %s FROM reading WHERE vehicle <> 'probe'", (self.latest,)
            ).fetchone()
            self.latest_seen = bool(row and row[0])
            if not self.latest_seen:
                return False
        return self.newest_stored() == self.vehicles and self.count() >= self.n


def wait_stored(url: str, readings: dict[str, list[Reading]], timeout: float) -> tuple[float, int]:
    """Polls until all of `readings` are stored; returns the time it saw them (monotonic) and
    how many they are."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        stored = Stored(conn, readings)
        while time.monotonic() < deadline:
            if stored.all():
                return time.monotonic(), stored.n
            time.sleep(0.05)
        raise SystemExit(
            f"timed out: {stored.count()} of {stored.n} readings stored after {timeout:.0f}s"
        )


# --- readings --------------------------------------------------------------------------------------


def fleet(vehicles: int, per_vehicle: int, start: datetime) -> dict[str, list[Reading]]:
    out = {}
    for v in range(vehicles):
        name = f"car-{v:04d}"
        lat0 = 39.85 + 0.0011 * (v % 100)
        out[name] = [
            Reading(
                vehicle=name,
                seq=seq,
                time=start + timedelta(seconds=10 * seq),
                time_source="gnss",
                position=Position(lat0, 116.30 + 0.00011 * seq, True, 1, 9, 0.9, 8.0, 90.0, 0.4),
                values={
                    "temperature": 18.0, "humidity": 40.0, "noise": 60.0 + seq % 9,
                    "pm25": 20.0 + seq % 13, "pm10": 40.0, "co2": 420.0, "no2": 30.0,
                },
                profile="default-multi",
            )
            for seq in range(per_vehicle)
        ]  # fmt: skip
    return out


def messages(readings: dict[str, list[Reading]], per_message: int) -> list[tuple[str, bytes]]:
    """(topic, payload) with vehicles interleaved, as a fleet's messages arrive."""
    out = []
    longest = max(len(r) for r in readings.values())
    for first in range(0, longest, per_message):
        for vehicle, rs in readings.items():
            chunk = rs[first : first + per_message]
            if chunk:
                out.append((f"envpatrol/v1/{vehicle}/readings", encode_message(vehicle, chunk)))
    return out


def probe_message() -> tuple[str, bytes]:
    r = Reading("probe", int(time.time() * 1000), datetime.now(UTC), "gnss", None, {}, "probe")
    return "envpatrol/v1/probe/readings", encode_message("probe", [r])


# --- publishing ------------------------------------------------------------------------------------


def publish(port: int, client_id: str, payloads: list[tuple[str, bytes]]) -> float:
    """Publish at QoS 1 as fast as the broker acknowledges; returns the seconds it took."""
    done = threading.Event()
    acked = [0]
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)

    def on_publish(*_args: object) -> None:
        acked[0] += 1
        if acked[0] == len(payloads):
            done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port, 60)
    client.loop_start()
    started = time.monotonic()
    for topic, payload in payloads:
        client.publish(topic, payload, qos=1)
    done.wait(timeout=600)
    elapsed = time.monotonic() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def wait_for_consumer(port: int, url: str, timeout: float = 60) -> None:
    """Publishes probe readings until one is stored: the consumer is subscribed and writing."""
    deadline = time.monotonic() + timeout
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port, 60)
    client.loop_start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                topic, payload = probe_message()
                client.publish(topic, payload, qos=1).wait_for_publish(5)
                if conn.execute("SELECT 1 FROM reading WHERE vehicle = 'probe'").fetchone():
                    return
                time.sleep(0.3)
    finally:
        client.disconnect()
        client.loop_stop()
    raise SystemExit("the consumer never stored the probe reading")


# --- consumers -------------------------------------------------------------------------------------


# Extra `[ingest]` settings for every ingest the bench starts (`--ingest-option key=value`).
INGEST_OPTIONS: dict[str, str] = {}


# How many `envpatrol ingest` processes make up the ingest under test (`--ingest-workers`): more
# than one share the readings through an MQTT 5 shared subscription, as docs/storage.md describes.
INGEST_WORKERS = [1]


INGEST_LOG: list[Path | None] = [None]  # --ingest-log: where workers' debug logs go
METRICS_PORTS: dict[str, int] = {}  # each ingest worker's /metrics, by client id


def wait_for_sessions(port: int, ids: list[str], timeout: float = 60) -> None:
    """Until every ingest worker in `ids` reports itself connected (its /metrics): it sent its
    SUBSCRIBE before, so the broker has its session and its place in the shared group."""
    deadline = time.monotonic() + timeout
    waiting = list(ids)
    while waiting:
        client_id = waiting[0]
        try:
            page = httpx.get(f"http://127.0.0.1:{METRICS_PORTS[client_id]}/metrics", timeout=2)
            if "envpatrol_ingest_broker_connected 1.0" in page.text:
                waiting.pop(0)
                continue
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"ingest worker {client_id} never connected (port {port})")
        time.sleep(0.1)


def ingest_client_ids(ident: str) -> list[str]:
    n = INGEST_WORKERS[0]
    return [f"bench-ingest-{ident}"] if n == 1 else [f"bench-ingest-{ident}-{k}" for k in range(n)]


def start_ingest(port: int, url: str, directory: Path, ident: str) -> list[subprocess.Popen[bytes]]:
    """`envpatrol ingest` in its own process (one per worker): default settings but a shorter
    batch wait, and client ids fixed by `ident`, so a restarted ingest finds its persistent
    sessions."""
    options = {"batch_max_wait_s": "0.2", **INGEST_OPTIONS}
    if INGEST_WORKERS[0] > 1:
        options["share_group"] = '"bench"'
    procs = []
    for client_id in ingest_client_ids(ident):
        config = directory / f"{client_id}.toml"
        METRICS_PORTS[client_id] = free_port()
        worker = {**options, "metrics_port": str(METRICS_PORTS[client_id])}
        config.write_text(
            f'[mqtt]\nurl = "mqtt://127.0.0.1:{port}"\nclient_id = "{client_id}"\n'
            f'[database]\nurl = "{url}"\n[ingest]\n'
            + "".join(f"{k} = {v}\n" for k, v in worker.items())
        )
        command = [sys.executable, "-m", "edge.cli", "ingest", "--config", str(config)]
        log = INGEST_LOG[0]
        with contextlib.ExitStack() as files:
            err = (
                files.enter_context((log / f"{client_id}.log").open("ab"))
                if log is not None
                else subprocess.DEVNULL
            )
            procs.append(
                subprocess.Popen(
                    [*command, "--verbose"] if log is not None else command,
                    cwd=REPO,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            )
    return procs


def start_nodered(
    port: int, url: str, directory: Path, ident: str
) -> list[subprocess.Popen[bytes]]:
    """Node-RED 4 with bench/nodered/flow.json; its MQTT session is persistent too (flow.json:
    clean session off), under a client id fixed by `ident`."""
    red = NODERED / "node_modules" / "node-red" / "red.js"
    user_dir = directory / f"nodered-{ident}"
    user_dir.mkdir(exist_ok=True)
    shutil.copy(NODERED / "flow.json", user_dir / "flow.json")
    env = {
        **os.environ,
        "MQTT_HOST": "127.0.0.1",
        "MQTT_PORT": str(port),
        "MQTT_CLIENT_ID": f"bench-nodered-{ident}",
        "MQTT_TOPIC": "envpatrol/v1/+/readings",
        "PG_URL": url,
        "NODERED_PORT": str(free_port()),
        "NODE_PATH": str(NODERED / "node_modules"),
    }
    return [
        subprocess.Popen(
            [
                "node",
                str(red),
                "--settings",
                str(NODERED / "settings.js"),
                "--userDir",
                str(user_dir),
            ],
            cwd=NODERED,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]


STARTERS = {"ingest": start_ingest, "nodered": start_nodered}


def client_ids(kind: str, ident: str) -> list[str]:
    return ingest_client_ids(ident) if kind == "ingest" else [f"bench-nodered-{ident}"]


def forget_session(port: int, client_id: str) -> None:
    """Ends a consumer's persistent session once its scenario is over: otherwise the broker
    keeps queueing every later scenario's messages for it too (its subscription matches them),
    and each scenario would pay for the fan-out to all the sessions before it."""
    connected = threading.Event()
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    client.on_connect = lambda *_args: connected.set()
    client.connect("127.0.0.1", port, 60, clean_start=True)  # session expiry 0: gone on close
    client.loop_start()
    try:
        if not connected.wait(30):
            raise SystemExit(f"could not end the session of {client_id}")
    finally:
        client.disconnect()
        client.loop_stop()


@contextlib.contextmanager
def consumer(
    kind: str, port: int, url: str, directory: Path, ident: str, *, ready: bool = True
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The consumer's processes running; with `ready`, only once it has stored a probe reading
    (so its session and subscription exist; with several ingest workers, once each has
    subscribed too)."""
    procs = STARTERS[kind](port, url, directory, ident)
    try:
        if ready:
            wait_for_consumer(port, url, timeout=120)
            if len(procs) > 1:
                wait_for_sessions(port, client_ids(kind, ident))
        yield procs
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)


# --- scenarios -------------------------------------------------------------------------------------


def end_to_end(
    port: int,
    directory: Path,
    kind: str,
    payloads: list[tuple[str, bytes]],
    readings: dict[str, list[Reading]],
) -> dict[str, float]:
    """Live: the publisher sends while the consumer runs; from the first publish to the last row
    stored. Publisher, broker, consumer and PostgreSQL share the machine's cores, and a consumer
    that keeps up is measured at the publisher's pace (see publish_s)."""
    ident = uuid.uuid4().hex[:6]
    with database() as url:
        with consumer(kind, port, url, directory, ident):
            started = time.monotonic()
            result: dict[str, float] = {}
            thread = threading.Thread(
                target=lambda: result.__setitem__(
                    "publish_s", publish(port, f"bench-pub-{uuid.uuid4().hex[:6]}", payloads)
                )
            )
            thread.start()
            stored_at, n = wait_stored(url, readings, timeout=900)
            thread.join()
        for client_id in client_ids(kind, ident):
            forget_session(port, client_id)
        seconds = stored_at - started
        return {"readings": n, "seconds": seconds, "per_s": n / seconds, **result}


def queued(
    port: int,
    directory: Path,
    kind: str,
    payloads: list[tuple[str, bytes]],
    readings: dict[str, list[Reading]],
) -> dict[str, float]:
    """Backlog: everything is already waiting in the consumer's persistent session when it
    starts (the consumer subscribes once and stops; the messages are published, untimed: on a
    real fleet that is other machines). `seconds` runs from the consumer's process start
    (interpreter, connecting, migrations check) to the last row stored; `drain_per_s` from the
    first rows seen stored to the last, the rate without the start-up."""
    ident = uuid.uuid4().hex[:6]
    with database() as url:
        with consumer(kind, port, url, directory, ident):
            pass
        publish_s = publish(port, f"bench-pub-{uuid.uuid4().hex[:6]}", payloads)
        broker_cpu, (busy, idle, stolen) = cpu_seconds(BROKER_PID[0]), machine_cpu_seconds()
        own_cpu = time.process_time()
        started = time.monotonic()
        first: tuple[float, int] | None = None
        with (
            consumer(kind, port, url, directory, ident, ready=False) as procs,
            psycopg.connect(url, autocommit=True) as conn,
        ):
            deadline = started + 900
            stored = Stored(conn, readings)
            n = stored.n
            while True:
                if first is None and stored.any():
                    first = (time.monotonic(), stored.count())
                if first is not None and stored.all():
                    now = time.monotonic()
                    cpu = {
                        "cpu_consumer_s": sum(cpu_seconds(p.pid) for p in procs),
                        "cpu_database_s": database_backends_cpu(conn),
                        "cpu_broker_s": cpu_seconds(BROKER_PID[0]) - broker_cpu,
                        # this process, polling the database: the observer's share
                        "cpu_bench_s": time.process_time() - own_cpu,
                    }
                    busy_end, idle_end, stolen_end = machine_cpu_seconds()
                    cpu["cpu_machine_busy_s"] = busy_end - busy
                    cpu["cpu_machine_idle_s"] = idle_end - idle
                    cpu["cpu_machine_stolen_s"] = stolen_end - stolen
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"timed out: {stored.count()} of {n} readings stored")
                time.sleep(0.05)
        for client_id in client_ids(kind, ident):
            forget_session(port, client_id)
        assert first is not None
        seconds = now - started
        drain = (n - first[1]) / (now - first[0]) if now > first[0] else float("nan")
        return {
            "readings": n,
            "seconds": seconds,
            "per_s": n / seconds,
            "drain_per_s": drain,
            "first_rows_s": first[0] - started,  # start-up: until the first batch is committed
            "publish_s": publish_s,
            **cpu,
        }


def raw_copy(readings: dict[str, list[Reading]], *, binary: bool) -> dict[str, float]:
    """Text COPY with `write_row`, or binary COPY with preset types (`ingest.writer.copy_rows`,
    what the ingest itself uses for its staging table)."""
    made = [(r, row_of(r, 10)) for rs in readings.values() for r in rs]
    made.sort(key=lambda pair: pair[0].time)
    rows = [row for _r, row in made]
    if not binary:  # flags and channel flags as text (the rows hold them in binary form)
        at = COLUMNS.index("flags")
        rows = [
            (*row[:at], list(r.flags), json.dumps(r.channel_flags), *row[at + 2 :])
            for r, row in made
        ]
    cols = ", ".join(COLUMNS)
    with database() as url, psycopg.connect(url) as conn:
        adapt_connection(conn)
        started = time.monotonic()
        for first in range(0, len(rows), 5000):
            with conn.cursor() as cur:
                if binary:
                    copy_rows(cur, "reading", rows[first : first + 5000])
                else:
                    with cur.copy(f"COPY reading ({cols}) FROM STDIN") as copy:  # type: ignore[arg-type]
                        for row in rows[first : first + 5000]:
                            copy.write_row(row)
            conn.commit()
        seconds = time.monotonic() - started
    return {"readings": len(rows), "seconds": seconds, "per_s": len(rows) / seconds}


def sink(port: int, client_id: str, n: int, *, ingest_client: bool = False) -> None:
    """A paho QoS 1 subscriber that does nothing but acknowledge (manually, one by one), on a
    persistent session: `--sink`. With n = 0 it subscribes and stops. With `ingest_client`,
    the ingest's own client (`ingest.mqtt_client`), taking messages in lists (`on_received`) and
    acknowledging 1,000 at a time, as the ingest does after each batch."""
    got = [0]
    done = threading.Event()
    started = time.monotonic()
    client = (IngestClient if ingest_client else paho.Client)(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    pending: list[int] = []
    client.manual_ack_set(True)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 4000

    def on_message(c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        got[0] += 1
        if isinstance(c, IngestClient):
            pending.append(message.mid)
            if len(pending) >= 1000 or got[0] >= n:
                c.ack_all(pending)
                pending.clear()
        else:
            c.ack(message.mid, message.qos)
        if got[0] >= n:
            done.set()

    def on_received(received: list[Received]) -> None:
        assert isinstance(client, IngestClient)
        for r in received:
            got[0] += 1
            pending.append(r.mid)
            if len(pending) >= 1000 or got[0] >= n:
                client.ack_all(pending)
                pending.clear()
        if got[0] >= n:
            done.set()

    def on_connect(c: paho.Client, *_args: object) -> None:
        c.subscribe("envpatrol/v1/+/readings", qos=1)
        if n == 0:
            done.set()

    client.on_message = on_message
    if isinstance(client, IngestClient):
        client.on_received = on_received
    client.on_connect = on_connect
    client.connect("127.0.0.1", port, 60, clean_start=False, properties=props)
    client.loop_start()
    done.wait(timeout=600)
    first_seconds = time.monotonic() - started
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"messages": got[0], "seconds": first_seconds}), flush=True)


def bare_subscriber(
    port: int, payloads: list[tuple[str, bytes]], *, ingest_client: bool = False
) -> dict[str, float]:
    """The ceiling for (a): the same messages queued for a subscriber that only acknowledges
    (paho's Client, or with `ingest_client` the ingest's); from its process start to its last
    message, like `queued`."""
    ident = f"bench-sink-{uuid.uuid4().hex[:6]}"
    flag = "--sink-ingest-client" if ingest_client else "--sink"
    command = [sys.executable, "-m", "bench.ingest", flag, str(port), ident]
    subprocess.run([*command, "0"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    publish(port, f"bench-pub-{uuid.uuid4().hex[:6]}", payloads)
    started = time.monotonic()
    out = subprocess.run(
        [*command, str(len(payloads))], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    seconds = time.monotonic() - started
    forget_session(port, ident)
    inner = json.loads(out.strip().splitlines()[-1])
    return {
        "messages": inner["messages"],
        "seconds": seconds,
        "per_s": inner["messages"] / seconds,
        "in_process_per_s": inner["messages"] / inner["seconds"],
    }


def machine() -> str:
    def run(cmd: str) -> str:
        try:
            return subprocess.run(
                ["sh", "-c", cmd], capture_output=True, text=True, check=False
            ).stdout
        except OSError:
            return ""

    return (
        f"nproc: {run('nproc').strip()}\n{run('lscpu | head -n 15')}{run('free -m')}"
        f"Python {platform.python_version()}, {run('mosquitto -h 2>/dev/null | head -n 1').strip()}"
        f" {run('psql --version').strip()}, node {run('node --version').strip()}"
    )


def summary(results: dict[str, dict[str, float]], backlog_n: int) -> None:
    print()
    print(machine())
    print(json.dumps(results, indent=2))

    def rate(key: str, field: str = "per_s") -> float | None:
        return results[key][field] if key in results else None

    def ratio(what: str, num: float | None, den: float | None, target: str) -> None:
        if num is not None and den is not None:
            print(f"{what} = {num / den:.2f} ({target})")

    ratio("(b)/(c)", rate("b"), rate("c"), "target >= 0.5")
    ratio("(b)/(c text)", rate("b"), rate("c_text"), "against the text COPY")
    ratio("(a queued)/(e)", rate("a_queued"), rate("e"), "share of a do-nothing paho subscriber")
    ratio("(a queued)/(e ingest client)", rate("a_queued"), rate("e_client"),
          "share of the ingest's own client doing nothing")  # fmt: skip
    if "b" in results:
        print(f"(b) {backlog_n} readings stored in {results['b']['seconds']:.1f} s (target < 20 s)")
    ratio("(a)/(d) live", rate("a"), rate("d"), "target >= 2")
    ratio("(a)/(d) queued, from process start", rate("a_queued"), rate("d_queued"), "target >= 2")
    ratio("(a)/(d) queued, draining", rate("a_queued", "drain_per_s"),
          rate("d_queued", "drain_per_s"), "target >= 2")  # fmt: skip


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--single", type=int, default=60_000, help="messages in (a) and (d)")
    parser.add_argument("--no-nodered", action="store_true")
    parser.add_argument(
        "--ingest-workers",
        type=int,
        default=1,
        help="ingest processes sharing the readings (MQTT 5 shared subscription)",
    )
    parser.add_argument(
        "--ingest-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an [ingest] setting for the ingest under test, e.g. batch_max_messages=2000",
    )
    parser.add_argument(
        "--ingest-log",
        type=Path,
        metavar="DIR",
        help="run the ingest with debug logging, each worker's log in DIR/<client id>.log",
    )
    parser.add_argument(
        "--only",
        help="comma-separated scenario keys to run (a, a_queued, b, b_live, d, d_queued, e, c)",
    )
    parser.add_argument(
        "--sink", nargs=3, metavar=("PORT", "CLIENT_ID", "N"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--sink-ingest-client", nargs=3, metavar=("PORT", "CLIENT_ID", "N"), help=argparse.SUPPRESS
    )
    return parser.parse_args()


def main() -> int:
    args = arguments()
    INGEST_OPTIONS.update(option.split("=", 1) for option in args.ingest_option)
    INGEST_WORKERS[0] = args.ingest_workers
    if args.ingest_log is not None:
        args.ingest_log.mkdir(parents=True, exist_ok=True)
        INGEST_LOG[0] = args.ingest_log
    if args.sink or args.sink_ingest_client:
        port, ident, n = args.sink or args.sink_ingest_client
        sink(int(port), ident, int(n), ingest_client=bool(args.sink_ingest_client))
        return 0
    single_n = 5_000 if args.quick else args.single
    vehicles, per_vehicle = (100, 60) if args.quick else (1000, 360)
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)

    single = fleet(1000, single_n // 1000, start)
    single_payloads = messages(single, 1)
    backlog = fleet(vehicles, per_vehicle, start)
    backlog_payloads = messages(backlog, 50)
    backlog_n = vehicles * per_vehicle
    results: dict[str, dict[str, float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="envpatrol-bench-ingest-") as tmp,
        broker(Path(tmp)) as port,
    ):
        directory = Path(tmp)
        nodered = not args.no_nodered and (NODERED / "node_modules" / "node-red").exists()
        plan = [
            ("a", "(a) ingest, QoS 1, one reading per message, live", end_to_end, "ingest", 1),
            ("a_queued", "(a) the same, queued in its session", queued, "ingest", 1),
            (
                "b",
                f"(b) ingest, {backlog_n} readings, 50 per message, queued",
                queued,
                "ingest",
                50,
            ),
            ("b_live", "(b) the same, live", end_to_end, "ingest", 50),
        ]
        if nodered:
            # Queued works since flow.json sets autoUnsubscribe false on the broker node: by
            # default Node-RED unsubscribes when it stops, so its session queues nothing.
            plan.append(("d", "(d) Node-RED 4, as (a), live", end_to_end, "nodered", 1))
            plan.append(("d_queued", "(d) the same, queued in its session", queued, "nodered", 1))
        chosen = set(args.only.split(",")) if args.only else None
        for key, title, scenario, kind, per_message in plan:
            if chosen is not None and key not in chosen:
                continue
            print(f"{title} ...", flush=True)
            payloads = single_payloads if per_message == 1 else backlog_payloads
            readings = single if per_message == 1 else backlog
            results[key] = scenario(port, directory, kind, payloads, readings)
            print(f"    {results[key]}", flush=True)
        if chosen is None or "e" in chosen:
            print("(e) bare paho subscriber, QoS 1, as (a) queued ...", flush=True)
            results["e"] = bare_subscriber(port, single_payloads)
            print(f"    {results['e']}", flush=True)
            print("(e) the ingest's client, doing nothing but acknowledging ...", flush=True)
            results["e_client"] = bare_subscriber(port, single_payloads, ingest_client=True)
            print(f"    {results['e_client']}", flush=True)
        if chosen is None or "c" in chosen:
            print("(c) raw COPY, binary with preset types ...", flush=True)
            results["c"] = raw_copy(backlog, binary=True)
            print(f"    {results['c']}", flush=True)
            print("(c) raw COPY, text ...", flush=True)
            results["c_text"] = raw_copy(backlog, binary=False)
            print(f"    {results['c_text']}", flush=True)
        if not nodered:
            print("(d) skipped: run `npm install` in bench/nodered", flush=True)
    summary(results, backlog_n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
