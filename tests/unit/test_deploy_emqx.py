"""The clustered broker's shipped files (deploy/emqx): the compose file parses and wires three
nodes to the seeds of emqx.conf, emqx.conf is well formed and keeps the limits the Mosquitto
configuration keeps, and acl.conf is valid Erlang terms (read with Erlang itself when present)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ingest.settings import DEFAULT_SESSION_EXPIRY_S

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
EMQX = DEPLOY / "emqx"
yaml = pytest.importorskip("yaml", reason="PyYAML reads the compose files")


def _hocon_without_comments() -> str:
    lines = []
    for line in (EMQX / "emqx.conf").read_text().splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            lines.append(line)
    return "\n".join(lines)


def _setting(key: str) -> str:
    match = re.search(rf"^\s*{re.escape(key)}\s*=\s*(\S+)", _hocon_without_comments(), re.M)
    assert match, f"{key} not set in emqx.conf"
    return match.group(1).strip('"')


def test_both_compose_files_parse() -> None:
    for path in (DEPLOY / "compose.yaml", EMQX / "compose.yaml"):
        assert isinstance(yaml.safe_load(path.read_text()), dict), path


def test_three_nodes_are_the_seeds_each_with_its_own_data_and_one_cookie() -> None:
    compose = yaml.safe_load((EMQX / "compose.yaml").read_text())
    nodes = compose["services"]
    listed = re.search(r"static\.seeds\s*=\s*\[([^\]]*)\]", _hocon_without_comments())
    assert listed
    seeds = set(re.findall(r'"(emqx@[^"]+)"', listed.group(1)))
    names = {node["environment"]["EMQX_NODE__NAME"] for node in nodes.values()}
    assert len(nodes) == 3
    assert names == seeds
    for node in nodes.values():
        host = node["environment"]["EMQX_NODE__NAME"].split("@", 1)[1]
        assert host in node["networks"]["broker"]["aliases"]
        assert "EMQX_COOKIE" in node["environment"]["EMQX_NODE__COOKIE"]
        sources = {v["source"] for v in node["volumes"] if isinstance(v, dict)}
        assert sources == {"./emqx.conf", "./acl.conf", "./certs"}
    data = [v for node in nodes.values() for v in node["volumes"] if isinstance(v, str)]
    assert len(set(data)) == 3
    assert set(compose["volumes"]) == {v.split(":", 1)[0] for v in data}


def test_emqx_conf_braces_and_brackets_balance() -> None:
    text = re.sub(r'"[^"]*"', '""', _hocon_without_comments())
    for opening, closing in ("{}", "[]"):
        depth = 0
        for char in text:
            depth += (char == opening) - (char == closing)
            assert depth >= 0, closing
        assert depth == 0, opening


def test_emqx_keeps_the_limits_the_mosquitto_configuration_keeps() -> None:
    mosquitto = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    queued = re.search(r"^max_queued_messages (\d+)", mosquitto, re.M)
    inflight = re.search(r"^max_inflight_messages (\d+)", mosquitto, re.M)
    assert queued
    assert inflight
    assert _setting("max_mqueue_len") == queued.group(1)
    assert _setting("max_inflight") == inflight.group(1)
    assert _setting("session_expiry_interval") == f"{DEFAULT_SESSION_EXPIRY_S // 86400}d"
    assert _setting("use_username_as_clientid") == "true"
    assert _setting("mqueue_store_qos0") == "false"
    assert _setting("no_match") == "deny"
    assert _setting("discovery_strategy") == "static"


@pytest.mark.skipif(shutil.which("erl") is None, reason="needs Erlang's `erl` to read acl.conf")
def test_acl_conf_is_erlang_terms_ending_in_deny_all() -> None:
    erl = shutil.which("erl")
    assert erl is not None
    script = (
        f'{{ok, Rules}} = file:consult("{EMQX / "acl.conf"}"), '
        'io:format("~p~n", [lists:last(Rules)]), halt().'
    )
    done = subprocess.run(
        [erl, "-noshell", "-eval", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr or done.stdout
    assert done.stdout.strip() == "{deny,all}"
