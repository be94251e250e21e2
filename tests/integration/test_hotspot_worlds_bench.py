"""The evaluation harness runs as documented: its fast models agree with the simulator's scalar
ones, and a smoke run over generated worlds writes records a report can be made from again.

Run as a command: tests and bench never import each other (docs/architecture.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.hotspot_worlds", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_fast_models_agree_with_the_scalar_ones() -> None:
    done = _bench("--self-check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "self-check: ok" in done.stdout


def test_a_smoke_run_scores_worlds_and_null_worlds(tmp_path: Path) -> None:
    out = tmp_path / "worlds.json"
    done = _bench(
        "--family", "spurs", "--worlds", "1", "--nulls", "1", "--days", "8",
        "--resolutions", "11", "--passes", "4,8", "--workers", "1", "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    saved: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    worlds = saved["worlds"]
    assert [w["null"] for w in worlds] == [False, True]
    with_sources, null = worlds
    assert with_sources["sources"]
    assert not null["sources"]
    assert min(with_sources["readings"], null["readings"]) > 0
    for w in worlds:
        for record in w["records"]:
            if "methods" not in record:
                continue
            for counts in record["methods"].values():
                assert min(counts["tp"], counts["fp"], counts["fn"]) >= 0
            if not w["null"]:
                found = record["found"]["detector"]
                assert len(found) == len(w["sources"]) == len(record["signal"])
                assert counts["tp"] + counts["fn"] == len(w["sources"])
    # The tables again from the records, as the docs say.
    again = _bench("--from-json", str(out))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "### Resolution 11" in again.stdout
