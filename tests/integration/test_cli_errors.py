"""Commands facing an unreachable database: one clean line and a status, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from demo.embedded import free_port


@pytest.mark.parametrize(
    "command",
    [["migrate"], ["analyse", "--once"], ["rebuild", "--resolution", "11"], ["apikey", "list"]],
)
def test_an_unreachable_database_is_one_line(command: list[str]) -> None:
    port = free_port()  # nothing listens there
    env = {**os.environ, "ENVPATROL_DATABASE_URL": f"postgresql://nobody@127.0.0.1:{port}/none"}
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"envpatrol {command[0]}: database")
    assert f'127.0.0.1", port {port}' in lines[0] or f"port {port}" in lines[0]


def test_a_bad_street_file_stops_the_api_with_one_line(tmp_path: Path, database_url: str) -> None:
    streets = tmp_path / "streets.geojson"
    streets.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature"}]}')
    config = tmp_path / "api.toml"
    config.write_text(f'[dashboard]\nstreets_file = "{streets}"\n')
    env = {**os.environ, "ENVPATROL_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "api", "--config", str(config), "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "streets_file" in done.stderr
    assert "features[0]" in done.stderr
