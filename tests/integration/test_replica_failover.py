"""A database that survives a lost machine: a primary and a streaming standby of their own
(`pg_cluster`), the real ingest as a process behind a private Mosquitto, and the API reading
from the standby.

- libpq multi-host URLs, through psycopg, find the primary (`read-write`) and prefer the
  standby (`prefer-standby`), before and after a promotion.
- The API reads from the replica, reports its lag, and reads from the primary while the lag is
  beyond its bound or the replica is gone.
- Drill (a): the primary stopped while readings flow; the ingest holds them unacknowledged, the
  API keeps serving from the replica; the primary back: every acknowledged reading stored once.
- Drill (b): the primary lost (immediate stop, nothing flushed for it) and the standby
  promoted; the ingest and the API's writes follow their multi-host URLs to it; nothing lost.

`-s` prints the figures (lag, time to recover) quoted in docs/reliability.md.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api import keys
from api.app import create_app
from api.settings import ApiSettings
from demo.embedded import free_port
from tests.integration.ingest_fixtures import (
    IngestProcess,
    PrivateBroker,
    Publisher,
    fleet_messages,
    needs_mosquitto,
    private_broker,
    recent_start,
    wait_until_subscribed,
    write_ingest_config,
)
from tests.integration.pg_cluster import (
    PgServer,
    ReplicatedPair,
    needs_pg_binaries,
    primary_template,
    replicated_pair,
)
from tests.services import wait_until

pytestmark = [pytest.mark.integration, needs_pg_binaries]

__all__ = ["private_broker"]  # a fixture the drills use


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    with primary_template() as data:
        yield data


def _port_of(url: str) -> int:
    with psycopg.connect(url, connect_timeout=3) as conn:
        return int(conn.info.port)


def test_multi_host_urls_find_the_primary_and_prefer_the_standby(template: Path) -> None:
    with replicated_pair(template) as pair:
        primary, standby = pair.primary, pair.standby
        # listed standby first: read-write still finds the primary
        assert (
            _port_of(pair.multi_host_url(standby, primary, target_session_attrs="read-write"))
            == primary.port
        )
        # listed primary first: prefer-standby still finds the standby
        prefer = pair.multi_host_url(primary, standby, target_session_attrs="prefer-standby")
        assert _port_of(prefer) == standby.port
        pair.primary.stop("immediate")
        writable = pair.multi_host_url(primary, standby, target_session_attrs="read-write")
        with pytest.raises(psycopg.OperationalError, match="read-only"):
            _port_of(writable)  # no primary: the standby is refused, not written to
        assert _port_of(prefer) == standby.port
        pair.standby.promote()
        assert _port_of(writable) == standby.port
        # prefer-standby settles for a primary when there is no standby
        assert _port_of(prefer) == standby.port
        # read-write is judged by default_transaction_read_only: a read-only session (as the
        # API's reads are) never matches it, not even on the primary; "primary" does
        readonly = "-c default_transaction_read_only=on"
        with pytest.raises(psycopg.OperationalError, match="read-only"):
            psycopg.connect(writable, connect_timeout=3, options=readonly).close()
        primary_url = pair.multi_host_url(primary, standby, target_session_attrs="primary")
        with psycopg.connect(primary_url, connect_timeout=3, options=readonly) as conn:
            assert conn.info.port == standby.port


def _api(pair: ReplicatedPair, **settings: Any) -> TestClient:
    chosen: dict[str, Any] = {
        "database_url": pair.primary.url(),
        "read_database_url": pair.standby.url(),
        "connect_timeout_s": 2,
        **settings,
    }
    return TestClient(create_app(ApiSettings(**chosen)))


def test_the_api_reads_from_the_replica_and_from_the_primary_while_it_lags(
    template: Path,
) -> None:
    with replicated_pair(template) as pair, _api(pair, max_replica_lag_s=1.0) as client:
        health = client.get("/healthz")
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["read_from"] == "replica", body
        assert body["replica"] == "ok", body
        assert body["primary"] == "ok"
        assert body["replica_receiving"] is True
        assert body["replica_lag_s"] < 1.0
        served = client.get("/v1/vehicles")
        assert served.status_code == 200
        assert served.headers["x-read-from"] == "replica"
        assert float(served.headers["x-replica-lag"]) < 1.0

        # The lag is timed from the last transaction the standby replayed: one it has, one
        # held back by pausing its replay.
        insert = (
            "INSERT INTO dead_letter (topic, reason, detail, payload) VALUES ('t', 'r', 'd', '')"
        )
        with psycopg.connect(pair.primary.url(), autocommit=True) as primary:
            primary.execute(insert)
        pair.wait_replayed()
        with psycopg.connect(pair.standby.url(), autocommit=True) as standby:
            standby.execute("SELECT pg_wal_replay_pause()")
            with psycopg.connect(pair.primary.url(), autocommit=True) as primary:
                primary.execute(insert)

            def reads_primary() -> bool:
                return bool(client.get("/v1/vehicles").headers["x-read-from"] == "primary")

            wait_until(reads_primary, 15, "reads to move to the primary")
            lagging = client.get("/healthz").json()
            assert lagging["status"] == "degraded"
            assert lagging["replica"] == "lagging"
            assert lagging["replica_lag_s"] > 1.0
            assert lagging["read_from"] == "primary"
            standby.execute("SELECT pg_wal_replay_resume()")

            def reads_replica() -> bool:
                return bool(client.get("/v1/vehicles").headers["x-read-from"] == "replica")

            wait_until(reads_replica, 15, "reads to come back to the replica")

        pair.standby.stop()
        gone = client.get("/v1/vehicles")
        assert gone.status_code == 200
        assert gone.headers["x-read-from"] == "primary"
        health = client.get("/healthz").json()
        assert health["status"] == "degraded"
        assert health["replica"] == "unavailable"


# -- the drills --------------------------------------------------------------------------


VEHICLES = 10
PER_SECOND = 50  # messages, one reading each


class Flow:
    """Publishes one-reading messages at a steady pace from a thread until stopped."""

    def __init__(self, publisher: Publisher, messages: list[tuple[str, Any]]) -> None:
        self.publisher = publisher
        self.messages = messages
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="flow", daemon=True)

    def _run(self) -> None:
        began = time.monotonic()
        for n, (vehicle, readings) in enumerate(self.messages):
            if self._stop.is_set():
                return
            delay = began + n / PER_SECOND - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.publisher.publish(vehicle, readings)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.thread.ident is not None:
            self.thread.join(timeout=10)


def _stored(url: str) -> tuple[set[tuple[str, int]], int]:
    """The (vehicle, seq) of every fleet reading stored, and how many rows hold them."""
    with psycopg.connect(url, connect_timeout=3) as conn:
        rows = conn.execute(
            "SELECT vehicle, seq FROM reading WHERE vehicle LIKE 'car-%%'"
        ).fetchall()
    return {(v, s) for v, s in rows}, len(rows)


def _count(url: str) -> int:
    try:
        return len(_stored(url)[0])
    except psycopg.OperationalError:
        return -1


def _committed_messages(metrics_port: int) -> float:
    """What the ingest has committed (and so acknowledged), from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("envpatrol_ingest_messages_total{")
    )


