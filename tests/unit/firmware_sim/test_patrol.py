"""The patrol runner over several shifts, on a simulated clock the test moves (60x and faster):
the box and the GPS are silent outside the shift windows, each window is a new drive from the
vehicle's starting point and a new power-on, and an edge agent with the settings the simulator
writes flags warm-up exactly when the simulated modules are warming up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.mqtt import MqttSettings
from edge.profile import load_profile
from edge.quality import QualitySettings
from edge.wire import Reading
from firmware_sim.cli import sim_quality
from firmware_sim.drive import SimClock
from firmware_sim.patrol import ScenarioRun, build_route
from firmware_sim.scenario import Scenario, parse_scenario
from firmware_sim.truth import read_truth
from tests.unit.edge.ports import AnsweringPort

SCENARIO = """
name = "two-shifts"
seed = 5
start = 2026-03-02T07:00:00+08:00
duration_h = 3
[[routes]]
name = "loop"
builtin = "shuangjing-loop"
[[routes]]
name = "guangqu"
points = [[39.89350, 116.46180], [39.89365, 116.46800], [39.89375, 116.47450]]
[[vehicles]]
name = "p1"
route = "loop"
offset_m = 300
[[vehicles.shifts]]
start = "07:00"
end = "07:40"
[[vehicles.shifts]]
start = "09:00"
end = "09:40"
routes = ["guangqu"]
[[vehicles]]
name = "p2"
profile = "gasboard-f32"
[[sources]]
name = "gate"
at = [39.89368, 116.47020]
[sources.amplitude]
pm10 = 150.0
"""
POLL_S = 10


class FakeWall:
    """Wall seconds for the simulator's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class DriveClock:
    """The agent's clock: drive seconds, moved with the simulated clock."""

    def __init__(self, sim: SimClock) -> None:
        self.sim = sim

    def monotonic(self) -> float:
        return 50_000.0 + (self.sim.now() - self.sim.start).total_seconds()

    def wall(self) -> datetime:
        return self.sim.now()

    def boottime(self) -> float | None:
        return 3.0e7  # a host up for days, scaled by the speed-up: no warm-up from it


def make_run(tmp_path: Path, speed: float) -> tuple[Scenario, ScenarioRun, FakeWall]:
    scenario = parse_scenario(SCENARIO, "two-shifts.toml")
    wall = FakeWall()
    clock = SimClock(scenario.start, speed=speed, monotonic=wall)
    run = ScenarioRun(scenario, clock=clock, truth_path=str(tmp_path / "truth.jsonl.gz"))
    return scenario, run, wall


def close(run: ScenarioRun) -> None:
    """The devices were never started: close their terminals and the truth file."""
    for vehicle in run.vehicles:
        vehicle.box.pty.close()
        vehicle.gps.pty.close()
    if run.truth is not None:
        run.truth.close()


def at(run: ScenarioRun, wall: FakeWall, moment: datetime) -> None:
    wall.now = 100.0 + (moment - run.clock.start).total_seconds() / run.clock.speed


@pytest.mark.parametrize("speed", [60.0, 600.0])
def test_the_box_and_gps_are_powered_only_inside_the_windows(tmp_path: Path, speed: float) -> None:
    scenario, run, wall = make_run(tmp_path, speed)
    try:
        p1, p2 = run.vehicles
        first, second = p1.windows
        assert (first.route, second.route) == ("loop", "guangqu")
        assert len(p2.windows) == 1  # no shifts: the whole run
        request = load_profile("default-multi").request
        loop = build_route(scenario.routes["loop"])
        guangqu = build_route(scenario.routes["guangqu"])
        for moment, on in [
            (first.on, True),
            (first.off - timedelta(seconds=1), True),
            (first.off, False),
            (first.off + timedelta(minutes=40), False),
            (second.on - timedelta(seconds=1), False),
            (second.on, True),
            (second.off, False),
            (scenario.end - timedelta(seconds=1), False),
        ]:
            at(run, wall, moment)
            assert run.clock.now() == moment
            assert p1.powered() is on, moment
            assert bool(p1.box.answer(request)) is on, moment
            assert bool(p1.gps.sentences(moment)) is on, moment
            assert p2.powered(), moment
        # Each window is a new drive from the vehicle's starting point on the window's route,
        # and between windows the vehicle stands where the last one ended.
        start = p1.drive.state(first.on)
        assert (start.lat, start.lon) == pytest.approx((loop.at(300).lat, loop.at(300).lon))
        again = p1.drive.state(second.on)
        assert (again.lat, again.lon) == pytest.approx((guangqu.at(300).lat, guangqu.at(300).lon))
        parked = p1.drive.state(first.off + timedelta(minutes=30))
        ended = p1.drive.state(first.off)
        assert parked.speed_mps == 0.0
        assert (parked.lat, parked.lon) == (ended.lat, ended.lon)
        assert run.remaining_wall_s() == pytest.approx(
            (scenario.end - run.clock.now()).total_seconds() / speed
        )
    finally:
        close(run)


