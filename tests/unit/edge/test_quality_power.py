"""Warm-up from the box's power-on: at the agent's start as its settings say, and again whenever
the box answers after a silence in which whole polls failed (switched off and on while the agent
kept running). The rule alone, its history over any sequence, and the agent on a fake clock with
an in-memory box."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.agent import Agent
from edge.config import BoxSettings, EdgeSettings, GpsSettings, load_edge_settings
from edge.errors import SettingsError
from edge.modbus import ReadRequest
from edge.mqtt import MqttSettings
from edge.quality import BoxPower, QualitySettings, box_was_off
from tests.unit.edge.ports import AnsweringPort

SETTINGS = QualitySettings(warmup_s=300.0, box_off_s=60.0)


def test_only_a_long_silence_with_failed_polls_is_a_power_off() -> None:
    assert box_was_off(61.0, 1, SETTINGS)
    assert not box_was_off(60.0, 1, SETTINGS)  # not longer than the setting
    assert not box_was_off(3600.0, 0, SETTINGS)  # the agent stalled: nothing was asked
    assert not box_was_off(3600.0, 5, QualitySettings(box_off_s=0.0))  # rule switched off


# One poll: (drive seconds since the previous poll, whether the box answered).
polls = st.lists(st.tuples(st.floats(0.0, 400.0), st.booleans()), max_size=60)


@given(st.floats(0.0, 1e6), polls)
def test_uptime_is_time_since_the_last_power_on_and_never_negative(
    powered_for: float, sequence: list[tuple[float, bool]]
) -> None:
    power = BoxPower.at_start(SETTINGS, 1000.0, powered_for)
    now, heard, failed, switched_on = 1000.0, 1000.0, 0, 1000.0 - powered_for
    for step, answered in sequence:
        now += step
        if not answered:
            power.no_answer()
            failed += 1
            continue
        uptime = power.answered(now)
        if failed and now - heard > SETTINGS.box_off_s:
            switched_on = now
        heard, failed = now, 0
        assert uptime == pytest.approx(now - switched_on)
        assert uptime >= 0.0


@given(st.lists(st.floats(0.0, 400.0), max_size=60))
def test_a_box_that_always_answers_is_never_switched_on_again(steps: list[float]) -> None:
    power = BoxPower.at_start(SETTINGS, 0.0, 20.0)
    now = 0.0
    for step in steps:
        now += step
        assert power.answered(now) == pytest.approx(now + 20.0)
    assert power.power_ons == 0


# -- the agent -------------------------------------------------------------------------------------


class FakeClock:
    """Drive seconds, moved by the test; the host booted long ago."""

    def __init__(self) -> None:
        self.now = 5000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

    def boottime(self) -> float | None:
        return 86400.0


class SwitchedBox:
    """A box on its own switch: answers only while on."""

    def __init__(self) -> None:
        self.on = True

    def __call__(self, request: ReadRequest) -> list[int] | None:
        return list(range(1, request.count + 1)) if self.on else None


def make_agent(
    tmp_path: Path, clock: FakeClock, box: SwitchedBox, warmup_from: str = "boot"
) -> Agent:
    settings = EdgeSettings(
        vehicle="v",
        mqtt=MqttSettings.from_url("mqtt://127.0.0.1:1883"),
        box=BoxSettings(port="/dev/box", timeout_s=0.001, retries=0, identity=False),
        gps=GpsSettings(port="/dev/gps"),
        outbox_path=str(tmp_path / "outbox.sqlite3"),
        quality=replace(SETTINGS, warmup_from=warmup_from),
    )
    return Agent(settings, open_port=lambda *_: AnsweringPort(box, timeout=0.0), clock=clock)


def warming(agent: Agent) -> bool:
    reading = agent.poll_once()
    assert reading is not None
    return any("warmup" in flags for flags in reading.channel_flags.values())


def test_the_box_switched_off_and_on_warms_up_again_from_its_first_answer(
    tmp_path: Path,
) -> None:
    clock, box = FakeClock(), SwitchedBox()
    agent = make_agent(tmp_path, clock, box)  # power-on at the host's boot, long ago
    try:
        assert not warming(agent)
        box.on = False
        for _ in range(12):  # two minutes of polls in vain
            clock.now += 10
            assert agent.poll_once() is None
        box.on = True
        clock.now += 10
        assert warming(agent)  # its first answer is the power-on ...
        assert agent.power.switched_on_s == clock.now
        clock.now += 299
        assert warming(agent)
        clock.now += 1
        assert not warming(agent)  # ... and warm-up lasts warmup_s from it
        assert agent.power.power_ons == 1
        assert agent.health()["box"]["power_ons"] == 1
    finally:
        agent.outbox.close()


def test_a_short_silence_or_a_stalled_agent_restarts_nothing(tmp_path: Path) -> None:
    clock, box = FakeClock(), SwitchedBox()
    agent = make_agent(tmp_path, clock, box)
    try:
        assert not warming(agent)
        box.on = False
        for _ in range(5):  # 50 s without an answer: a flaky line, not a power cycle
            clock.now += 10
            assert agent.poll_once() is None
        box.on = True
        clock.now += 10
        assert not warming(agent)
        clock.now += 3600  # the agent itself did not poll for an hour
        assert not warming(agent)
        assert agent.power.power_ons == 0
    finally:
        agent.outbox.close()


def test_a_box_silent_since_the_agent_started_warms_up_from_its_first_answer(
    tmp_path: Path,
) -> None:
    clock, box = FakeClock(), SwitchedBox()
    box.on = False
    agent = make_agent(tmp_path, clock, box, warmup_from="start")
    try:
        for _ in range(30):  # the agent was up before the box was switched on
            clock.now += 10
            assert agent.poll_once() is None
        box.on = True
        clock.now += 10
        assert warming(agent)
        assert agent.power.switched_on_s == clock.now
    finally:
        agent.outbox.close()


@pytest.mark.parametrize(("warmup_from", "flagged"), [("boot", False), ("start", True)])
def test_at_start_power_on_is_the_boot_or_the_agent_s_start(
    tmp_path: Path, warmup_from: str, flagged: bool
) -> None:
    clock, box = FakeClock(), SwitchedBox()
    agent = make_agent(tmp_path, clock, box, warmup_from=warmup_from)
    try:
        assert warming(agent) is flagged
        assert agent.power.power_ons == 0
    finally:
        agent.outbox.close()


def test_box_off_s_is_a_quality_setting(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text('vehicle = "v"\n[quality]\nbox_off_s = 900\n', encoding="utf-8")
    assert load_edge_settings(str(path), {}).quality.box_off_s == 900.0
    assert QualitySettings().box_off_s == 60.0
    path.write_text('vehicle = "v"\n[quality]\nbox_off_s = -1\n', encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        load_edge_settings(str(path), {})
    assert info.value.subject == "quality"
    assert "box_off_s" in info.value.problem