class Drill:
    """A pair, a broker, the ingest writing to `ingest_url`, readings flowing."""

    def __init__(
        self, pair: ReplicatedPair, broker: PrivateBroker, tmp: Path, ingest_url: str
    ) -> None:
        self.pair = pair
        self.metrics_port = free_port()
        config = write_ingest_config(
            tmp / "ingest.toml",
            broker.url,
            ingest_url,
            "ingest-failover",
            metrics_port=self.metrics_port,
            db_timeout_s=5.0,
            batch_max_wait_s=0.2,
        )
        self.ingest = IngestProcess(config, tmp / "ingest.log")
        self.publisher = Publisher(broker.url, "fleet-failover")
        start = recent_start()
        self.flow = Flow(self.publisher, fleet_messages(VEHICLES, 2_000, start))

    def begin(self) -> None:
        self.ingest.start()
        wait_until_subscribed(self.publisher, self.pair.primary.url(), timeout=60)
        self.flow.start()
        wait_until(lambda: _count(self.pair.primary.url()) >= 200, 30, "readings to flow")

    def close(self) -> None:
        self.flow.stop()
        self.publisher.close()
        self.ingest.stop()

    def log(self) -> str:
        return self.ingest.log_path.read_text(errors="replace")[-3000:]

    def assert_alive(self) -> None:
        assert self.ingest.proc is not None
        assert self.ingest.proc.poll() is None, self.log()

    def settle(self, url: str, timeout: float) -> tuple[float, int, int]:
        """After the flow stops: waits until every acknowledged reading is stored at `url`;
        (seconds it took, readings acknowledged, rows stored)."""
        self.flow.stop()
        wait_until(lambda: self.publisher.outstanding() == 0, 30, "the broker's last PUBACKs")
        acknowledged = set(self.publisher.acknowledged)
        began = time.monotonic()
        wait_until(lambda: acknowledged <= _stored(url)[0], timeout, "every acknowledged reading")
        took = time.monotonic() - began
        keys_, rows = _stored(url)
        assert acknowledged <= keys_  # lost 0
        assert rows == len(keys_)  # duplicated 0
        return took, len(acknowledged), rows


