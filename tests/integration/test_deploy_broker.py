"""The shipped broker ACL and password authentication, on a real Mosquitto.

A private ``mosquitto`` process is started for every test with the exact
``deploy/mosquitto/acl`` file, a password file made by ``mosquitto_passwd``
and a plain-TCP listener on a free loopback port. MQTT 5 clients then probe
what the broker allows: publishes refused by the ACL come back as PUBACK
reason code 0x87 (Not authorized), so nothing here relies on sleeping and
hoping a message did not arrive.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_ACL = REPO_ROOT / "deploy" / "mosquitto" / "acl"

# mosquitto lives in /usr/sbin on Debian, which is not on every user's PATH.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/usr/local/sbin"])
MOSQUITTO = shutil.which("mosquitto", path=_SEARCH_PATH)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd", path=_SEARCH_PATH)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        MOSQUITTO is None or MOSQUITTO_PASSWD is None,
        reason="needs the Mosquitto broker: `mosquitto` and `mosquitto_passwd` "
        "not found on PATH (Debian: apt-get install mosquitto)",
    ),
]

TIMEOUT_S = 10.0
NOT_AUTHORIZED = 0x87
USERS = ("patrol-01", "patrol-02", "ingest")


@dataclass(frozen=True)
class Broker:
    """A running private broker and the credentials it accepts."""

    port: int
    passwords: dict[str, str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_password_file(path: Path, passwords: dict[str, str]) -> None:
    assert MOSQUITTO_PASSWD is not None
    create = ["-c"]
    for user, password in passwords.items():
        subprocess.run(
            [MOSQUITTO_PASSWD, "-b", *create, str(path), user, password],
            check=True,
            capture_output=True,
            timeout=TIMEOUT_S,
        )
        create = []


def _write_config(tmp_path: Path, port: int, passwd: Path, acl: Path) -> Path:
    conf = tmp_path / "mosquitto.conf"
    # When started as root, mosquitto switches to the `mosquitto` user before
    # it reads the password and ACL files, which it then cannot read inside
    # pytest's private tmp_path. Naming the current user keeps it as is (for
    # a non-root user the option has no effect at all).
    current_user = pwd.getpwuid(os.getuid()).pw_name
    conf.write_text(
        "\n".join(
            [
                f"user {current_user}",
                "per_listener_settings false",
                "allow_anonymous false",
                f"password_file {passwd}",
                f"acl_file {acl}",
                "persistence false",
                f"listener {port} 127.0.0.1",
                "protocol mqtt",
                "log_dest stderr",
                "log_type all",
                "",
            ]
        )
    )
    return conf


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _wait_until_listening(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> bool:
    """True once the broker accepts connections, False if it exited first."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        # Mosquitto logs "... running" only once all its listeners are bound,
        # so a connection accepted before that may come from another process
        # that took the port (our broker then exits: Address already in use).
        log = log_path.read_text(errors="replace").splitlines()
        if any(line.endswith(" running") for line in log) and _accepts_connections(port):
            return True
        time.sleep(0.02)
    pytest.fail(
        f"mosquitto did not listen on port {port} within {TIMEOUT_S}s:\n"
        f"{log_path.read_text(errors='replace')}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=TIMEOUT_S)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    assert MOSQUITTO is not None
    acl = tmp_path / "acl"
    shutil.copyfile(SHIPPED_ACL, acl)
    passwords = {user: secrets.token_urlsafe(16) for user in USERS}
    passwd = tmp_path / "passwd"
    _write_password_file(passwd, passwords)
    log_path = tmp_path / "mosquitto.log"

    # The free port is only reserved until its probe socket closes; if some
    # other process grabs it first, mosquitto exits and we try another one.
    for _attempt in range(3):
        port = _free_port()
        conf = _write_config(tmp_path, port, passwd, acl)
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            if not _wait_until_listening(proc, port, log_path):
                continue  # exited, most likely "Address already in use"
            yield Broker(port=port, passwords=passwords, log_path=log_path)
            return
        finally:
            _stop(proc)
    pytest.fail(f"mosquitto failed to start:\n{log_path.read_text(errors='replace')}")


@dataclass
class _Ack:
    done: threading.Event = field(default_factory=threading.Event)
    reason_code: ReasonCode | None = None


class Probe:
    """An MQTT 5 client whose broker replies can be awaited with deadlines."""

    def __init__(
        self,
        port: int,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.port = port
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connack = threading.Event()
        self.connect_reason: ReasonCode | None = None
        self._lock = threading.Lock()
        self._publish_acks: dict[int, _Ack] = {}
        self._subscribe_acks: dict[int, _Ack] = {}
        self.messages: list[mqtt.MQTTMessage] = []
        self._message_arrived = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # --- paho callbacks, run on the network thread -------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if not self.connack.is_set():
            self.connect_reason = reason_code
            self.connack.set()
        if reason_code.is_failure:
            # Do not let paho hammer the broker with reconnect attempts.
            client.disconnect()

    def _ack(self, table: dict[int, _Ack], mid: int) -> _Ack:
        # The broker's reply may be processed before publish()/subscribe()
        # has even returned the mid, so whichever side comes first creates
        # the slot.
        with self._lock:
            return table.setdefault(mid, _Ack())

    def _on_publish(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        _properties: Properties,
    ) -> None:
        ack = self._ack(self._publish_acks, mid)
        ack.reason_code = reason_code
        ack.done.set()

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reason_code_list: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        ack = self._ack(self._subscribe_acks, mid)
        ack.reason_code = reason_code_list[0]
        ack.done.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)
        self._message_arrived.set()

    # --- test-facing API ----------------------------------------------------

    def connect(self) -> ReasonCode:
        """Connect and return the CONNACK reason code (success or not)."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        _wait(self.connack, "CONNACK")
        assert self.connect_reason is not None
        return self.connect_reason

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish with QoS 1 and return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish failed locally: {info.rc}"
        ack = self._ack(self._publish_acks, info.mid)
        _wait(ack.done, f"PUBACK for {topic}")
        assert ack.reason_code is not None
        return ack.reason_code

    def subscribe(self, topic_filter: str) -> ReasonCode:
        """Subscribe with QoS 1 and return the SUBACK reason code."""
        result, mid = self.client.subscribe(topic_filter, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS, f"subscribe failed locally: {result}"
        assert mid is not None
        ack = self._ack(self._subscribe_acks, mid)
        _wait(ack.done, f"SUBACK for {topic_filter}")
        assert ack.reason_code is not None
        return ack.reason_code

    def wait_for_payload(self, payload: bytes) -> mqtt.MQTTMessage:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            self._message_arrived.clear()
            for message in self.received():
                if message.payload == payload:
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no message with payload {payload!r} within {TIMEOUT_S}s")
            self._message_arrived.wait(remaining)

    def received(self) -> list[mqtt.MQTTMessage]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(event: threading.Event, what: str) -> None:
    if not event.wait(TIMEOUT_S):
        pytest.fail(f"timed out after {TIMEOUT_S}s waiting for {what}")


@pytest.fixture
def probes() -> Iterator[list[Probe]]:
    """Keeps track of created clients so every one is closed after the test.

    Tests request it after ``broker``, so the clients are closed before the
    broker is stopped.
    """
    created: list[Probe] = []
    yield created
    for probe in created:
        probe.close()


def _probe(
    broker: Broker,
    probes: list[Probe],
    client_id: str,
    username: str | None = None,
    password: str | None = None,
) -> Probe:
    probe = Probe(broker.port, client_id, username, password)
    probes.append(probe)
    return probe


def _login(broker: Broker, probes: list[Probe], user: str, client_id: str = "") -> Probe:
    probe = _probe(broker, probes, client_id or user, user, broker.passwords[user])
    reason = probe.connect()
    assert not reason.is_failure, f"{user} could not log in: {reason}\n{broker.log()}"
    return probe


def _unique_payload(label: str) -> bytes:
    return f"{label}-{secrets.token_hex(8)}".encode()


def test_anonymous_connection_is_refused(broker: Broker, probes: list[Probe]) -> None:
    reason = _probe(broker, probes, "anonymous-probe").connect()

    assert reason.is_failure
    assert reason.value in (0x86, NOT_AUTHORIZED), str(reason)


def test_wrong_password_is_refused(broker: Broker, probes: list[Probe]) -> None:
    wrong = broker.passwords["patrol-01"] + "-wrong"
    reason = _probe(broker, probes, "patrol-01", "patrol-01", wrong).connect()

    assert reason.is_failure
    assert reason.value in (0x86, NOT_AUTHORIZED), str(reason)


def test_vehicle_publishes_to_its_own_topics(broker: Broker, probes: list[Probe]) -> None:
    vehicle = _login(broker, probes, "patrol-01")

    for kind in ("readings", "status", "health"):
        reason = vehicle.publish(f"envpatrol/v1/patrol-01/{kind}", b"{}")
        # 0x00 Success, or 0x10 "No matching subscribers": both are accepted.
        assert not reason.is_failure, f"{kind}: {reason}"


def test_vehicle_cannot_publish_as_another_vehicle(broker: Broker, probes: list[Probe]) -> None:
    vehicle = _login(broker, probes, "patrol-01")

    reason = vehicle.publish("envpatrol/v1/patrol-02/readings", b"{}")

    assert reason.value == NOT_AUTHORIZED, str(reason)


def test_vehicle_cannot_send_commands(broker: Broker, probes: list[Probe]) -> None:
    vehicle = _login(broker, probes, "patrol-01")

    reason = vehicle.publish("envpatrol/v1/patrol-01/commands", b"{}")

    assert reason.value == NOT_AUTHORIZED, str(reason)


def test_ingest_receives_only_authorised_readings(broker: Broker, probes: list[Probe]) -> None:
    ingest = _login(broker, probes, "ingest", "envpatrol-ingest-test")
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


def test_ingest_shared_subscription_receives_readings(broker: Broker, probes: list[Probe]) -> None:
    ingest = _login(broker, probes, "ingest", "envpatrol-ingest-1")
    assert not ingest.subscribe("$share/ingest/envpatrol/v1/+/readings").is_failure
    vehicle = _login(broker, probes, "patrol-02")
    payload = _unique_payload("shared")

    assert not vehicle.publish("envpatrol/v1/patrol-02/readings", payload).is_failure

    assert ingest.wait_for_payload(payload).topic == "envpatrol/v1/patrol-02/readings"


def test_service_account_cannot_pose_as_a_vehicle(broker: Broker, probes: list[Probe]) -> None:
    # The vehicle patterns expand %u for every user, so the ACL must deny the
    # service accounts their own "vehicle" subtree explicitly.
    ingest = _login(broker, probes, "ingest", "envpatrol-ingest-test")

    for topic in (
        "envpatrol/v1/ingest/readings",
        "envpatrol/v1/ingest/status",
        "envpatrol/v1/patrol-01/readings",
    ):
        assert ingest.publish(topic, b"{}").value == NOT_AUTHORIZED, topic
