"""Shared fixtures: a fresh database per test module on the real PostgreSQL, a broker address.

The machine's PostgreSQL (ENVPATROL_TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres)
and Mosquitto (ENVPATROL_TEST_MQTT_URL, default mqtt://127.0.0.1:1883) are used when they answer;
otherwise the tests that need them start the embedded ones the demo uses.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.services import admin_database_url, mqtt_url, scratch_database, scratch_template

# CI shares two cores with the services under test: a property test's example is judged on what
# it checks, not on how long generating it took while the machine was busy.
settings.register_profile("envpatrol", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("envpatrol")


@pytest.fixture(scope="session")
def admin_url() -> str:
    return admin_database_url()


@pytest.fixture(scope="session")
def broker_url() -> str:
    return mqtt_url()


@pytest.fixture(scope="session")
def migrated_template(admin_url: str) -> Iterator[str | None]:
    with scratch_template(admin_url) as name:
        yield name


@pytest.fixture
def database_url(admin_url: str, migrated_template: str | None) -> Iterator[str]:
    """A new, migrated database (plain PostgreSQL or TimescaleDB), dropped afterwards."""
    with scratch_database(admin_url, template=migrated_template) as url:
        yield url


@pytest.fixture
def topic_root() -> str:
    """A topic root of its own, so tests sharing a broker never see each other's messages."""
    return f"eptest-{uuid.uuid4().hex[:10]}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tier runs without coverage tracing: it drives simulated vehicles, agents,
    the ingest and the analysis in one process, which tracing slows several times over (a
    starved agent misses its box's answers), and the unit and integration tiers measure the
    same code."""
    e2e = Path(__file__).parent / "e2e"
    for item in items:
        if e2e in item.path.parents:
            item.add_marker(pytest.mark.no_cover)


def pytest_report_header() -> list[str]:
    return [
        "database: "
        + os.environ.get("ENVPATROL_TEST_DATABASE_URL", "machine PostgreSQL or embedded"),
        "broker: " + os.environ.get("ENVPATROL_TEST_MQTT_URL", "machine Mosquitto or embedded"),
    ]
