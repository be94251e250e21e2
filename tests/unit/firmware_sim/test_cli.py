"""The `envpatrol sim` and `envpatrol replay` commands: help, checks and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main


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
