"""Ingest workers on several hosts, and one host lost in the middle of the stream.

Three `envpatrol ingest` workers, each in a network namespace of its own (`tests.integration.
hosts`), share the readings through an MQTT 5 shared subscription of a private Mosquitto; the
database is a private PostgreSQL cluster on the root namespace's bridge address. While a fleet
publishes, one host is lost: its link cut (the broker is not told) and its processes SIGKILLed.
Mosquitto goes on dealing the lost worker its share, into its session, until the keep-alive
expires and its last will says it is offline; its adopter then drains that session and has the
broker remove it. Every reading the broker acknowledged must be stored, once.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.workers import parse_status, worker_of, workers_filter
from store.migrate import migrate
from tests.integration.hosts import (
    Host,
    Network,
    PrivateCluster,
    cluster_unavailable,
    netns_unavailable,
)
from tests.integration.ingest_fixtures import (
    REPO,
    PrivateBroker,
    Publisher,
    fleet_messages,
    needs_mosquitto,
    recent_start,
    wait_until_subscribed,
)
from tests.integration.test_ingest_faults import stored_count, tally
from tests.services import wait_until

pytestmark = [pytest.mark.integration, needs_mosquitto]

KEEPALIVE_S = 5  # the shortest the settings allow: Mosquitto gives up on a silent link at 1.5x
GRACE_S = 1.0  # adopt_after_s
DB_KEEPALIVE_S = 3  # the lost worker's open transaction rolled back within about 6 s
METRICS_PORT = 9108
WORKERS = 3
SHARE_GROUP = "ingest"


@dataclass
class Lab:
    network: Network
    cluster: PrivateCluster
    broker: PrivateBroker
    hosts: list[Host]
    database_url: str  # from the root namespace
    logs: Path
    workers: dict[str, Host] = field(default_factory=dict)

    def worker_config(self, name: str, host: Host) -> Path:
        path = self.logs / f"{name}.toml"
        path.write_text(
            "\n".join(
                [
                    "[mqtt]",
                    f'url = "mqtt://{self.network.address}:{self.broker.port}"',
                    f'client_id = "{name}"',
                    f"keepalive_s = {KEEPALIVE_S}",
                    "[database]",
                    f'url = "{self.cluster.url(self.network.address)}"',
                    'backend = "plain"',
                    "[ingest]",
                    f'share_group = "{SHARE_GROUP}"',
                    "batch_max_wait_s = 0.05",
                    f"db_keepalive_s = {DB_KEEPALIVE_S}",
                    f"adopt_after_s = {GRACE_S}",
                    f"metrics_port = {METRICS_PORT}",
                    f'metrics_host = "{host.address}"',
                    "",
                ]
            )
        )
        return path

    def start_worker(self, name: str, host: Host) -> None:
        self.workers[name] = host
        with (self.logs / f"{name}.log").open("ab") as log:
            host.popen(
                [sys.executable, "-m", "edge.cli", "ingest", "--config", str(self.worker_config(name, host))],
                log,
                cwd=REPO,
            )  # fmt: skip

    def log_of(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def metric(self, name: str, sample: str) -> float:
        """A sample (name and labels, as exposed) from the worker's /metrics; 0 if absent."""
        host = self.workers[name]
        url = f"http://{host.address}:{METRICS_PORT}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return float(line.split()[-1])
        return 0.0


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    reason = netns_unavailable() or cluster_unavailable()
    if reason:
        pytest.skip(reason)
    with Network() as network:
        hosts = [network.add_host() for _ in range(WORKERS)]
        with PrivateCluster([network.address], str(network.subnet)) as cluster:
            broker = PrivateBroker(tmp_path)
            # Loopback for the test's publishers, the bridge address for the hosts.
            broker.conf.write_text(
                broker.conf.read_text() + f"listener {broker.port} {network.address}\n"
            )
            broker.start()
            try:
                with psycopg.connect(cluster.url()) as conn:
                    migrate(conn, 10, backend="plain")
                yield Lab(network, cluster, broker, hosts, cluster.url(), tmp_path)
            finally:
                network.close()  # the workers first, then what they talk to
                broker.stop()


