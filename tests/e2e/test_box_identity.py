"""The right box, through pseudo-terminals: the agent's box port is a path that is re-pointed,
as /dev/serial/by-id/... is when USB adapters re-enumerate. While it leads to another vehicle's
simulated box the agent takes no reading from it; once the vehicle's own box is back on the path
the readings resume."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.mqtt import MqttSettings
from edge.profile import load_profile
from edge.wire import Reading
from firmware_sim.box import box_identity
from firmware_sim.drive import CruiseDrive, SimClock
from firmware_sim.field import SHUANGJING_SOURCES, PollutionField
from firmware_sim.route import SHUANGJING_LOOP
from firmware_sim.vehicle import SimVehicle, TruthRecord

pytestmark = pytest.mark.e2e

PROFILE = load_profile("default-multi")


def vehicle(name: str, seed: int, truth: list[TruthRecord]) -> SimVehicle:
    clock = SimClock(datetime.now(UTC) - timedelta(hours=2), speed=50.0)
    drive = CruiseDrive(SHUANGJING_LOOP, clock.start, speed_mps=7.0)
    return SimVehicle(
        name,
        PROFILE,
        drive,
        clock,
        PollutionField(SHUANGJING_SOURCES, seed=seed),
        seed=seed,
        on_truth=truth.append,
    )


def point(link: Path, target: str) -> None:
    """Re-point the path in one step, as udev replaces a by-id link."""
    fresh = link.with_name(link.name + ".new")
    fresh.unlink(missing_ok=True)
    fresh.symlink_to(target)
    os.replace(fresh, link)


def poll_until(agent: Agent, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        agent.poll_once()


@pytest.fixture
def vehicles() -> Iterator[list[SimVehicle]]:
    started: list[SimVehicle] = []
    yield started
    for v in started:
        v.stop()


def test_another_box_on_the_path_yields_no_readings_and_the_right_one_resumes(
    tmp_path: Path, vehicles: list[SimVehicle]
) -> None:
    ours: list[TruthRecord] = []
    theirs: list[TruthRecord] = []
    right = vehicle("right-01", 1, ours)
    other = vehicle("other-02", 2, theirs)
    for v in (right, other):
        v.start()
    link = tmp_path / "usb-envpatrol-box-if00-port0"
    point(link, right.box_path)
    readings: list[Reading] = []
    settings = EdgeSettings(
        vehicle="right-01",
        mqtt=MqttSettings.from_url("mqtt://127.0.0.1:1"),  # never started: no broker needed
        box=BoxSettings(port=str(link), timeout_s=0.3, retries=1),
        gps=GpsSettings(port=right.gps_path),
        outbox_path=str(tmp_path / "outbox.sqlite3"),
    )
    agent = Agent(settings, on_reading=readings.append)
    try:
        poll_until(agent, lambda: len(readings) >= 3, 20, "readings from the vehicle's own box")
        own = box_identity(PROFILE, "right-01")
        assert agent.status("online")["box"] == own.as_dict()

        right.stop()  # its pseudo-terminal is gone; the path now leads to the other box
        point(link, other.box_path)
        before = len(readings)
        poll_until(
            agent,
            lambda: agent.box.counters.identity_mismatches >= 3,
            20,
            "the other box to be refused",
        )
        assert len(readings) == before
        assert other.box.requests >= 3  # the agent was talking to it, and only asked who it is
        assert theirs == []  # so it never served a reading
        status = agent.status("online")
        assert status["box"] == own.as_dict()
        assert status["box_refused"] == box_identity(PROFILE, "other-02").as_dict()
        assert agent.health()["box"]["identity_mismatches"] >= 3

        back = vehicle("right-01", 3, ours)  # the vehicle's own box, on a new terminal
        vehicles.append(back)
        back.start()
        point(link, back.box_path)
        poll_until(agent, lambda: len(readings) >= before + 3, 20, "readings to resume")
        assert agent.status("online")["box_refused"] is None
    finally:
        agent.box.close()
        agent.outbox.close()
        vehicles.append(other)

    # Every reading is an answer the vehicle's own box served, none the other's.
    served = [record.served.values for record in ours]
    assert all(reading.values in served for reading in readings)
    assert len(readings) >= 6
