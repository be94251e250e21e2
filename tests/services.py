"""Finding (or starting) the real PostgreSQL and MQTT broker the integration tests talk to."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from functools import cache
from urllib.parse import urlsplit, urlunsplit

import psycopg


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@cache
def admin_database_url() -> str:
    url = os.environ.get("ENVPATROL_TEST_DATABASE_URL")
    if url:
        return url
    if _answers("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    from demo.embedded import EmbeddedDatabase

    db = EmbeddedDatabase.start()
    return db.url


@cache
def mqtt_url() -> str:
    url = os.environ.get("ENVPATROL_TEST_MQTT_URL")
    if url:
        return url
    if _answers("127.0.0.1", 1883):
        return "mqtt://127.0.0.1:1883"
    from demo.embedded import EmbeddedBroker

    broker = EmbeddedBroker.start()
    return broker.url


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextlib.contextmanager
def scratch_database(admin_url: str, h3_resolution: int = 10) -> Iterator[str]:
    from store.migrate import migrate

    name = f"envpatrol_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = with_database(admin_url, name)
    try:
        with psycopg.connect(url) as conn:
            migrate(conn, h3_resolution=h3_resolution)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
