"""The shipped broker configuration (deploy/mosquitto: mosquitto.conf, acl) on a real Mosquitto.

A private ``mosquitto`` process is started for every test from the shipped files
(`tests/integration/shipped_broker.py`) with a password file made by ``mosquitto_passwd``. MQTT 5
clients then probe what the broker allows: publishes refused by the ACL come back as PUBACK
reason code 0x87 (Not authorized), so nothing here relies on sleeping and hoping a message did
not arrive. Both listeners carry the shipped options; the tests use the public one unless they
say otherwise.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.ingest_fixtures import wait_for
from tests.integration.shipped_broker import (
    NOT_AUTHORIZED,
    Probe,
    ShippedBroker,
    needs_broker_tools,
    probes,
    running,
)

__all__ = ["probes"]  # a fixture the tests request by name

pytestmark = [pytest.mark.integration, needs_broker_tools]

USERS = ("patrol-01", "patrol-02", "envpatrol-ingest-1", "envpatrol-ingest-2", "api")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[ShippedBroker]:
    with running(tmp_path, USERS) as shipped:
        yield shipped


def _probe(
    broker: ShippedBroker,
    probes: list[Probe],
    client_id: str,
    username: str | None = None,
    password: str | None = None,
    port: int | None = None,
) -> Probe:
    probe = Probe(port or broker.public_port, client_id, username, password)
    probes.append(probe)
    return probe


def _login(
    broker: ShippedBroker,
    probes: list[Probe],
    user: str,
    client_id: str = "",
    port: int | None = None,
) -> Probe:
    probe = _probe(broker, probes, client_id or user, user, broker.passwords[user], port)
    reason = probe.connect()
    assert not reason.is_failure, f"{user} could not log in: {reason}\n{broker.log()}"
    return probe


def _unique_payload(label: str) -> bytes:
    return f"{label}-{secrets.token_hex(8)}".encode()


def test_anonymous_connection_is_refused(broker: ShippedBroker, probes: list[Probe]) -> None:
    reason = _probe(broker, probes, "anonymous-probe").connect()

    assert reason.is_failure
    assert reason.value in (0x86, NOT_AUTHORIZED), str(reason)


def test_wrong_password_is_refused(broker: ShippedBroker, probes: list[Probe]) -> None:
    wrong = broker.passwords["patrol-01"] + "-wrong"
    reason = _probe(broker, probes, "patrol-01", "patrol-01", wrong).connect()

    assert reason.is_failure
    assert reason.value in (0x86, NOT_AUTHORIZED), str(reason)


def test_vehicle_publishes_to_its_own_topics(broker: ShippedBroker, probes: list[Probe]) -> None:
    vehicle = _login(broker, probes, "patrol-01")

    for kind in ("readings", "status", "health"):
        reason = vehicle.publish(f"envpatrol/v1/patrol-01/{kind}", b"{}")
        # 0x00 Success, or 0x10 "No matching subscribers": both are accepted.
        assert not reason.is_failure, f"{kind}: {reason}"


def test_vehicle_cannot_publish_as_another_vehicle(
    broker: ShippedBroker, probes: list[Probe]
) -> None:
    vehicle = _login(broker, probes, "patrol-01")

    reason = vehicle.publish("envpatrol/v1/patrol-02/readings", b"{}")

    assert reason.value == NOT_AUTHORIZED, str(reason)


def test_vehicle_cannot_send_commands(broker: ShippedBroker, probes: list[Probe]) -> None:
    vehicle = _login(broker, probes, "patrol-01")

    reason = vehicle.publish("envpatrol/v1/patrol-01/commands", b"{}")

    assert reason.value == NOT_AUTHORIZED, str(reason)


def test_ingest_receives_only_authorised_readings(
    broker: ShippedBroker, probes: list[Probe]
) -> None:
    ingest = _login(broker, probes, "envpatrol-ingest-1")
    assert not ingest.subscribe("envpatrol/v1/+/readings").is_failure
    vehicle = _login(broker, probes, "patrol-01")
    forged = _unique_payload("forged")
    genuine = _unique_payload("genuine")

    # The forged message goes first and is refused before the genuine one is
    # sent, so by the time the genuine message reaches ingest any delivery of
    # the forged one would already have happened on the same connection.
    assert vehicle.publish("envpatrol/v1/patrol-02/readings", forged).value == NOT_AUTHORIZED
    assert not vehicle.publish("envpatrol/v1/patrol-01/readings", genuine).is_failure

    message = ingest.wait_for_payload(genuine)
    assert message.topic == "envpatrol/v1/patrol-01/readings"
    assert [m.payload for m in ingest.received()] == [genuine]


def test_ingest_shared_subscription_receives_readings(
    broker: ShippedBroker, probes: list[Probe]
) -> None:
    ingest = _login(broker, probes, "envpatrol-ingest-1")
    assert not ingest.subscribe("$share/ingest/envpatrol/v1/+/readings").is_failure
    vehicle = _login(broker, probes, "patrol-02")
    payload = _unique_payload("shared")

    assert not vehicle.publish("envpatrol/v1/patrol-02/readings", payload).is_failure

    assert ingest.wait_for_payload(payload).topic == "envpatrol/v1/patrol-02/readings"


def test_service_account_cannot_pose_as_a_vehicle(
    broker: ShippedBroker, probes: list[Probe]
) -> None:
    # The vehicle patterns expand %u for every user, so the ACL must deny the
    # service accounts their own "vehicle" subtree explicitly.
    ingest = _login(broker, probes, "envpatrol-ingest-1")

    for topic in (
        "envpatrol/v1/envpatrol-ingest-1/readings",
        "envpatrol/v1/envpatrol-ingest-1/status",
        "envpatrol/v1/patrol-01/readings",
    ):
        assert ingest.publish(topic, b"{}").value == NOT_AUTHORIZED, topic


def test_ingest_workers_share_the_readings_each_on_its_own_session(
    broker: ShippedBroker, probes: list[Probe]
) -> None:
    # One worker per listener: neither login replaces the other, as they would on one account.
    workers = [
        _login(broker, probes, "envpatrol-ingest-1", port=broker.public_port),
        _login(broker, probes, "envpatrol-ingest-2", port=broker.local_port),
    ]
    for worker in workers:
        assert not worker.subscribe("$share/ingest/envpatrol/v1/+/readings").is_failure
    vehicle = _login(broker, probes, "patrol-01")
    payloads = {_unique_payload(f"share-{n}") for n in range(6)}

    for payload in payloads:
        assert not vehicle.publish("envpatrol/v1/patrol-01/readings", payload).is_failure

    wait_for(
        lambda: {m.payload for w in workers for m in w.received()} == payloads,
        10,
        "every reading at one of the workers",
    )
    assert all(worker.received() for worker in workers)
    assert [worker.disconnected() for worker in workers] == [0, 0]


def test_client_id_is_the_username_on_every_listener(
    broker: ShippedBroker, probes: list[Probe]
) -> None:
    for logins, port in enumerate((broker.public_port, broker.local_port), start=1):
        _login(broker, probes, "patrol-02", "envpatrol-ingest-1", port=port)

        assert broker.log().count(" as patrol-02 (p5, c1, k30, u'patrol-02')") == logins
        assert " as envpatrol-ingest-1 " not in broker.log()
