"""A private Mosquitto run from the shipped deploy/mosquitto files, and MQTT probes for it.

The broker reads `deploy/mosquitto/mosquitto.conf` itself, changed only where a test must:
its listeners move to free loopback ports (the TLS listener without TLS, as no certificate is
at hand), the password file, ACL and persistence live in the test's directory, and it keeps the
current user. Everything else (authentication, `use_username_as_clientid` on every listener,
persistence, queue limits) is the file as shipped, and the ACL is `deploy/mosquitto/acl`
unchanged. Probes are MQTT 5 or 3.1.1 clients whose broker replies are awaited with deadlines.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from demo.embedded import free_port
from tests.integration.ingest_fixtures import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = REPO_ROOT / "deploy" / "mosquitto"

# mosquitto lives in /usr/sbin on Debian, which is not on every user's PATH.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/usr/local/sbin"])
MOSQUITTO = shutil.which("mosquitto", path=_SEARCH_PATH)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd", path=_SEARCH_PATH)
needs_broker_tools = pytest.mark.skipif(
    MOSQUITTO is None or MOSQUITTO_PASSWD is None,
    reason="needs the Mosquitto broker: `mosquitto` and `mosquitto_passwd` "
    "not found on PATH (Debian: apt-get install mosquitto)",
)

TIMEOUT_S = 10.0
NOT_AUTHORIZED = 0x87
# Options of the TLS listener that need certificates; the test listener is plain TCP.
_TLS_OPTIONS = ("cafile", "capath", "certfile", "keyfile", "tls_version", "crlfile")


def shipped_config(
    public_port: int, local_port: int, directory: Path, passwd: Path, acl: Path
) -> str:
    """deploy/mosquitto/mosquitto.conf for a test in `directory`: see the module docstring."""
    out = [f"user {pwd.getpwuid(os.getuid()).pw_name}"]
    listeners = 0
    for line in (SHIPPED / "mosquitto.conf").read_text().splitlines():
        words = line.split()
        key = words[0] if words and not words[0].startswith("#") else ""
        if key == "listener":
            port = {"8883": public_port, "1883": local_port}[words[1]]
            out.append(f"listener {port} 127.0.0.1")
            listeners += 1
        elif key in _TLS_OPTIONS or key == "require_certificate":
            continue
        elif key == "password_file":
            out.append(f"password_file {passwd}")
        elif key == "acl_file":
            out.append(f"acl_file {acl}")
        elif key == "persistence_location":
            out.append(f"persistence_location {directory}/")
        elif key == "log_dest":
            # stdout into a file is block-buffered: the log is read while the broker runs.
            out.append("log_dest stderr")
        else:
            out.append(line)
    assert listeners == 2, "the shipped configuration should have a public and a local listener"
    return "\n".join(out) + "\n"


def write_password_file(path: Path, passwords: dict[str, str]) -> None:
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


class ShippedBroker:
    """The shipped configuration running on two free loopback ports: `public_port` (the TLS
    listener's options, without TLS) and `local_port` (the loopback listener's)."""

    def __init__(self, directory: Path, users: Iterable[str]) -> None:
        self.directory = directory
        self.passwords = {user: secrets.token_urlsafe(16) for user in users}
        self.passwd = directory / "passwd"
        write_password_file(self.passwd, self.passwords)
        self.acl = directory / "acl"
        shutil.copyfile(SHIPPED / "acl", self.acl)
        self.conf = directory / "mosquitto.conf"
        self.log_path = directory / "mosquitto.log"
        self.public_port = self.local_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        """Start on fresh ports; a port taken meanwhile by another process makes Mosquitto exit
        at once, and another pair is tried."""
        assert MOSQUITTO is not None
        for _attempt in range(3):
            self.public_port, self.local_port = free_port(), free_port()
            self.conf.write_text(
                shipped_config(
                    self.public_port, self.local_port, self.directory, self.passwd, self.acl
                )
            )
            runs = self._runs()
            with self.log_path.open("ab") as log:
                self.proc = proc = subprocess.Popen(
                    [MOSQUITTO, "-c", str(self.conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._started(proc, runs):
                return
        pytest.fail(f"mosquitto failed to start:\n{self.log()}")

    def _started(self, proc: subprocess.Popen[bytes], runs: int) -> bool:
        """True once `proc` runs with all its listeners bound; False if it exited first."""
        try:
            wait_for(
                lambda: proc.poll() is not None or self._runs() > runs,
                TIMEOUT_S,
                "mosquitto to listen",
            )
        except AssertionError:
            self.stop()
            raise AssertionError(self.log()) from None
        return proc.poll() is None

    def _runs(self) -> int:
        # Mosquitto logs "... running" once all its listeners are bound.
        return sum(line.endswith(" running") for line in self.log().splitlines())

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its persistence file (sessions, queues) and exits."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=TIMEOUT_S)

    def url(self, user: str, port: int | None = None) -> str:
        """An mqtt:// URL that logs in as `user` (the local listener unless `port`)."""
        return f"mqtt://{user}:{self.passwords[user]}@127.0.0.1:{port or self.local_port}"


