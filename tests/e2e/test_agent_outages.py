"""The edge agent against what a vehicle lives through: SIGKILL at random moments, broker outages
long and short, and a broker with a message size limit. Real parts only: the simulated box and
GPS on pseudo-terminals, the agent as its own process (`envpatrol edge`), a private Mosquitto on
a free port that the test stops and starts, the real ingest and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import pwd
import queue
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent import Agent
from edge.box import Discard
from edge.config import BoxSettings, EdgeSettings, GpsSettings, PublishSettings
from edge.mqtt import MqttSettings
from edge.outbox import Outbox
from edge.profile import load_profile
from firmware_sim.drive import CruiseDrive, SimClock
from firmware_sim.field import SHUANGJING_SOURCES, PollutionField
from firmware_sim.route import SHUANGJING_LOOP
from firmware_sim.truth import Accounting, account
from firmware_sim.vehicle import SimVehicle, TruthRecord
from ingest.service import IngestService
from ingest.settings import IngestSettings
from tests.services import wait_until

_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/usr/local/sbin"])
MOSQUITTO = shutil.which("mosquitto", path=_SEARCH_PATH)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(MOSQUITTO is None, reason="needs the `mosquitto` binary"),
]

PROFILE = load_profile("default-multi")
REPORT: dict[str, object] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PrivateBroker:
    """A Mosquitto of this test's own, stopped and started on the same port. Persistence is on,
    as in production, so messages it acknowledged survive its restarts."""

    workdir: Path
    extra: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert MOSQUITTO is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    f"user {pwd.getpwuid(os.getuid()).pw_name}",
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {self.workdir}/",
                    "max_queued_messages 100000",
                    *self.extra,
                    "",
                ]
            )
        )
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

        def listening() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError((self.workdir / "mosquitto.log").read_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_until(listening, 10, "mosquitto to listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # a clean stop writes the persistence file
            self.process.wait(10)
        self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    b = PrivateBroker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


class IngestRunner:
    """The real ingest in a thread, with a persistent session on the private broker. After a
    broker restart the test restarts it at once instead of waiting out its reconnect backoff;
    the session keeps what the broker queued meanwhile."""

    def __init__(self, database_url: str, broker: PrivateBroker, client_id: str) -> None:
        self.settings = IngestSettings(
            database_url=database_url,
            mqtt=MqttSettings.from_url(broker.url),
            client_id=client_id,
        )
        self.service: IngestService | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.service = IngestService(self.settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.service.run, args=(self._stop,))
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(30)
            self._thread = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def ingest(database_url: str, broker: PrivateBroker) -> Iterator[IngestRunner]:
    runner = IngestRunner(database_url, broker, "outage-ingest")
    runner.start()
    # The broker must know the ingest's session before a test stops it, or what the agent
    # publishes right after the restart has no subscriber to be queued for.
    assert runner.service is not None
    wait_until(runner.service._connected.is_set, 30, "the ingest to connect")
    time.sleep(0.2)  # its SUBSCRIBE follows the CONNACK within milliseconds
    yield runner
    runner.stop()


@dataclass
class TimedTruth:
    """What the box served, with the wall-clock moment it wrote the answer."""

    records: list[tuple[float, TruthRecord]] = field(default_factory=list)

    def add(self, record: TruthRecord) -> None:
        self.records.append((time.monotonic(), record))

    @property
    def frames(self) -> list[bytes]:
        return [record.served.frame for _, record in self.records]


def box_switched_off(agent: Agent) -> None:
    """Wait until a poll that began after the box was switched off has failed: then the poll
    under way when it went off has ended too, and the agent makes no more readings."""
    failed = agent.box.counters.failed
    wait_until(lambda: agent.box.counters.failed >= failed + 2, 10, "polls to fail")


def account_for_every_answer(
    agent: Agent, truth: TimedTruth, discards: list[Discard], vehicle: SimVehicle
) -> Accounting:
    """Every answer the box served is a reading of the agent, one of its discards, or was still
    on the line when the box went off (at most one per request the agent had no answer for)."""
    accounting = account(
        truth.frames, discards, agent.box.counters.ok, vehicle.box.identity_answer()
    )
    assert len(accounting.taken) == agent.readings
    read = len(accounting.taken) + len(accounting.discarded)
    assert len(accounting.unread) <= agent.box.counters.requests - read, accounting
    return accounting


class OnceStopped(SimVehicle):
    """firmware_sim's PseudoTerminal.close closes its descriptors again on a second call, which
    by then may belong to a socket of the ingest: stop each simulated vehicle exactly once."""

    stopped = False

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            super().stop()


def sim_vehicle(name: str, speed: float, truth: TimedTruth, seed: int) -> SimVehicle:
    clock = SimClock(datetime.now(UTC) - timedelta(hours=12), speed=speed)
    drive = CruiseDrive(SHUANGJING_LOOP, clock.start, speed_mps=7.0)
    field_ = PollutionField(SHUANGJING_SOURCES, seed=seed)
    vehicle = OnceStopped(name, PROFILE, drive, clock, field_, seed=seed, on_truth=truth.add)
    vehicle.start()
    return vehicle


def value_key(values: dict[str, float | None]) -> tuple[tuple[str, float | None], ...]:
    return tuple(sorted((k, None if v is None else round(v, 4)) for k, v in values.items()))


def stored_rows(database_url: str, vehicle: str) -> list[tuple[int, tuple[object, ...]]]:
    channels = sorted(PROFILE.decode(tuple(PROFILE.encode({}))).values)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT seq, {', '.join(channels)} FROM reading WHERE vehicle = %s ORDER BY seq",  # type: ignore[arg-type]
            (vehicle,),
        ).fetchall()
    return [
        (
            int(row[0]),
            tuple(
                (c, None if v is None else round(float(v), 4))
                for c, v in zip(channels, row[1:], strict=True)
            ),
        )
        for row in rows
    ]


def outbox_last_seq(outbox: Path) -> int:
    with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=5) as db:
        return int(db.execute("SELECT value FROM counter WHERE name = 'last_seq'").fetchone()[0])


def pending(outbox: Path) -> int:
    with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=5) as db:
        return int(db.execute("SELECT count(*) FROM pending").fetchone()[0])


# -- SIGKILL ------------------------------------------------------------------------------------

KILLS = 24
KILL_SPEED = 100.0  # a reading every 0.1 s of wall time


def discarded_bytes(log: Path) -> list[bytes]:
    """What each agent process discarded from the box, from its debug log (edge.box logs every
    discard with its bytes): one run of bytes per process, in the order read."""
    runs: list[bytearray] = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "envpatrol.edge: vehicle " in line and " polling " in line:
            runs.append(bytearray())  # a new process has started
        elif "envpatrol.edge.box: discarded " in line and runs:
            try:
                runs[-1] += bytes.fromhex(line.rsplit(": ", 1)[1])
            except ValueError:  # a line cut short by the kill: its answer counts as cut
                continue
    return [bytes(run) for run in runs]


def answers_cut(truth: TimedTruth, accounted: list[bool], cuts: list[float]) -> list[int]:
    """The answers neither stored nor discarded that no cut explains.

    A process reads the line in order and reports each answer it read as a reading (once in the
    outbox) or a discard, so an answer is unaccounted only if it was still unread, or read and
    not yet stored, when its process died or the box went off (`cuts`). Then the answer before
    it that is accounted for was served before that cut, and the next one after it (by the next
    process) after the cut. Returns the unaccounted answers no cut explains.
    """
    times = [t for t, _ in truth.records]
    unexplained = []
    for i, ok in enumerate(accounted):
        if ok:
            continue
        before = max((j for j in range(i) if accounted[j]), default=None)
        after = min((j for j in range(i + 1, len(times)) if accounted[j]), default=None)
        previous = times[before] if before is not None else float("-inf")
        following = times[after] if after is not None else float("inf")
        if not any(previous <= cut < following for cut in cuts):
            unexplained.append(i)
    return unexplained


def describe_answers(
    truth: TimedTruth, accounted: list[bool], cuts: list[float], unexplained: list[int]
) -> str:
    """The unaccounted answers and how near a cut each was: what a failure needs told apart."""
    lines = [f"answers {len(truth.records)}, accounted {sum(accounted)}, cuts {len(cuts)}"]
    for i, (moment, _) in enumerate(truth.records):
        if accounted[i]:
            continue
        nearest = min((moment - k for k in cuts), key=abs, default=float("nan"))
        gap = moment - truth.records[i - 1][0] if i else float("nan")
        lines.append(
            f"  answer {i}{' (no cut explains it)' if i in unexplained else ''}:"
            f" {gap:.2f} s after the previous answer, nearest cut {nearest:+.2f} s"
        )
    return "\n".join(lines[:40])


def warnings_in(log: Path, keep: int = 20) -> str:
    """The agent's last warnings, without those of its ports closing when the box is switched
    off at the end (timeouts, short frames and CRC errors are what matter here)."""
    try:
        lines = [
            line
            for line in log.read_text().splitlines()
            if "WARNING" in line and "/dev/pts" not in line and "port:" not in line
        ]
    except OSError:
        return "(no log)"
    return "\n".join(lines[-keep:])


def agent_config(tmp_path: Path, vehicle: SimVehicle, broker: PrivateBroker, speed: float) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""
vehicle = "{vehicle.name}"
poll_interval_s = 10.0
time_scale = {speed}
health_interval_s = 60.0
[box]
port = "{vehicle.box_path}"
[gps]
port = "{vehicle.gps_path}"
[mqtt]
url = "{broker.url}"
reconnect_min_s = 0.05
reconnect_max_s = 0.5
[outbox]
path = "{tmp_path / "outbox.sqlite3"}"
""",
        encoding="utf-8",
    )
    return path