def _replica_lag_samples(client: TestClient, primary_url: str, n: int) -> tuple[float, float]:
    """The largest lag the API measured on the replica and the largest replay lag the primary
    saw (pg_stat_replication.replay_lag: from its WAL flush to the standby's replay) over `n`
    samples 0.2 s apart, while readings flow."""
    api_lag = primary_lag = 0.0
    with psycopg.connect(primary_url, autocommit=True) as conn:
        for _ in range(n):
            body = client.get("/healthz").json()
            api_lag = max(api_lag, float(body["replica_lag_s"]))
            row = conn.execute(
                "SELECT coalesce(extract(epoch FROM replay_lag), 0)::float8"
                " FROM pg_stat_replication"
            ).fetchone()
            primary_lag = max(primary_lag, 0.0 if row is None else float(row[0]))
            time.sleep(0.2)
    return api_lag, primary_lag


@needs_mosquitto
def test_drill_primary_stopped_then_restarted(
    template: Path, private_broker: PrivateBroker, tmp_path: Path
) -> None:
    with replicated_pair(template, synchronous=True) as pair:
        ingest_url = pair.multi_host_url(
            pair.primary, pair.standby, target_session_attrs="read-write"
        )
        drill = Drill(pair, private_broker, tmp_path, ingest_url)
        try:
            with _api(pair, max_replica_lag_s=5.0) as client:
                drill.begin()
                api_lag, replay_lag = _replica_lag_samples(client, pair.primary.url(), 15)
                print(
                    f"\nreplica lag while readings flow: API measured at most {api_lag:.3f} s, "
                    f"pg_stat_replication.replay_lag at most {replay_lag * 1000:.1f} ms"
                )

                stopped = time.monotonic()
                pair.primary.stop("fast")
                committed = _committed_messages(drill.metrics_port)
                acked_before = len(drill.publisher.acknowledged)
                # The outage: the ingest holds, acknowledges nothing, and stays up; the
                # broker keeps taking the fleet's readings; the API serves from the replica.
                wait_until(
                    lambda: len(drill.publisher.acknowledged) >= acked_before + 5 * PER_SECOND,
                    30,
                    "the broker to keep taking readings",
                )
                served = client.get("/v1/vehicles")
                assert served.status_code == 200, served.text
                assert served.headers["x-read-from"] == "replica"
                assert len(served.json()["results"]) >= VEHICLES
                health = client.get("/healthz").json()
                assert health["primary"] == "unavailable"
                assert health["read_from"] == "replica"
                assert _committed_messages(drill.metrics_port) == committed
                drill.assert_alive()

                restarted = time.monotonic()
                pair.primary.start()
                before = _count(pair.primary.url())
                wait_until(
                    lambda: _count(pair.primary.url()) > before, 30, "the first commit after"
                )
                first_commit = time.monotonic() - restarted
                took, acknowledged, rows = drill.settle(pair.primary.url(), 60)
                drill.assert_alive()
                print(
                    f"drill (a): outage {restarted - stopped:.1f} s; first commit "
                    f"{first_commit:.2f} s after the restart; all {acknowledged} acknowledged "
                    f"readings stored {took:.2f} s after the flow stopped; rows {rows}; "
                    "lost 0, duplicated 0"
                )
        finally:
            drill.close()


def _promote_and_time(standby: PgServer) -> float:
    began = time.monotonic()
    standby.promote()
    return time.monotonic() - began


