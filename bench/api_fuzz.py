"""Property-based fuzzing of the whole HTTP API with schemathesis, from its OpenAPI document.

    .venv/bin/python -m bench.api_fuzz [--max-examples N]

Makes a scratch database on the test PostgreSQL (as the tests do: ENVPATROL_TEST_DATABASE_URL or
the machine's), fills it with two vehicles' patrols over a source, creates an admin key, serves
the API with rate limits off, and runs `schemathesis run` with the `not_a_server_error` check
(every phase: examples, coverage, fuzzing, stateful) sending the admin key, so the write routes
are exercised too. `/v1/live` (an endless stream) is left out. The exit status is schemathesis's;
the number of generated cases is in its summary. One hotspot-job run over the patrols is stored first,
so the hotspot routes (list, detail, report) answer from it. Not part of the test suite: it takes minutes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from datetime import timedelta

import psycopg
import uvicorn

from api import keys
from api.app import create_app
from api.settings import ApiSettings
from demo.embedded import free_port
from tests.integration.test_api import BASE, analyse, insert_readings, patrol_rows, roll_up
from tests.services import admin_database_url, scratch_database


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with scratch_database(admin_database_url()) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            insert_readings(conn, patrol_rows(hot=40.0))
            roll_up(conn)
            analyse(conn, BASE + timedelta(days=5))  # a hotspot run for the hotspot routes
            key = keys.create(conn, "schemathesis", "admin").key
        settings = ApiSettings(
            database_url=url, key_per_minute=0, anonymous_per_minute=0, statement_timeout_s=10
        )
        port = free_port()
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="api", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                print("the API did not start", file=sys.stderr)
                return 2
            time.sleep(0.05)
        command = [
            sys.executable, "-m", "schemathesis.cli", "run",
            f"http://127.0.0.1:{port}/openapi.json",
            "--checks", "not_a_server_error",
            "--header", f"X-API-Key: {key}",
            "--max-examples", str(args.max_examples),
            "--exclude-path", "/v1/live",
            "--request-timeout", "20",
            "--seed", str(args.seed),
        ]  # fmt: skip
        try:
            return subprocess.run(command, check=False).returncode
        finally:
            server.should_exit = True
            thread.join(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
