"""No login takes another's session, on a private Mosquitto run from the shipped deploy/mosquitto.

Sessions are keyed by client id. The shipped configuration replaces every connection's client
id with its username (`use_username_as_clientid`, on both listeners), so a vehicle's credentials
presenting the ingest's client id, or another vehicle's, get a session of their own: the
readings queued for the ingest while it is away stay queued for it, and a connected vehicle
stays connected. The ingest here is the real `envpatrol ingest` process on the machine's
PostgreSQL; the attacks use MQTT 5 (Clean Start, and resuming with a session expiry) and MQTT
3.1.1 (clean and persistent sessions) on both listeners.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from edge.wire import encode_message
from tests.integration.ingest_fixtures import (
    IngestProcess,
    reading,
    recent_start,
    wait_for,
)
from tests.integration.shipped_broker import (
    Probe,
    ShippedBroker,
    needs_broker_tools,
    probes,
    running,
)

__all__ = ["probes"]  # a fixture the tests request by name

pytestmark = [pytest.mark.integration, needs_broker_tools]

INGEST = "envpatrol-ingest-1"
ATTACKER = "patrol-01"
VEHICLES = ("patrol-02", "patrol-03", "patrol-04")
PROBE_VEHICLE = "patrol-09"
USERS = (INGEST, "envpatrol-ingest-2", ATTACKER, *VEHICLES, PROBE_VEHICLE)
MESSAGES_PER_VEHICLE = 60
READINGS_PER_MESSAGE = 3
# (protocol, clean start / clean session, MQTT 5 session expiry)
LOGINS = (("5", True, 0), ("5", False, 3600), ("3.1.1", True, 0), ("3.1.1", False, 0))
TAKEOVER_LOG = "already connected, closing old connection"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[ShippedBroker]:
    with running(tmp_path, USERS) as shipped:
        yield shipped


def _login(
    broker: ShippedBroker,
    probes: list[Probe],
    user: str,
    client_id: str,
    port: int,
    protocol: str = "5",
    clean_start: bool = True,
    session_expiry_s: int = 0,
) -> Probe:
    probe = Probe(
        port,
        client_id,
        user,
        broker.passwords[user],
        protocol=protocol,
        clean_start=clean_start,
        session_expiry_s=session_expiry_s,
    )
    probes.append(probe)
    reason = probe.connect()
    assert not reason.is_failure, f"{user} could not log in: {reason}\n{broker.log()}"
    return probe


def _stored(database_url: str) -> dict[tuple[str, int], int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT vehicle, seq, count(*) FROM reading GROUP BY 1, 2").fetchall()
    return {(vehicle, seq): count for vehicle, seq, count in rows}


def _start_ingest(broker: ShippedBroker, database_url: str, tmp_path: Path) -> IngestProcess:
    # No client id configured: the ingest takes its username, as the shipped ingest.toml does.
    config = tmp_path / "ingest.toml"
    config.write_text(
        "\n".join(
            [
                "[mqtt]",
                f'url = "{broker.url(INGEST)}"',
                "[database]",
                f'url = "{database_url}"',
                "[ingest]",
                "batch_max_wait_s = 0.1",
                "",
            ]
        )
    )
    ingest = IngestProcess(config, tmp_path / "ingest.log")
    ingest.start()
    return ingest


def _wait_until_subscribed(
    broker: ShippedBroker, probes: list[Probe], database_url: str, ingest_log: Path
) -> None:
    """A vehicle's status probe, repeated until the ingest has stored it: from then on the
    ingest's session holds its subscriptions, and the broker queues readings for it."""
    vehicle = _login(broker, probes, PROBE_VEHICLE, PROBE_VEHICLE, broker.public_port)
    status = (
        b'{"schema_version": 1, "vehicle": "' + PROBE_VEHICLE.encode() + b'", "state": "online"}'
    )

    def stored() -> bool:
        vehicle.publish(f"envpatrol/v1/{PROBE_VEHICLE}/status", status)
        with psycopg.connect(database_url) as conn:
            found = conn.execute(
                "SELECT 1 FROM vehicle WHERE vehicle = %s", (PROBE_VEHICLE,)
            ).fetchone()
        return found is not None

    try:
        wait_for(stored, 30, "the ingest to store a status probe")
    except AssertionError:
        raise AssertionError(ingest_log.read_text(errors="replace")) from None


