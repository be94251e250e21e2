"""The `envpatrol sim` and `envpatrol replay` commands: help, checks and clear errors."""

from __future__ import annotations

import threading
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from edge.agent import effective_profile
from edge.cli import main
from edge.config import load_edge_settings
from edge.profile import load_profile
from firmware_sim.cli import (
    describe,
    edge_config_text,
    find_scenario,
    module_warmup_s,
    short_breaks,
    sim_box_off_s,
)
from firmware_sim.scenario import parse_scenario

PROFILES = Path(__file__).resolve().parents[3] / "edge" / "profiles"


def test_sim_check_describes_the_worked_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--scenario", "shuangjing", "--check"]) == 0
    out = capsys.readouterr().out
    assert "vehicle patrol-02: route loop, box gasboard-f32" in out
    assert "source restaurant-street-middle (cooking, line, meals)" in out


def test_sim_refuses_a_bad_scenario_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("start = 2026-03-02T08:00:00Z\n[[vehicles]]\nname = 'a'\nspeed_kmh = 3\n")
    assert main(["sim", "--scenario", str(path), "--check"]) == 2
    assert "vehicles[0].speed_kmh: unknown key" in capsys.readouterr().err


def test_sim_names_the_builtin_scenarios_when_one_is_unknown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sim", "--scenario", "atlantis", "--check"]) == 2
    assert "known: shuangjing" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["sim", "replay"])
def test_help_has_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert f"envpatrol {command}" in out


def test_replay_refuses_what_is_not_a_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(b"not gzip")
    assert main(["replay", str(path)]) == 2
    assert "envpatrol replay: recording" in capsys.readouterr().err


def test_replay_speed_must_be_a_number_or_max(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "x.jsonl.gz", "--speed", "fast"])
    assert "'fast' is not a number or 'max'" in capsys.readouterr().err


def test_sim_check_lists_each_vehicle_s_windows_in_brief(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sim", "--scenario", "shuangjing-fortnight", "--check"]) == 0
    out = capsys.readouterr().out
    assert "for 336 h (14 days)" in out
    assert "vehicle patrol-02: route loop, box gasboard-f32" in out
    scenario = find_scenario("shuangjing-fortnight")
    for vehicle in scenario.vehicles:
        windows = scenario.windows(vehicle)
        assert f"    {len(windows)} shifts, " in out
        assert f"... and {len(windows) - 3} more" in out
    first = scenario.windows(scenario.vehicles[0])[0]
    assert f"{first.on + timedelta(hours=8):%a %Y-%m-%d %H:%M}" in out  # local time
    assert "source construction-gate-guangqu (dust, area 10 m around a point, always)" in out


def test_a_window_across_midnight_is_marked() -> None:
    scenario = parse_scenario(
        "start = 2026-03-02T18:00:00+08:00\nduration_h = 12\n"
        "[[vehicles]]\nname='night'\nshift=['22:00', '04:00']"
    )
    assert "Mon 2026-03-02 22:00-04:00 (+1 d) on shuangjing-loop" in describe(scenario)
    assert "1 shift, 6.0 h powered (local time, UTC+8)" in describe(scenario)


TINY = """
start = 2026-03-02T08:00:00+08:00
duration_h = 0.02
[[vehicles]]
name = "own-box"
profile = "boxes/mine.toml"
[[vehicles]]
name = "second-vendor"
profile = "gasboard-f32"
[sensors.no2]
warmup_s = 900
"""


def test_the_written_edge_configs_load_and_name_each_vehicle_s_box(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "boxes").mkdir()
    mine = tmp_path / "boxes" / "mine.toml"
    mine.write_text((PROFILES / "default-multi.toml").read_text("utf-8"), encoding="utf-8")
    scenario_path = tmp_path / "tiny.toml"
    scenario_path.write_text(TINY, encoding="utf-8")
    monkeypatch.setattr("firmware_sim.cli.stop_on_signals", threading.Event)
    monkeypatch.chdir(tmp_path / "boxes")  # neither the scenario's folder nor the configs'
    out = tmp_path / "run"
    assert (
        main(
            ["sim", "--scenario", str(scenario_path), "--speed", "1000", "--edge-configs", str(out)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"envpatrol edge --config {out / 'own-box.toml'}" in printed
    own = load_edge_settings(str(out / "own-box.toml"), {})
    other = load_edge_settings(str(out / "second-vendor.toml"), {})
    assert own.box.profile == str(mine.resolve())
    assert Path(own.box.profile).is_absolute()
    assert other.box.profile == "gasboard-f32"
    assert effective_profile(other).name == "gasboard-f32"
    assert effective_profile(own).name == "default-multi"
    for settings in (own, other):
        assert settings.time_scale == 1000.0
        assert settings.poll_interval_s == 10.0
        assert Path(settings.outbox_path).parent == out.resolve()
        assert settings.quality.warmup_from == "start"
        assert settings.quality.box_off_s == sim_box_off_s(1000.0) == 5000.0
    assert own.quality.warmup_s == 900.0  # the slowest of the box's simulated modules
    assert other.quality.warmup_s == module_warmup_s(
        parse_scenario(TINY, "t.toml", tmp_path), load_profile("gasboard-f32")
    )


def test_configs_are_toml_whatever_the_names_and_paths() -> None:
    text = edge_config_text(
        'v"1', "C:\\boxes\\a.toml", "/dev/pts/3", "/dev/pts/4", 60.0, "mqtt://h:1883", "o", {}
    )
    doc = tomllib.loads(text)
    assert doc["vehicle"] == 'v"1'
    assert doc["box"] == {"port": "/dev/pts/3", "profile": "C:\\boxes\\a.toml"}
    assert doc["time_scale"] == 60.0


def test_breaks_too_short_for_the_speed_are_named() -> None:
    scenario = parse_scenario(
        "start = 2026-03-02T07:00:00+08:00\nduration_h = 8\n[[vehicles]]\nname = 'p'\n"
        "[[vehicles.shifts]]\nstart = '07:00'\nend = '09:00'\n"
        "[[vehicles.shifts]]\nstart = '09:30'\nend = '11:00'\n"
    )
    assert short_breaks(scenario, 60.0) == []  # 30 min against 5 min of silence
    (note,) = short_breaks(scenario, 600.0)  # against 50 min
    assert note.startswith("p: a break between shifts of 30 min")
