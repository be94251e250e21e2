"""Two shifts of one simulated vehicle through pseudo-terminals and a real edge agent at 200x,
with the edge configuration the simulator writes: the box is switched off between the shifts
while the agent keeps running, and the agent flags warm-up after each switch-on, not between."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.config import load_edge_settings
from edge.profile import load_profile
from edge.wire import Reading
from firmware_sim.cli import sim_quality, write_edge_config
from firmware_sim.patrol import ScenarioRun
from firmware_sim.scenario import parse_scenario
from tests.services import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SPEED = 200.0
SCENARIO = """
name = "two-shifts"
seed = 3
start = 2026-03-02T07:00:00+08:00
duration_h = 1.5
[[vehicles]]
name = "{name}"
[[vehicles.shifts]]
start = "07:00"
end = "07:30"
[[vehicles.shifts]]
start = "07:50"
end = "08:20"
"""


def warm(reading: Reading) -> bool:
    return any("warmup" in flags for flags in reading.channel_flags.values())


def test_the_agent_warms_up_again_after_the_box_was_off_between_shifts(
    broker_url: str, topic_root: str, tmp_path: Path
) -> None:
    name = f"shift-{topic_root.removeprefix('eptest-')}"
    scenario = parse_scenario(SCENARIO.format(name=name), "two-shifts.toml")
    run = ScenarioRun(scenario, speed=SPEED)
    vehicle = run.vehicles[0]
    first, second = vehicle.windows
    quality = sim_quality(scenario, load_profile("default-multi"), SPEED)
    config = write_edge_config(tmp_path, vehicle, scenario.vehicles[0], SPEED, broker_url)
    settings = load_edge_settings(str(config), {})
    settings = replace(settings, mqtt=settings.mqtt.replace(topic_root=topic_root))
    readings: list[Reading] = []
    stop = threading.Event()
    run.start()
    agent = Agent(settings, on_reading=readings.append)
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: run.clock.now() >= scenario.end, 60, "the end of the second shift")
    finally:
        stop.set()
        thread.join(30)
        run.stop()

    warmup = timedelta(seconds=quality["warmup_s"])
    # The first answer after the break comes a timed-out poll or two late: each attempt waits
    # its timeout in wall seconds, many drive seconds at this speed.
    late = timedelta(seconds=4 * settings.box.timeout_s * SPEED)
    dated = [r for r in readings if r.time_source == "gnss"]
    assert dated
    for r in dated:
        assert any(w.on <= r.time <= w.off + timedelta(seconds=20) for w in (first, second)), r
    in_first = [r for r in dated if r.time < first.off + timedelta(seconds=20)]
    in_second = [r for r in dated if r.time >= second.on]
    assert in_first
    assert in_second
    assert warm(readings[0])  # the agent started with the box: warm-up from its start
    assert all(not warm(r) for r in in_first if r.time >= first.on + warmup + late)
    assert warm(in_second[0])  # switched on again: warming up again
    assert all(warm(r) for r in in_second if r.time < second.on + warmup)
    assert any(not warm(r) for r in in_second)
    assert all(not warm(r) for r in in_second if r.time >= second.on + warmup + late)
    assert agent.power.power_ons == 1