@needs_mosquitto
def test_drill_primary_lost_and_the_standby_promoted(
    template: Path, private_broker: PrivateBroker, tmp_path: Path
) -> None:
    with replicated_pair(template, synchronous=True) as pair:
        primary, standby = pair.primary, pair.standby
        writable = pair.multi_host_url(primary, standby, target_session_attrs="read-write")
        with psycopg.connect(primary.url(), autocommit=True) as conn:
            admin_key = keys.create(conn, "Officer Wang", "admin").key
        pair.wait_replayed()
        drill = Drill(pair, private_broker, tmp_path, writable)
        try:
            with _api(
                pair,
                admin_database_url=writable,
                read_database_url=pair.multi_host_url(
                    standby, primary, target_session_attrs="prefer-standby"
                ),
                database_url=pair.multi_host_url(primary, standby, target_session_attrs="primary"),
            ) as client:
                drill.begin()
                lost_at = time.monotonic()
                primary.stop("immediate")  # as if the machine were gone: nothing flushed
                acked_before = len(drill.publisher.acknowledged)
                wait_until(
                    lambda: len(drill.publisher.acknowledged) >= acked_before + 3 * PER_SECOND,
                    30,
                    "readings while the primary is gone",
                )
                drill.assert_alive()
                served = client.get("/v1/vehicles")
                assert served.status_code == 200, served.text
                assert served.headers["x-read-from"] == "replica"
                before = _count(standby.url())
                promote_s = _promote_and_time(standby)
                promoted = time.monotonic()
                wait_until(
                    lambda: _count(standby.url()) > before, 60, "the ingest on the new primary"
                )
                first_commit = time.monotonic() - promoted
                now = datetime.now(UTC)
                request = client.post(
                    "/v1/hotspot-runs",
                    headers={"X-API-Key": admin_key},
                    json={
                        "from": (now - timedelta(days=1)).isoformat(),
                        "to": now.isoformat(),
                    },
                )
                assert request.status_code == 202, request.text
                health = client.get("/healthz").json()
                assert health["replica"] == "promoted"
                assert health["primary"] == "ok"
                took, acknowledged, rows = drill.settle(standby.url(), 60)
                drill.assert_alive()
                print(
                    f"\ndrill (b): promote {promote_s:.2f} s; first commit on the new primary "
                    f"{first_commit:.2f} s after it; {promoted - lost_at:.1f} s from the loss to "
                    f"the promotion; all {acknowledged} acknowledged readings stored "
                    f"{took:.2f} s after the flow stopped; rows {rows}; lost 0, duplicated 0"
                )
        finally:
            drill.close()


@needs_mosquitto
def test_drill_synchronous_standby_stopped_then_restarted(
    template: Path, private_broker: PrivateBroker, tmp_path: Path
) -> None:
    """The price of synchronous commit: with the standby gone the primary's COMMITs wait, so
    the ingest holds as in a database outage; the standby back, everything lands once."""
    with replicated_pair(template, synchronous=True) as pair:
        drill = Drill(pair, private_broker, tmp_path, pair.primary.url())
        try:
            drill.begin()
            stopped = time.monotonic()
            pair.standby.stop("fast")
            # what was in flight may still commit; after that nothing does
            acked_before = len(drill.publisher.acknowledged)
            wait_until(
                lambda: len(drill.publisher.acknowledged) >= acked_before + 2 * PER_SECOND,
                30,
                "the broker to keep taking readings",
            )
            committed = _committed_messages(drill.metrics_port)
            wait_until(
                lambda: len(drill.publisher.acknowledged) >= acked_before + 5 * PER_SECOND,
                30,
                "more readings while the standby is gone",
            )
            assert _committed_messages(drill.metrics_port) == committed
            drill.assert_alive()
            restarted = time.monotonic()
            pair.standby.start()
            wait_until(
                lambda: _committed_messages(drill.metrics_port) > committed,
                60,
                "a commit once the standby is back",
            )
            first_commit = time.monotonic() - restarted
            took, acknowledged, rows = drill.settle(pair.primary.url(), 60)
            drill.assert_alive()
            print(
                f"\ndrill (standby): outage {restarted - stopped:.1f} s; first commit "
                f"{first_commit:.2f} s after the standby's restart; all {acknowledged} "
                f"acknowledged readings stored {took:.2f} s after the flow stopped; rows {rows}; "
                "lost 0, duplicated 0"
            )
        finally:
            drill.close()
