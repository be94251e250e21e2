"""The web process imports the readers of the hotspot job's results, never the job or the
analysis' statistics: scipy, esda and libpysal are for the `envpatrol analyse` host. Checked in a
fresh interpreter, since the test process has them loaded already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# Top-level packages, and modules of ours, the web process must not load.
FORBIDDEN_PACKAGES = ("scipy", "esda", "libpysal")
FORBIDDEN_MODULES = (
    "hotspots.cli",
    "hotspots.job",
    "hotspots.run_writer",
    "hotspots.analysis.detect",
    "hotspots.analysis.significance",
    "hotspots.analysis.spatial",
)

PROBE = f"""
import json, sys
import api.app
packages, modules = {FORBIDDEN_PACKAGES!r}, {FORBIDDEN_MODULES!r}
print(json.dumps(sorted(
    m for m in sys.modules if m.split(".")[0] in packages or m in modules
)))
"""


def test_the_api_loads_neither_the_job_nor_the_statistics_libraries() -> None:
    run = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []
