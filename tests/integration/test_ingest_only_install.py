"""An ingest host installs only the ingest's extra: no analysis (scipy, PySAL, numpy) and no web
stack. Prove `envpatrol migrate` and `envpatrol ingest` run there, and that the other server
commands name the extra they lack."""

from __future__ import annotations

import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from tests.integration.ingest_fixtures import (
    Publisher,
    reading,
    recent_start,
    wait_for,
    wait_until_subscribed,
)
from tests.integration.install_fixtures import install_role, outside_the_checkout

pytestmark = pytest.mark.integration

NOT_ON_AN_INGEST_HOST = ("scipy", "esda", "libpysal", "numpy", "fastapi", "uvicorn")
READINGS = 5


def _stored(database_url: str, vehicle: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM reading WHERE vehicle = %s", (vehicle,)).fetchone()
    assert row is not None
    return int(row[0])


def test_ingest_runs_with_only_the_ingest_extra(
    tmp_path: Path, broker_url: str, topic_root: str, database_url: str
) -> None:
    host = install_role(tmp_path, "ingest")
    for module in NOT_ON_AN_INGEST_HOST:
        assert not host.can_import(module), f"{module} is installed on the ingest host"
    for command, extra in (("api", "api"), ("analyse", "hotspots")):
        lacking = host.run(command, cwd=tmp_path)
        assert lacking.returncode == 3, lacking.stderr
        assert f"envpatrol[{extra}]" in lacking.stderr

    migrated = host.run("migrate", cwd=tmp_path, env={"ENVPATROL_DATABASE_URL": database_url})
    assert migrated.returncode == 0, migrated.stderr[-3000:]

    config = tmp_path / "ingest.toml"
    config.write_text(
        f'[mqtt]\nurl = "{broker_url}"\ntopic_root = "{topic_root}"\n'
        f'client_id = "ingest-{uuid.uuid4().hex[:8]}"\n'
        f'[database]\nurl = "{database_url}"\n[ingest]\nbatch_max_wait_s = 0.05\n'
    )
    log_path = tmp_path / "ingest.log"
    with log_path.open("wb") as log:
        service = subprocess.Popen(
            [str(host.envpatrol), "ingest", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=outside_the_checkout(),
        )
    publisher = Publisher(broker_url, f"pub-{uuid.uuid4().hex[:8]}", root=topic_root)
    try:
        wait_until_subscribed(publisher, database_url)
        start = recent_start()
        vehicle = "ingest-host-01"
        publisher.publish(
            vehicle,
            [reading(vehicle, seq, start + timedelta(seconds=10 * seq)) for seq in range(READINGS)],
        )
        wait_for(lambda: _stored(database_url, vehicle) == READINGS, 30, "the readings stored")
        assert service.poll() is None, log_path.read_text()[-3000:]
    finally:
        publisher.close()
        service.terminate()
        service.wait(timeout=30)