class StatusWatch:
    """Records when each worker's retained status changed, as the test sees it."""

    def __init__(self, broker_url_port: int) -> None:
        self.events: list[tuple[float, str, str, str]] = []  # (monotonic, worker, state, by)
        self._lock = threading.Lock()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="status-watch",
            protocol=paho.MQTTv5,
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(workers_filter("envpatrol"), 1)
        self.client.connect("127.0.0.1", broker_url_port, 30)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        worker = worker_of("envpatrol", message.topic)
        status = parse_status(worker, bytes(message.payload)) if worker else None
        if status is not None:
            with self._lock:
                self.events.append((time.monotonic(), status.worker, status.state, status.by))

    def state(self, worker: str) -> str:
        with self._lock:
            states = [s for _, w, s, _ in self.events if w == worker]
        return states[-1] if states else ""

    def first(self, worker: str, state: str) -> tuple[float, str] | None:
        with self._lock:
            return next(
                ((t, by) for t, w, s, by in self.events if w == worker and s == state), None
            )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_steadily(
    publisher: Publisher, messages: list[tuple[str, list[Any]]], per_second: float
) -> None:
    started = time.monotonic()
    for i, (vehicle, readings) in enumerate(messages):
        ahead = started + i / per_second - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)  # the fleet's pace, not a wait for a condition
        publisher.publish(vehicle, readings)


def test_a_worker_host_lost_mid_stream_loses_and_duplicates_nothing(lab: Lab) -> None:
    names = [f"ingest-{n}" for n in range(1, WORKERS + 1)]
    watch = StatusWatch(lab.broker.port)
    publisher = Publisher(lab.broker.url, "fleet-hosts-test")
    sender: threading.Thread | None = None
    try:
        for name, host in zip(names, lab.hosts, strict=True):
            lab.start_worker(name, host)
        wait_until(
            lambda: all(watch.state(n) == "online" for n in names), 60, "every worker online"
        )
        wait_until_subscribed(publisher, lab.database_url)
        messages = fleet_messages(vehicles=20, per_vehicle=150, start=recent_start())  # 3,000
        sender = threading.Thread(target=publish_steadily, args=(publisher, messages, 250.0))
        sender.start()
        wait_until(lambda: stored_count(lab.database_url) >= 600, 30, "the stream under way")

        # ingest-1's host is lost: link first, so that nothing the dying processes send out
        # (FIN, RST) reaches the broker, which then learns of it only from the keep-alive.
        lost, survivors = names[0], names[1:]
        lost_host = lab.workers[lost]
        lost_host.cut()
        cut_at = time.monotonic()
        assert lost_host.kill_all() >= 1

        wait_until(lambda: watch.first(lost, "offline") is not None, 30, "the lost worker's will")
        wait_until(lambda: watch.first(lost, "adopted") is not None, 60, "its adoption")
        sender.join(timeout=60)
        wait_until(lambda: publisher.outstanding() == 0, 60, "every PUBACK")
        wait_until(
            lambda: stored_count(lab.database_url) >= len(messages), 60, "every reading stored"
        )
        recovered_at = time.monotonic()

        # The broker no longer deals the lost worker a share: with its host still dark, a
        # further tranche is stored whole and promptly.
        tail = fleet_messages(vehicles=20, per_vehicle=160, start=recent_start())[3000:]
        for vehicle, readings in tail:
            publisher.publish(vehicle, readings)
        expected = len(messages) + len(tail)
        wait_until(lambda: publisher.outstanding() == 0, 30, "every PUBACK of the tail")
        tail_sent = time.monotonic()
        wait_until(
            lambda: stored_count(lab.database_url) >= expected, 10, "the tail stored, no share held"
        )
        tail_stored = time.monotonic() - tail_sent

        # The lost worker comes back: its session is gone, it starts a new one and rejoins.
        lost_host.restore()
        lab.start_worker(lost, lost_host)
        wait_until(lambda: "session present: False" in lab.log_of(lost), 60, "its return")
        wait_until(lambda: watch.state(lost) == "online", 30, "it online again")

        absorbed = sum(
            lab.metric(n, 'envpatrol_ingest_readings_total{outcome="duplicate"}') for n in survivors
        )
    finally:
        if sender is not None:
            sender.join(timeout=60)
        publisher.close()
        watch.close()
    counts = tally(lab.database_url, publisher.acknowledged)
    offline = watch.first(lost, "offline")
    adopted = watch.first(lost, "adopted")
    assert offline is not None
    assert adopted is not None
    held = re.search(rf"adopted {lost}: (\d+) messages", lab.log_of(adopted[1]))
    assert held is not None
    figures = {
        **counts,
        "detected_s": round(offline[0] - cut_at, 1),
        "adopted_s": round(adopted[0] - cut_at, 1),
        "adopted_by": adopted[1],
        "recovered_s": round(recovered_at - cut_at, 1),
        "adopted_messages": int(held[1]),
        "redeliveries_absorbed": int(absorbed),
        "tail_stored_s": round(tail_stored, 2),
    }
    print(f"\nhost lost mid-stream: {figures}")
    assert counts["acknowledged"] == expected
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
    assert counts["unexpected"] == 0
    assert adopted[1] == "ingest-2"  # the first online worker after ingest-1
    # Mosquitto went on dealing the lost worker its share until its adopter drained it.
    assert int(held[1]) > 0
    # The broker learns of a cut link only from the keep-alive (1.5 x 5 s), not before.
    assert offline[0] - cut_at >= KEEPALIVE_S


