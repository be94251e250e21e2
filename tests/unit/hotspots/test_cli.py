from __future__ import annotations

import argparse

import pytest

from hotspots.cli import analyse_command


def test_an_unknown_time_zone_is_refused_before_any_database_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENVPATROL_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    parser = argparse.ArgumentParser()
    run = analyse_command(parser)
    assert run(parser.parse_args(["--once", "--timezone", "Mars/Base"])) == 2
    assert "unknown time zone 'Mars/Base'" in capsys.readouterr().err
