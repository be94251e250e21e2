"""Adoption of a lost worker's session on the shipped broker configuration.

The broker runs `deploy/mosquitto/mosquitto.conf` and `deploy/mosquitto/acl` (client ids bound
to usernames, one password per account), so an adoption must log in with the lost worker's
account, whose password the adopter reads from `peer_password_dir`; the statuses, last wills
and the drain marker must pass the shipped ACL. Worker 1 is `envpatrol ingest` in a process of
its own, SIGKILLed; worker 2 runs in the test.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from edge.mqtt import MqttSettings
from edge.wire import Reading
from ingest.service import IngestService
from ingest.settings import IngestSettings
from tests.integration.ingest_fixtures import (
    IngestProcess,
    Publisher,
    reading,
    recent_start,
    write_ingest_config,
)
from tests.integration.shipped_broker import ShippedBroker, needs_broker_tools, running
from tests.integration.test_ingest_faults import StartIngest, start_ingest, stored_count, tally
from tests.services import wait_until

pytestmark = [pytest.mark.integration, needs_broker_tools]
__all__ = ["start_ingest"]  # a fixture used by name below

FIRST, SECOND = "envpatrol-ingest-1", "envpatrol-ingest-2"
ACCOUNTS = (FIRST, SECOND, "patrol-01", "probe")


def first_worker(broker: ShippedBroker, database_url: str, tmp_path: Path) -> IngestProcess:
    config = write_ingest_config(
        tmp_path / "ingest-1.toml",
        broker.url(FIRST),
        database_url,
        FIRST,
        share_group="ingest",
        batch_max_wait_s=0.05,
        adopt_after_s=1.0,
    )
    return IngestProcess(config, tmp_path / "ingest-1.log")


def second_worker(broker: ShippedBroker, database_url: str, peers: Path) -> IngestSettings:
    return IngestSettings(
        database_url=database_url,
        mqtt=MqttSettings.from_url(broker.url(SECOND)),
        client_id=SECOND,
        share_group="ingest",
        batch_max_wait_s=0.05,
        adopt_after_s=1.0,
        peer_password_dir=str(peers),
    )


def vehicle_messages(n: int) -> list[tuple[str, list[Reading]]]:
    """One-reading messages of patrol-01, the account the shipped ACL lets publish them."""
    start = recent_start()
    return [
        ("patrol-01", [reading("patrol-01", seq, start + timedelta(seconds=10 * seq))])
        for seq in range(n)
    ]


def peer_passwords(broker: ShippedBroker, tmp_path: Path) -> Path:
    peers = tmp_path / "peers"
    peers.mkdir()
    (peers / FIRST).write_text(broker.passwords[FIRST] + "\n")
    return peers


def state_of(service: IngestService, worker: str) -> str:
    known = service.workers.state(worker)
    return known.state if known is not None else ""


def test_a_killed_worker_is_adopted_under_its_own_account(
    tmp_path: Path, database_url: str, start_ingest: StartIngest
) -> None:
    with running(tmp_path, ACCOUNTS) as broker:
        first = first_worker(broker, database_url, tmp_path)
        first.start()
        second = start_ingest(second_worker(broker, database_url, peer_passwords(broker, tmp_path)))
        publisher = Publisher(broker.url("patrol-01"), "patrol-01")
        messages = vehicle_messages(400)
        try:
            # Each worker says it is online once it has subscribed.
            wait_until(lambda: state_of(second, FIRST) == "online", 30, "worker 1 online")
            for vehicle, readings in messages[:100]:
                publisher.publish(vehicle, readings)
            wait_until(lambda: stored_count(database_url) >= 100, 30, "the first 100 stored")
            first.kill9()  # the socket closes: the broker publishes its will at once
            for vehicle, readings in messages[100:]:
                publisher.publish(vehicle, readings)
            wait_until(lambda: publisher.outstanding() == 0, 30, "every PUBACK")
            wait_until(lambda: stored_count(database_url) >= 400, 60, "every reading stored")
            wait_until(lambda: second.counters.adopted_sessions == 1, 30, "worker 1 adopted")
            assert state_of(second, FIRST) == "adopted"
            assert second.counters.adopted_messages > 0  # its share, dealt while it was dead
            # Back, worker 1 finds no session and joins again.
            first.start()
            wait_until(lambda: state_of(second, FIRST) == "online", 30, "worker 1 back")
            assert "session present: False" in (tmp_path / "ingest-1.log").read_text()
        finally:
            publisher.close()
            first.stop()
        assert "not authorised" not in broker.log().lower()
    counts = tally(database_url, publisher.acknowledged)
    assert counts["acknowledged"] == 400
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0


def test_a_worker_back_during_its_adoption_takes_its_session_over(
    tmp_path: Path, database_url: str, start_ingest: StartIngest
) -> None:
    """An adoption that cannot commit (its database unreachable) holds the session when worker
    1 returns: worker 1 takes it over, the adoption ends unfinished, nothing is lost."""
    with running(tmp_path, ACCOUNTS) as broker:
        first = first_worker(broker, database_url, tmp_path)
        first.start()
        settings = second_worker(broker, database_url, peer_passwords(broker, tmp_path))
        # The adoption is started by the test, with a database it cannot reach.
        second = start_ingest(dataclasses.replace(settings, adopt_peers=False))
        publisher = Publisher(broker.url("patrol-01"), "patrol-01")
        messages = vehicle_messages(300)
        adoption_stop = threading.Event()
        adoption_thread: threading.Thread | None = None
        try:
            wait_until(lambda: state_of(second, FIRST) == "online", 30, "worker 1 online")
            for vehicle, readings in messages[:100]:
                publisher.publish(vehicle, readings)
            wait_until(lambda: stored_count(database_url) >= 100, 30, "the first 100 stored")
            first.kill9()
            for vehicle, readings in messages[100:]:
                publisher.publish(vehicle, readings)
            wait_until(lambda: publisher.outstanding() == 0, 30, "every PUBACK")
            unreachable = dataclasses.replace(
                second.peer_settings(FIRST),
                database_url="postgresql://postgres@127.0.0.1:1/none",
                db_timeout_s=1.0,
            )
            adoption = IngestService(unreachable, adopted_by=SECOND)
            adoption_thread = threading.Thread(target=adoption.run, args=(adoption_stop,))
            adoption_thread.start()
            wait_until(lambda: adoption.session_present is True, 10, "the session adopted")
            first.start()
            wait_until(adoption.aborted.is_set, 30, "worker 1 to take its session over")
            adoption_thread.join(timeout=30)
            assert not adoption.finished.is_set()
            wait_until(lambda: stored_count(database_url) >= 300, 60, "every reading stored")
        finally:
            adoption_stop.set()
            if adoption_thread is not None:
                adoption_thread.join(timeout=30)
            publisher.close()
            first.stop()
    counts = tally(database_url, publisher.acknowledged)
    assert counts["acknowledged"] == 300
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