@pytest.mark.parametrize("speed", [60.0, 240.0])
def test_an_agent_with_the_written_settings_flags_warm_up_after_each_power_on(
    tmp_path: Path, speed: float
) -> None:
    scenario, run, wall = make_run(tmp_path, speed)
    p1 = run.vehicles[0]
    profile = load_profile("default-multi")
    quality = QualitySettings(**sim_quality(scenario, profile, speed))
    assert quality.warmup_s == 600  # the slowest module's warm-up (electrochemical cells)
    settings = EdgeSettings(
        vehicle="p1",
        mqtt=MqttSettings.from_url("mqtt://127.0.0.1:1883"),
        box=BoxSettings(port="/dev/box", timeout_s=0.001, retries=0),
        gps=GpsSettings(port="/dev/gps"),
        outbox_path=str(tmp_path / "outbox.sqlite3"),
        time_scale=speed,
        quality=quality,
    )
    readings: list[tuple[datetime, Reading]] = []
    agent = Agent(
        settings,
        open_port=lambda *_: AnsweringPort.replying(p1.box.answer, timeout=0.0),
        clock=DriveClock(run.clock),
    )
    try:
        moment = scenario.start
        while moment < scenario.end:
            at(run, wall, moment)
            reading = agent.poll_once()
            if reading is not None:
                readings.append((moment, reading))
            moment += timedelta(seconds=POLL_S)
        assert agent.power.power_ons == 1  # the second shift: seen by the silence before it
        assert agent.health()["box"]["power_ons"] == 1
    finally:
        agent.outbox.close()
        close(run)
    first, second = p1.windows
    taken = [m for m, _ in readings]
    assert taken == [m for m in _grid(scenario.start, scenario.end) if p1.powered(m)]
    assert taken[0] == first.on
    assert second.on in taken
    truth = [r for r in read_truth(tmp_path / "truth.jsonl.gz") if r["type"] == "reading"]
    assert len(truth) == len(readings)
    for (moment, reading), record in zip(readings, truth, strict=True):
        assert record["time"].startswith(moment.strftime("%Y-%m-%dT%H:%M:%S"))
        flagged = any("warmup" in flags for flags in reading.channel_flags.values())
        assert flagged is record["warmup"], moment
    warm = [m for m, r in readings if "warmup" in r.channel_flags.get("no2", ())]
    assert warm[0] == first.on
    assert warm[-1] < second.on + timedelta(seconds=quality.warmup_s)
    assert any(m >= second.on for m in warm)


def _grid(start: datetime, end: datetime) -> list[datetime]:
    out = []
    moment = start
    while moment < end:
        out.append(moment)
        moment += timedelta(seconds=POLL_S)
    return out


def test_a_vehicle_without_any_window_stays_dark() -> None:
    text = SCENARIO.replace('start = "09:00"', 'start = "09:00"\nweekdays = [6]').replace(
        'start = "07:00"\nend = "07:40"', 'start = "07:00"\nend = "07:40"\nweekdays = [6]'
    )
    scenario = parse_scenario(text, "x.toml")
    wall = FakeWall()
    run = ScenarioRun(scenario, clock=SimClock(scenario.start, 100.0, monotonic=wall))
    try:
        p1 = run.vehicles[0]
        assert p1.windows == ()  # a Monday: the Sunday shifts never come
        assert not p1.powered()
        assert p1.gps.sentences(scenario.start) == b""
        assert p1.drive.state(scenario.start).speed_mps == 0.0
        assert datetime(2026, 3, 2, tzinfo=UTC) < scenario.end
    finally:
        close(run)
