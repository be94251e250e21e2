"""A vehicle installs only the edge's dependencies: prove the agent imports and runs there."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.install_fixtures import install_role, outside_the_checkout

pytestmark = pytest.mark.integration

SERVER_ONLY = ("fastapi", "psycopg", "numpy", "h3", "uvicorn", "orjson")

PROBE = """
import importlib.util, json, sys, tempfile, threading, time
from datetime import datetime, timezone
from edge.agent import Agent
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.mqtt import MqttSettings
from edge.profile import load_profile
from firmware_sim.drive import CruiseDrive, SimClock
from firmware_sim.field import SHUANGJING_SOURCES, PollutionField
from firmware_sim.route import SHUANGJING_LOOP
from firmware_sim.vehicle import SimVehicle

clock = SimClock(datetime.now(timezone.utc), speed=100)
vehicle = SimVehicle("lean-01", load_profile("default-multi"), CruiseDrive(SHUANGJING_LOOP, clock.start),
                     clock, PollutionField(SHUANGJING_SOURCES))
vehicle.start()
settings = EdgeSettings(vehicle="lean-01", mqtt=MqttSettings.from_url(sys.argv[1], topic_root=sys.argv[2]),
                        box=BoxSettings(port=vehicle.box_path), gps=GpsSettings(port=vehicle.gps_path),
                        outbox_path=tempfile.mkdtemp() + "/outbox.sqlite3", time_scale=100)
agent = Agent(settings)
stop = threading.Event()
thread = threading.Thread(target=agent.run, args=(stop,))
thread.start()
deadline = time.monotonic() + 30
while time.monotonic() < deadline and agent.publisher.counters.acked_readings < 5:
    time.sleep(0.05)
stop.set(); thread.join(); vehicle.stop()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {SERVER})
print(json.dumps({"acked": agent.publisher.counters.acked_readings, "server_modules": loaded}))
""".replace("{SERVER}", repr(set(SERVER_ONLY)))


def test_edge_agent_runs_with_only_the_edge_extra(
    tmp_path: Path, broker_url: str, topic_root: str
) -> None:
    vehicle = install_role(tmp_path, "edge")
    for module in SERVER_ONLY:
        assert not vehicle.can_import(module), f"{module} is installed on the vehicle"
    help_run = vehicle.run("ingest", cwd=tmp_path)
    assert help_run.returncode == 3
    assert "envpatrol[ingest]" in help_run.stderr
    run = subprocess.run(
        [str(vehicle.python), "-c", PROBE, broker_url, topic_root],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=outside_the_checkout(),
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.stdout.strip().splitlines()[-1]
    assert '"server_modules": []' in result
    assert '"acked": 0' not in result
