from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from demo.system import Service, _redacted, _report_exit


def test_a_service_that_exits_is_named_with_the_end_of_its_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "ingest.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "print('\\n'.join(f'line {i}' for i in range(40))); raise SystemExit(3)",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    service = Service("the ingest", process, log)
    process.wait(30)
    _report_exit(service)
    out = capsys.readouterr().out
    assert "the ingest exited with code 3" in out
    assert str(log) in out
    assert "line 39" in out
    assert "line 10" not in out  # only the last lines


def test_a_service_without_its_log_still_reports() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(30)
    assert Service("the API", process, Path("/nonexistent/api.log")).last_lines() == "(no log)"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://envpatrol:s3cret@db:5432/envpatrol",
            "postgresql://envpatrol:***@db:5432/envpatrol",
        ),
        ("postgresql://postgres@127.0.0.1:5432/demo", "postgresql://postgres@127.0.0.1:5432/demo"),
        ("postgresql:///envpatrol?host=/tmp", "postgresql:///envpatrol?host=/tmp"),
        ("postgresql://a:b@c@host/db", "postgresql://a:***@host/db"),
    ],
)
def test_the_database_url_is_printed_without_its_password(url: str, shown: str) -> None:
    assert _redacted(url) == shown