def test_no_login_takes_the_ingest_session_and_nothing_queued_is_lost(
    broker: ShippedBroker, probes: list[Probe], database_url: str, tmp_path: Path
) -> None:
    ingest = _start_ingest(broker, database_url, tmp_path)
    try:
        _wait_until_subscribed(broker, probes, database_url, ingest.log_path)
        ingest.stop()  # a clean stop: its session and subscription stay, with expiry

        # The ingest is away: every vehicle's readings are queued in its session.
        start = recent_start()
        published: set[tuple[str, int]] = set()
        for vehicle in VEHICLES:
            publisher = _login(broker, probes, vehicle, vehicle, broker.public_port)
            for message in range(MESSAGES_PER_VEHICLE):
                first = message * READINGS_PER_MESSAGE
                readings = [
                    reading(vehicle, seq, start + timedelta(seconds=10 * seq))
                    for seq in range(first, first + READINGS_PER_MESSAGE)
                ]
                payload = encode_message(vehicle, readings)
                reason = publisher.publish(f"envpatrol/v1/{vehicle}/readings", payload)
                assert not reason.is_failure, reason
                published.update((vehicle, r.seq) for r in readings)
        assert len(published) == len(VEHICLES) * MESSAGES_PER_VEHICLE * READINGS_PER_MESSAGE

        # Takeover attempts with the ingest's client id: a vehicle's credentials and another
        # worker's, clean and resuming, MQTT 5 and 3.1.1, on both listeners.
        attempts = itertools.product(
            (ATTACKER, "envpatrol-ingest-2"), (broker.public_port, broker.local_port), LOGINS
        )
        for user, port, (protocol, clean, expiry) in attempts:
            attacker = _login(broker, probes, user, INGEST, port, protocol, clean, expiry)
            assert not attacker.subscribe("envpatrol/#").is_failure
            # A round trip: whatever the session held would have been sent before the reply.
            attacker.subscribe(f"envpatrol/v1/{user}/commands")
            taken = [m.topic for m in attacker.received() if m.topic.endswith("/readings")]
            assert taken == [], f"{user} ({protocol}, clean={clean}) received {len(taken)}"
            attacker.close()

        ingest.start()
        wait_for(
            lambda: published <= _stored(database_url).keys(),
            60,
            "every queued reading to be stored",
        )
        stored = _stored(database_url)
        lost = published - stored.keys()
        duplicated = sum(n - 1 for n in stored.values() if n > 1)
        print(f"\nqueued {len(published)}, lost {len(lost)}, duplicated {duplicated}")
        assert (len(lost), duplicated) == (0, 0)

        # With the ingest connected, the same attempt neither knocks it off nor stalls it.
        _login(broker, probes, ATTACKER, INGEST, broker.local_port)
        late = reading("patrol-03", 10_000, start + timedelta(hours=1))
        publisher = _login(broker, probes, "patrol-03", "patrol-03", broker.public_port)
        publisher.publish("envpatrol/v1/patrol-03/readings", encode_message("patrol-03", [late]))
        wait_for(lambda: ("patrol-03", 10_000) in _stored(database_url), 30, "a live reading")
        assert ingest.proc is not None
        assert ingest.proc.poll() is None
        assert f"Client {INGEST} {TAKEOVER_LOG}" not in broker.log()
    finally:
        ingest.stop()


def test_no_login_knocks_a_connected_vehicle_off(
    broker: ShippedBroker, probes: list[Probe]
) -> None:
    victim = _login(broker, probes, "patrol-02", "patrol-02", broker.public_port)

    for port, (protocol, clean, expiry) in itertools.product(
        (broker.public_port, broker.local_port), LOGINS
    ):
        _login(broker, probes, ATTACKER, "patrol-02", port, protocol, clean, expiry)
        # The broker closes a replaced connection before it acknowledges the new one, so a round
        # trip on the victim's connection after the attacker's CONNACK would see it closed.
        assert not victim.publish("envpatrol/v1/patrol-02/status", b"{}").is_failure
        assert victim.disconnected() == 0, f"knocked off by {protocol}, clean={clean}"
    assert f"Client patrol-02 {TAKEOVER_LOG}" not in broker.log()

    # The vehicle's own account does replace its connection, whatever client id it sends (how a
    # vehicle gets past a half-open connection): the checks above would have seen a knock-off.
    _login(broker, probes, "patrol-02", "any-id", broker.local_port)
    wait_for(lambda: victim.disconnected() > 0, 10, "the replaced connection to close")