def test_a_lost_hosts_open_transaction_stops_blocking_the_others(lab: Lab) -> None:
    """A worker's host vanishes in the middle of a transaction: nothing tells the database,
    which holds the transaction's locks until its TCP keep-alive gives up. Two writers on two
    hosts each insert a key and leave the transaction open (as a batch between statements);
    both hosts are lost; the other workers' inserts of the same keys (a redelivery) wait. With
    the ingest's `db_keepalive_s` the wait ends within about twice that; with the server's
    defaults it is still there when the test gives up."""
    with psycopg.connect(lab.database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE batch_key (key int PRIMARY KEY)")
    url = lab.cluster.url(lab.network.address)
    keepalive_s = 2
    writers = {1: 0, 2: keepalive_s}  # key: the writer's db_keepalive_s (0: server defaults)
    for (key, keepalive), host in zip(writers.items(), lab.hosts, strict=False):
        script = (
            "import time\n"
            "from ingest.service import connect_database\n"
            f"conn = connect_database({url!r}, 10, {keepalive})\n"
            f"conn.execute('INSERT INTO batch_key VALUES ({key})')\n"
            "print('open', flush=True)\n"
            "time.sleep(600)\n"
        )
        with (lab.logs / f"writer-{key}.log").open("ab") as log:
            host.popen([sys.executable, "-c", script], log, cwd=REPO)
    for key in writers:
        wait_until(
            lambda k=key: "open" in (lab.logs / f"writer-{k}.log").read_text(),  # type: ignore[misc]
            30,
            f"writer {key}'s transaction open",
        )
    for host in lab.hosts[:2]:
        host.cut()
        host.kill_all()
    cut_at = time.monotonic()
    waited: dict[int, float | str] = {}

    def redeliver(key: int) -> None:
        with psycopg.connect(lab.database_url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '15s'")
            try:
                conn.execute(f"INSERT INTO batch_key VALUES ({key}) ON CONFLICT DO NOTHING")
                waited[key] = time.monotonic() - cut_at
            except psycopg.errors.LockNotAvailable:
                waited[key] = "still blocked after 15 s"

    threads = [threading.Thread(target=redeliver, args=(key,)) for key in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    print(f"\nlost host's transaction: {waited}")
    assert waited[1] == "still blocked after 15 s"
    released = waited[2]
    assert isinstance(released, float)
    assert released < 4 * keepalive_s + 5  # 2 x keepalive nominal, with room for the load