def start_agent(config: Path, log: Path, *, verbose: bool = False) -> subprocess.Popen[bytes]:
    """The agent as its own process; `verbose` logs what its box client discards."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge.cli",
                "edge",
                *(["--verbose"] if verbose else []),
                "--config",
                str(config),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_sigkill_at_random_moments_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, broker: PrivateBroker, ingest: IngestRunner, database_url: str
) -> None:
    truth = TimedTruth()
    vehicle = sim_vehicle("kill-01", KILL_SPEED, truth, seed=11)
    config = agent_config(tmp_path, vehicle, broker, KILL_SPEED)
    log = tmp_path / "agent.log"
    rng = random.Random(20261121)
    kills: list[float] = []
    broker_down = 0
    agent = start_agent(config, log, verbose=True)
    try:
        for i in range(KILLS):
            time.sleep(rng.uniform(0.4, 1.6))  # random moments of the agent's life
            assert agent.poll() is None, log.read_text()[-3000:]
            agent.send_signal(signal.SIGKILL)
            kills.append(time.monotonic())
            agent.wait(10)
            if i % 8 == 2:
                broker.stop()  # the next few kills happen with the broker down
                broker_down += 1
            elif i % 8 == 5:
                broker.start()
                ingest.restart()
            agent = start_agent(config, log, verbose=True)
        if broker.process is None:
            broker.start()
            ingest.restart()
        switched_off = time.monotonic()
        vehicle.stop()  # the box is switched off: no new readings, the agent keeps running
        outbox = tmp_path / "outbox.sqlite3"
        wait_until(lambda: pending(outbox) == 0, 60, "the outbox to drain")
        # Every durable reading was acknowledged by the broker: the ingest stores them all.
        durable = outbox_last_seq(outbox)
        try:
            wait_until(
                lambda: len(stored_rows(database_url, "kill-01")) >= durable,
                60,
                "every durable reading",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nagent log, last warnings:\n{warnings_in(log)}") from None
        time.sleep(1.0)  # let stragglers and any duplicate arrive before counting
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(20)
        vehicle.stop()

    rows = stored_rows(database_url, "kill-01")
    seqs = [seq for seq, _ in rows]
    stored_keys = [key for _, key in rows]
    by_key = set(stored_keys)
    # The answers each process read and discarded (late answers, after a kill cut its
    # exchange short), found byte for byte in what the processes logged.
    runs = discarded_bytes(log)
    discarded = [any(frame in run for run in runs) for frame in truth.frames]
    stored = [value_key(record.served.values) in by_key for _, record in truth.records]
    accounted = [a or b for a, b in zip(stored, discarded, strict=True)]
    cuts = [*kills, switched_off]
    unexplained = answers_cut(truth, accounted, cuts)
    unmatched = [
        key
        for key in stored_keys
        if key not in {value_key(r.served.values) for _, r in truth.records}
    ]
    REPORT.update(
        kills=len(kills),
        broker_outages=broker_down,
        served=len(truth.records),
        stored=len(rows),
        discarded=sum(discarded),
        lost=len(unexplained),
        duplicated=len(rows) - len(set(stored_keys)),
        answers_cut=len(accounted) - sum(accounted),
        durable=durable,
    )
    print(f"\nSIGKILL: {REPORT}")
    assert len(seqs) == len(set(seqs)), "a sequence number stored twice"
    assert len(stored_keys) == len(by_key), "a reading stored twice"
    # Sequence numbers are assigned in the transaction that makes a reading durable, so a gap
    # among the stored ones would be a reading lost after that.
    assert seqs == list(range(1, durable + 1)), "a durable reading is missing"
    assert not unmatched, "stored readings the box never served"
    assert not any(a and b for a, b in zip(stored, discarded, strict=True)), "stored and discarded"
    assert unexplained == [], describe_answers(truth, accounted, cuts, unexplained)


# -- long outage --------------------------------------------------------------------------------

OUTAGE_SPEED = 1200.0
OUTAGE_SIM_HOURS = 2.5


def test_a_long_outage_drains_completely_after_the_broker_returns(
    tmp_path: Path, broker: PrivateBroker, ingest: IngestRunner, database_url: str
) -> None:
    truth = TimedTruth()
    vehicle = sim_vehicle("outage-01", OUTAGE_SPEED, truth, seed=12)
    broker.stop()
    settings = EdgeSettings(
        vehicle="outage-01",
        mqtt=MqttSettings.from_url(broker.url),
        box=BoxSettings(port=vehicle.box_path),
        gps=GpsSettings(port=vehicle.gps_path),
        outbox_path=str(tmp_path / "outbox.sqlite3"),
        time_scale=OUTAGE_SPEED,
        publish=PublishSettings(reconnect_min_s=0.05, reconnect_max_s=0.2),
    )
    discards: list[Discard] = []
    agent = Agent(settings, on_discard=discards.append)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    try:
        time.sleep(OUTAGE_SIM_HOURS * 3600 / OUTAGE_SPEED)  # the outage itself, simulated hours
        vehicle.stop()
        box_switched_off(agent)
        backlog = agent.outbox.depth()
        # Every reading is in the outbox, and every answer the box gave is one of them, one the
        # agent discarded, or one still on the line as the box went off.
        assert backlog == agent.readings
        account_for_every_answer(agent, truth, discards, vehicle)
        restored = time.monotonic()
        broker.start()
        ingest.restart()
        wait_until(lambda: agent.outbox.depth() == 0, 60, "the backlog to drain")
        drained = time.monotonic() - restored
        ingest_restarts = 0
        try:
            wait_until(lambda: len(stored_rows(database_url, "outage-01")) == backlog, 30, "ingest")
        except AssertionError:
            # Seen rarely on a loaded machine: the restarted ingest receives nothing of its
            # queued session. The readings are the broker's by now (it acknowledged them), so
            # this is outside the agent; a second restart delivers them. Counted in the report.
            ingest_restarts = 1
            ingest.restart()
            wait_until(lambda: len(stored_rows(database_url, "outage-01")) == backlog, 30, "ingest")
        stored = time.monotonic() - restored
    finally:
        stop.set()
        thread.join(30)
        vehicle.stop()
    rows = stored_rows(database_url, "outage-01")
    assert [seq for seq, _ in rows] == list(range(1, backlog + 1))
    assert agent.publisher.counters.too_large == 0
    REPORT.update(
        outage_sim_hours=OUTAGE_SIM_HOURS,
        backlog=backlog,
        drain_s=round(drained, 2),
        drain_rate_per_s=round(backlog / drained),
        stored_s=round(stored, 2),
        extra_ingest_restarts=ingest_restarts,
    )
    print(f"\noutage: {REPORT}")


# -- message size -------------------------------------------------------------------------------


def test_an_oversized_reading_is_set_aside_and_the_rest_fits_the_brokers_limit(
    tmp_path: Path, database_url: str
) -> None:
    # The broker announces a Maximum Packet Size (MQTT 5) and refuses bigger publishes;
    # the agent is configured for more than that.
    broker = PrivateBroker(tmp_path / "broker", extra=["max_packet_size 12000"])
    broker.start()
    ingest = IngestRunner(database_url, broker, "size-ingest")
    ingest.start()
    truth = TimedTruth()
    vehicle = sim_vehicle("size-01", 600.0, truth, seed=13)
    outbox_path = tmp_path / "outbox.sqlite3"
    # A reading no message can carry, already waiting in the outbox (as after a bad upgrade).
    seeded = Outbox(outbox_path)
    giant = seeded.store(time.time(), lambda s: b'{"seq":%d,"pad":"%s"}' % (s, b"x" * 20000))
    seeded.close()
    settings = EdgeSettings(
        vehicle="size-01",
        mqtt=MqttSettings.from_url(broker.url),
        box=BoxSettings(port=vehicle.box_path),
        gps=GpsSettings(port=vehicle.gps_path),
        outbox_path=str(outbox_path),
        time_scale=600.0,
        publish=PublishSettings(max_payload_bytes=65536, batch_readings=200),
    )
    discards: list[Discard] = []
    agent = Agent(settings, on_discard=discards.append)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    try:
        broker.stop()
        thread.start()
        time.sleep(3.0)  # a backlog of 50-reading batches far above 12000 bytes builds up
        broker.start()
        ingest.restart()
        time.sleep(1.0)
        vehicle.stop()
        box_switched_off(agent)
        account_for_every_answer(agent, truth, discards, vehicle)
        wait_until(lambda: agent.outbox.depth() == 0, 30, "the outbox to drain")
        made = agent.readings
        wait_until(lambda: len(stored_rows(database_url, "size-01")) >= made, 30, "the ingest")
        status = agent.status("online")
    finally:
        stop.set()
        thread.join(30)
        vehicle.stop()
        ingest.stop()
        broker.stop()
    again = Outbox(outbox_path)
    try:
        assert [(seq, reason) for seq, reason, _ in again.rejected()] == [(giant, "too_large")]
        assert again.stats().rejected == 1
    finally:
        again.close()
    counters = agent.publisher.counters
    assert counters.too_large == 1
    assert counters.connects == 1  # no disconnect-reconnect loop over an oversized message
    assert status["outbox_rejected"] == 1


# -- refusals -----------------------------------------------------------------------------------


def test_not_authorized_readings_are_counted_kept_and_sent_once_the_acl_is_fixed(
    tmp_path: Path,
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic read #\n", encoding="utf-8")  # anonymous vehicles may not publish
    broker = PrivateBroker(tmp_path / "broker", extra=[f"acl_file {acl}"])
    broker.start()
    truth = TimedTruth()
    vehicle = sim_vehicle("acl-01", 200.0, truth, seed=14)
    settings = EdgeSettings(
        vehicle="acl-01",
        mqtt=MqttSettings.from_url(broker.url),
        box=BoxSettings(port=vehicle.box_path),
        gps=GpsSettings(port=vehicle.gps_path),
        outbox_path=str(tmp_path / "outbox.sqlite3"),
        time_scale=200.0,
        publish=PublishSettings(reconnect_min_s=0.05, reconnect_max_s=0.2),
    )
    agent = Agent(settings)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    counters = agent.publisher.counters
    try:
        wait_until(lambda: counters.rejected >= 3, 20, "the broker to refuse readings")
        assert counters.reasons["Not authorized"] == counters.rejected
        assert counters.acked_readings == 0
        assert agent.outbox.depth() == agent.readings  # refused readings are kept
        assert "Not authorized" in (agent.status("online")["last_error"] or "")
        # The operator fixes the ACL; after the broker's restart everything goes through.
        acl.write_text("topic readwrite #\n", encoding="utf-8")
        broker.stop()
        broker.start()
        vehicle.stop()
        wait_until(lambda: agent.outbox.depth() == 0, 30, "the kept readings to be delivered")
        assert counters.acked_readings == agent.readings
    finally:
        stop.set()
        thread.join(30)
        vehicle.stop()
        broker.stop()


# -- status, last will and health --------------------------------------------------------------


def test_retained_status_last_will_and_health(tmp_path: Path, broker: PrivateBroker) -> None:
    truth = TimedTruth()
    vehicle = sim_vehicle("status-01", 100.0, truth, seed=15)
    config = agent_config(tmp_path, vehicle, broker, 100.0)
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "health_interval_s = 60.0", "health_interval_s = 30.0"
        ),
        encoding="utf-8",
    )
    messages: queue.Queue[tuple[str, bool, dict[str, object]]] = queue.Queue()
    probe = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    probe.on_message = lambda _c, _u, m: messages.put((m.topic, m.retain, json.loads(m.payload)))
    probe.connect("127.0.0.1", broker.port)
    probe.subscribe("envpatrol/v1/status-01/+", qos=1)
    probe.loop_start()

    def next_on(suffix: str, timeout: float = 15.0) -> tuple[bool, dict[str, object]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                topic, retain, doc = messages.get(timeout=0.2)
            except queue.Empty:
                continue
            if topic.endswith(suffix):
                return retain, doc
        raise AssertionError(f"no {suffix} message within {timeout}s")

    agent = start_agent(config, tmp_path / "agent.log")
    try:
        _, online = next_on("/status")
        assert online["state"] == "online"
        assert str(online["software"]).startswith("envpatrol-edge ")
        assert online["profile"] == "default-multi"
        for key in ("outbox_depth", "outbox_evicted", "outbox_rejected", "last_error"):
            assert key in online
        _, health = next_on("/health")
        for key in ("poll_success_rate", "crc_errors", "clock_skew_s", "outbox_depth", "flags"):
            assert key in health
        gps = health["gps"]
        assert isinstance(gps, dict)
        assert "fix_quality" in gps
        assert "hdop" in gps
        # Killed: the broker publishes the last will, retained, as soon as the socket dies.
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        while True:
            _, status = next_on("/status")
            if status["state"] == "offline":
                break
        assert status["vehicle"] == "status-01"
        # A late subscriber sees the retained state.
        late: queue.Queue[dict[str, object]] = queue.Queue()
        other = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        other.on_message = lambda _c, _u, m: late.put(json.loads(m.payload))
        other.connect("127.0.0.1", broker.port)
        other.subscribe("envpatrol/v1/status-01/status", qos=1)
        other.loop_start()
        try:
            assert late.get(timeout=10)["state"] == "offline"
        finally:
            other.loop_stop()
            other.disconnect()
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
        probe.loop_stop()
        probe.disconnect()
        vehicle.stop()
