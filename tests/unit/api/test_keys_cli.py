from __future__ import annotations

import argparse

import pytest

from api.keys_cli import apikey_command


@pytest.mark.parametrize(
    ("argv", "config"),
    [
        (["create", "--config", "api.toml", "--name", "Desk 3"], "api.toml"),
        (["--config", "api.toml", "create", "--name", "Desk 3"], "api.toml"),
        (["list", "--config", "other.toml"], "other.toml"),
        (["revoke", "k1", "--config", "x.toml"], "x.toml"),
        (["list"], None),
        (["grids", "--config", "g.toml"], "g.toml"),
    ],
)
def test_config_is_taken_before_or_after_the_action(argv: list[str], config: str | None) -> None:
    parser = argparse.ArgumentParser()
    apikey_command(parser)
    assert parser.parse_args(argv).config == config


def test_scope_options_repeat() -> None:
    parser = argparse.ArgumentParser()
    apikey_command(parser)
    args = parser.parse_args(
        ["create", "--name", "x", "--grid", "3", "--grid", "5,7", "--subdistrict", "双井街道"]
    )
    assert (args.grid, args.subdistrict) == (["3", "5,7"], ["双井街道"])
    plain = parser.parse_args(["create", "--name", "x"])
    assert (plain.grid, plain.subdistrict) == ([], [])
