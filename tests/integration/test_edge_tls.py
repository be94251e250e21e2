"""The agent's TLS settings against a real Mosquitto that requires client certificates:
a private CA made with `openssl`, a server certificate for 127.0.0.1, a client certificate."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from demo.embedded import free_port
from edge.agent import Agent
from edge.config import load_edge_settings
from edge.mqtt import MqttSettings, connect_properties, make_client
from firmware_sim.pty import PseudoTerminal
from ingest.mqtt_client import IngestClient
from tests.services import wait_until

_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/usr/local/sbin"])
MOSQUITTO = shutil.which("mosquitto", path=_SEARCH_PATH)
OPENSSL = shutil.which("openssl")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(MOSQUITTO is None or OPENSSL is None, reason="needs mosquitto and openssl"),
]


def openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_pki(d: Path) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=envpatrol test CA",
            "-keyout", "ca.key", "-out", "ca.crt", cwd=d)  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        (d / f"{name}.ext").write_text(ext + "\n", encoding="utf-8")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)  # fmt: skip


@contextlib.contextmanager
def tls_broker(d: Path) -> Iterator[int]:
    """A private Mosquitto that requires client certificates from the CA made by `make_pki`."""
    make_pki(d)
    port = free_port()
    conf = d / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                f"user {pwd.getpwuid(os.getuid()).pw_name}",
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                f"cafile {d / 'ca.crt'}",
                f"certfile {d / 'server.crt'}",
                f"keyfile {d / 'server.key'}",
                "require_certificate true",
                "max_queued_messages 0",  # the default 1000 would drop most of a backlog
                "",
            ]
        ),
        encoding="utf-8",
    )
    assert MOSQUITTO is not None
    broker = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_until(listening, 10, "the TLS broker")
        yield port
    finally:
        broker.terminate()
        broker.wait(10)


def tls_settings(d: Path, port: int) -> MqttSettings:
    return MqttSettings.from_url(
        f"mqtts://127.0.0.1:{port}",
        ca_file=str(d / "ca.crt"),
        cert_file=str(d / "client.crt"),
        key_file=str(d / "client.key"),
    )


def test_agent_publishes_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    box, gps = PseudoTerminal(), PseudoTerminal()  # a silent box: only status and health flow
    with tls_broker(tmp_path) as port:
        try:
            edge_toml = tmp_path / "edge.toml"
            edge_toml.write_text(
                f"""vehicle = "tls-01"
[box]
port = "{box.path}"
[gps]
port = "{gps.path}"
[mqtt]
url = "mqtts://127.0.0.1:{port}"
    ca_file = "{tmp_path / "ca.crt"}"
    cert_file = "{tmp_path / "client.crt"}"
    key_file = "{tmp_path / "client.key"}"
[outbox]
path = "{tmp_path / "outbox.sqlite3"}"
""",
                encoding="utf-8",
            )
            agent = Agent(load_edge_settings(str(edge_toml), {}))
            stop = threading.Event()
            thread = threading.Thread(target=agent.run, args=(stop,))
            thread.start()
            try:
                wait_until(lambda: agent.publisher.connected, 15, "a TLS connection")
                assert agent.publisher.counters.connects == 1
            finally:
                stop.set()
                thread.join(30)
        finally:
            box.close()
            gps.close()


def test_ingest_client_drains_a_backlog_over_tls(tmp_path: Path) -> None:
    """The ingest's client reads through its buffer on top of TLS records: every queued message
    arrives once, intact, and its batched acknowledgements clear the session."""
    n = 3000
    payloads = [f"reading {i:05d} ".encode() * (1 + i % 40) for i in range(n)]
    with tls_broker(tmp_path) as port:
        settings = tls_settings(tmp_path, port)
        props = connect_properties(session_expiry_s=300, receive_maximum=1000)

        def ingest_client() -> IngestClient:
            client = make_client(settings, "tls-ingest", clean_start=False, factory=IngestClient)
            assert isinstance(client, IngestClient)
            client.manual_ack_set(True)
            return client

        # the session and its subscription first, then the backlog while it is away
        first = ingest_client()
        subscribed = threading.Event()
        first.on_subscribe = lambda *_a: subscribed.set()
        first.on_connect = lambda c, *_a: c.subscribe("envpatrol/v1/+/readings", qos=1)
        first.connect("127.0.0.1", port, 30, clean_start=False, properties=props)
        first.loop_start()
        wait_until(subscribed.is_set, 15, "the subscription")
        first.disconnect()
        first.loop_stop()
        publisher = make_client(settings, "tls-publisher")
        publisher.connect("127.0.0.1", port, 30)
        publisher.loop_start()
        infos = [
            publisher.publish(f"envpatrol/v1/v{i % 7}/readings", p, qos=1)
            for i, p in enumerate(payloads)
        ]
        for info in infos:
            info.wait_for_publish(15)
        publisher.disconnect()
        publisher.loop_stop()

        received: list[bytes] = []
        mids: list[int] = []
        lock = threading.Lock()

        def on_message(client: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
            with lock:
                received.append(bytes(message.payload))
                mids.append(message.mid)
                if len(mids) >= 250:
                    assert isinstance(client, IngestClient)
                    client.ack_all(mids[:])
                    mids.clear()

        second = ingest_client()
        second.on_message = on_message
        second.connect("127.0.0.1", port, 30, clean_start=False, properties=props)
        second.loop_start()
        try:
            wait_until(lambda: len(received) >= n, 30, f"{n} messages over TLS")
            with lock:
                second.ack_all(mids[:])
                mids.clear()
        finally:
            second.disconnect()
            second.loop_stop()
        assert sorted(received) == sorted(payloads)

        # everything was acknowledged: the session holds nothing more
        third = ingest_client()
        again: list[bytes] = []
        third.on_message = lambda _c, _u, m: again.append(bytes(m.payload))
        connected = threading.Event()
        third.on_connect = lambda *_a: connected.set()
        third.connect("127.0.0.1", port, 30, clean_start=False, properties=props)
        third.loop_start()
        try:
            wait_until(connected.is_set, 15, "reconnecting")
            # a probe through the same session marks the end of anything redelivered
            probe = make_client(settings, "tls-probe")
            probe.connect("127.0.0.1", port, 30)
            probe.loop_start()
            probe.publish("envpatrol/v1/probe/readings", b"end", qos=1).wait_for_publish(15)
            probe.disconnect()
            probe.loop_stop()
            wait_until(lambda: b"end" in again, 15, "the probe")
        finally:
            third.disconnect()
            third.loop_stop()
        assert again == [b"end"]
