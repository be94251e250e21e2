"""The agent's TLS settings against a real Mosquitto that requires client certificates:
a private CA made with `openssl`, a server certificate for 127.0.0.1, a client certificate."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.config import load_edge_settings
from firmware_sim.embedded import free_port
from firmware_sim.pty import PseudoTerminal

_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/usr/local/sbin"])
MOSQUITTO = shutil.which("mosquitto", path=_SEARCH_PATH)
OPENSSL = shutil.which("openssl")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(MOSQUITTO is None or OPENSSL is None, reason="needs mosquitto and openssl"),
]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


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


def test_agent_publishes_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    make_pki(tmp_path)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                f"user {pwd.getpwuid(os.getuid()).pw_name}",
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                f"cafile {tmp_path / 'ca.crt'}",
                f"certfile {tmp_path / 'server.crt'}",
                f"keyfile {tmp_path / 'server.key'}",
                "require_certificate true",
                "",
            ]
        ),
        encoding="utf-8",
    )
    assert MOSQUITTO is not None
    broker = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    box, gps = PseudoTerminal(), PseudoTerminal()  # a silent box: only status and health flow
    try:

        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_until(listening, 10, "the TLS broker")
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
        broker.terminate()
        broker.wait(10)
        box.close()
        gps.close()