@dataclass
class _Ack:
    done: threading.Event = field(default_factory=threading.Event)
    reason_code: ReasonCode | None = None


class Probe:
    """An MQTT client whose broker replies can be awaited with deadlines. MQTT 5 by default;
    `protocol="3.1.1"` with `clean_start` as its clean session flag. `session_expiry_s` (MQTT 5)
    keeps the session after the connection ends. Disconnections are counted (a probe knocked
    off by another login then reconnects, as paho does)."""

    def __init__(
        self,
        port: int,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        *,
        protocol: str = "5",
        clean_start: bool = True,
        session_expiry_s: int = 0,
    ) -> None:
        self.port = port
        self.v5 = protocol == "5"
        self.clean_start = clean_start
        self.session_expiry_s = session_expiry_s
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
            clean_session=None if self.v5 else clean_start,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connack = threading.Event()
        self.connect_reason: ReasonCode | None = None
        self.session_present: bool | None = None
        self.disconnects = 0
        self._lock = threading.Lock()
        self._publish_acks: dict[int, _Ack] = {}
        self._subscribe_acks: dict[int, _Ack] = {}
        self.messages: list[mqtt.MQTTMessage] = []
        self._message_arrived = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # --- paho callbacks, run on the network thread -------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if not self.connack.is_set():
            self.connect_reason = reason_code
            self.session_present = flags.session_present
            self.connack.set()
        if reason_code.is_failure:
            client.disconnect()

    def _on_disconnect(self, *_args: Any) -> None:
        with self._lock:
            self.disconnects += 1

    def _ack(self, table: dict[int, _Ack], mid: int) -> _Ack:
        # The broker's reply may be handled before publish()/subscribe() has returned the mid,
        # so whichever side comes first creates the slot.
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
        properties = None
        if self.v5 and self.session_expiry_s:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self.session_expiry_s
        self.client.connect(
            "127.0.0.1",
            self.port,
            keepalive=30,
            clean_start=self.clean_start if self.v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self.client.loop_start()
        wait_event(self.connack, "CONNACK")
        assert self.connect_reason is not None
        return self.connect_reason

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish with QoS 1 and return the PUBACK reason code (MQTT 3.1.1: always success)."""
        info = self.client.publish(topic, payload, qos=1)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish failed locally: {info.rc}"
        ack = self._ack(self._publish_acks, info.mid)
        wait_event(ack.done, f"PUBACK for {topic}")
        assert ack.reason_code is not None
        return ack.reason_code

    def subscribe(self, topic_filter: str) -> ReasonCode:
        """Subscribe with QoS 1 and return the SUBACK reason code."""
        result, mid = self.client.subscribe(topic_filter, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS, f"subscribe failed locally: {result}"
        assert mid is not None
        ack = self._ack(self._subscribe_acks, mid)
        wait_event(ack.done, f"SUBACK for {topic_filter}")
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

    def disconnected(self) -> int:
        with self._lock:
            return self.disconnects

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_event(event: threading.Event, what: str) -> None:
    if not event.wait(TIMEOUT_S):
        pytest.fail(f"timed out after {TIMEOUT_S}s waiting for {what}")


@contextmanager
def running(tmp_path: Path, users: Iterable[str]) -> Iterator[ShippedBroker]:
    """A broker from the shipped configuration with these accounts, stopped afterwards."""
    broker = ShippedBroker(tmp_path, tuple(users))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def probes() -> Iterator[list[Probe]]:
    """Every client a test makes, closed after it. Tests request it after their broker, so the
    clients are closed before the broker stops."""
    created: list[Probe] = []
    yield created
    for probe in created:
        probe.close()
