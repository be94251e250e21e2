"""Private RabbitMQ (MQTT plugin) and NATS (MQTT gateway) servers for the broker portability tests.

Each runs as a process of the test's own, on free loopback ports, with its data in a test
directory, and can be stopped and started again on the same ports with the same data: what a
broker restart is. Both speak MQTT 3.1.1 only, so their URLs carry `?protocol=3.1.1`. Neither
needs authentication here (the shipped Mosquitto configuration's tests cover accounts and ACLs).

RabbitMQ is an Erlang node: it gets a node name, a cookie in a private HOME, and an epmd of its
own on a private port (started here, so it is stopped here too: an epmd that Erlang starts by
itself outlives the node). `RUNNING_UNDER_SYSTEMD` makes the start script exec the VM, so the
process started here is the node itself and SIGTERM shuts it down in order.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Protocol

import pytest

from demo.embedded import free_port
from tests.services import wait_until

_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", os.defpath), "/usr/lib/rabbitmq/bin", "/usr/sbin", "/usr/local/sbin"]
)
# The start script itself (not Debian's /usr/sbin wrapper, which switches to the rabbitmq user).
RABBITMQ_SERVER = (
    "/usr/lib/rabbitmq/bin/rabbitmq-server"
    if Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists()
    else shutil.which("rabbitmq-server", path=_SEARCH_PATH)
)
EPMD = shutil.which("epmd", path=os.pathsep.join([_SEARCH_PATH, "/usr/lib/erlang/bin"]))
NATS_SERVER = shutil.which("nats-server", path=_SEARCH_PATH)

needs_rabbitmq = pytest.mark.skipif(
    RABBITMQ_SERVER is None or EPMD is None,
    reason="needs RabbitMQ (`rabbitmq-server`, with the rabbitmq_mqtt plugin) and Erlang's "
    "`epmd` (Debian: apt-get install rabbitmq-server)",
)
needs_nats = pytest.mark.skipif(
    NATS_SERVER is None,
    reason="needs the NATS server `nats-server` 2.2 or later (its MQTT gateway)",
)

START_TIMEOUT_S = 60.0  # RabbitMQ takes 5-15 s on a loaded machine
STOP_TIMEOUT_S = 30.0
# Unacknowledged QoS 1 messages a broker sends one subscriber before waiting for its PUBACKs.
# The ingest acknowledges a batch after its COMMIT, so this bounds how many messages one batch
# can hold: RabbitMQ's default (10) makes every batch wait out the batch window for 10 messages.
INFLIGHT = 2000


class MqttServer(Protocol):
    name: str

    @property
    def url(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def log(self) -> str: ...


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)


class _Server:
    name = ""
    ready_line = ""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "server.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}?protocol=3.1.1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        raise NotImplementedError

    def _starts(self) -> int:
        return self.log().count(self.ready_line)

    def _launch(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        before = self._starts()
        with self.log_path.open("ab") as log:
            self.proc = proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.directory,
            )
        try:
            wait_until(
                lambda: proc.poll() is not None or self._starts() > before,
                START_TIMEOUT_S,
                f"{self.name} to start",
                every=0.2,
            )
        except AssertionError:
            self.stop()
            raise AssertionError(f"{self.name} did not start:\n{self.log()[-3000:]}") from None
        if proc.poll() is not None:
            raise AssertionError(f"{self.name} exited:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM: the server shuts down in order, keeping what it persists."""
        proc, self.proc = self.proc, None
        _stop(proc)

    def close(self) -> None:
        self.stop()


class RabbitMq(_Server):
    """A RabbitMQ node with only the MQTT plugin and only an MQTT listener."""

    name = "RabbitMQ"
    ready_line = "Server startup complete"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.node = f"ept{secrets.token_hex(4)}@localhost"
        self.epmd_port = free_port()
        self.dist_port = free_port()
        home = directory / "home"
        home.mkdir(exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        (directory / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (directory / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    "listeners.tcp = none",
                    f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}",
                    "mqtt.allow_anonymous = true",
                    f"mqtt.prefetch = {INFLIGHT}",
                    "loopback_users = none",
                    "log.console = true",
                    "log.console.level = info",
                    "log.file = false",
                    "",
                ]
            )
        )
        self.env = {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(free_port()),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(directory / "rabbitmq.pid"),
            "RUNNING_UNDER_SYSTEMD": "1",
        }
        self.epmd: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert RABBITMQ_SERVER is not None
        assert EPMD is not None
        if self.epmd is None:
            self.epmd = subprocess.Popen(
                [EPMD, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self._launch([RABBITMQ_SERVER], self.env)

    def close(self) -> None:
        self.stop()
        epmd, self.epmd = self.epmd, None
        _stop(epmd)


class Nats(_Server):
    """A NATS server with JetStream (which its MQTT sessions and QoS 1 messages live in) and an
    MQTT listener."""

    name = "NATS"
    ready_line = "Server is ready"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.client_port = free_port()
        self.conf = directory / "nats.conf"
        self.conf.write_text(
            "\n".join(
                [
                    f"server_name: ept{secrets.token_hex(4)}",
                    f"listen: 127.0.0.1:{self.client_port}",
                    "jetstream {",
                    f'  store_dir: "{directory / "jetstream"}"',
                    "  max_memory_store: 64MB",
                    "  max_file_store: 1GB",
                    "}",
                    "mqtt {",
                    f"  listen: 127.0.0.1:{self.port}",
                    f"  max_ack_pending: {INFLIGHT}",
                    '  ack_wait: "5s"',
                    "}",
                    "",
                ]
            )
        )

    def start(self) -> None:
        assert NATS_SERVER is not None
        self._launch([NATS_SERVER, "-c", str(self.conf)])
