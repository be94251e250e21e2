"""`envpatrol api` in a child process on a free port, answering before it is handed out: for
runs of the whole system (the end-to-end tests, the generated-world pipeline bench)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from demo.embedded import free_port
from edge.errors import EnvpatrolError

__all__ = ["ApiExitedError", "api_server"]


class ApiExitedError(EnvpatrolError, RuntimeError):
    """The API process ended before it answered; `stderr` is what it wrote."""

    def __init__(self, stderr: bytes) -> None:
        super().__init__("api", f"exited before it answered: {stderr.decode(errors='replace')}")
        self.stderr = stderr


@contextmanager
def api_server(database_url: str, timeout_s: float = 60.0) -> Iterator[str]:
    """The API over `database_url`; yields its base URL once /healthz answers 200."""
    port = free_port()
    env = {**os.environ, "ENVPATROL_DATABASE_URL": database_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise ApiExitedError(process.stderr.read() if process.stderr else b"")
            try:
                # the URL is built above: http to loopback only
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{base}/healthz did not answer within {timeout_s}s")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
