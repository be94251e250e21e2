"""Finding (or starting) the real PostgreSQL and MQTT broker the integration tests talk to.

Scratch databases are the store's (`store.scratch`); what is the tests' own is starting the
embedded database or broker the demo uses when the machine has neither.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import cache

from store import scratch
from store.scratch import scratch_database, scratch_template, with_database

__all__ = [
    "admin_database_url",
    "mqtt_url",
    "scratch_database",
    "scratch_template",
    "with_database",
]


def _embedded_database() -> str:
    from demo.embedded import EmbeddedDatabase

    return EmbeddedDatabase.start().url


@cache
def admin_database_url() -> str:
    return scratch.admin_database_url(start=_embedded_database)


@cache
def mqtt_url() -> str:
    url = os.environ.get("ENVPATROL_TEST_MQTT_URL")
    if url:
        return url
    if scratch.answers("127.0.0.1", 1883):
        return "mqtt://127.0.0.1:1883"
    from demo.embedded import EmbeddedBroker

    broker = EmbeddedBroker.start()
    return broker.url


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, every: float = 0.05
) -> None:
    """Wait for `condition` with a deadline: the tests wait on conditions, never on sleeps."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)
