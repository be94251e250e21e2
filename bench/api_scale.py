"""The officers' API at fleet scale: hotspot, cell, reading and vehicle routes over 30 days of a
50-vehicle fleet (about 13 million readings), timed over HTTP against the real server.

    .venv/bin/python -m bench.api_scale [--rebuild] [--requests 30] [--warmup 3]

0. Self-check: bench.api_scale_check tests the generator and the OpenAPI fitting first, and the
   benchmark stops if they fail.
1. Data: the database `--database` (envpatrol_bench_api) on the machine's PostgreSQL, reused
   when it already holds a complete fill of the same fleet (the fill is recorded as the
   database's comment), else (or with `--rebuild`) made again: readings of `--vehicles` patrol
   vehicles x `--days` days at one per 10 s (bench.api_scale_data) copied in binary into the
   daily partitions in the ingest's row format, hourly rollups by the rebuild's statement, passes
   by the rebuild's code, then one run of the hotspot job over the month.
2. Measurement: `envpatrol api` started as its own process (uvicorn) on the read-only role,
   each route called `--warmup` times untimed, then `--requests` times: p50, p95 and max of
   the whole request (connect, query, JSON, transfer). Parameters come from the server's
   /openapi.json, so the benchmark follows routes whose parameters change.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from bench import api_scale_check
from bench.api_scale_data import FleetSpec
from bench.api_scale_fill import database_url, fill, fill_marker
from bench.api_scale_http import Case, Timing, enum_of, measure, table
from bench.api_scale_sql import sql_table, store_timings
from demo.embedded import free_port

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SUB_DISTRICT_BBOX = "116.458,39.883,116.478,39.896"  # Shuangjing, around the patrol routes


def month_start(days: int) -> datetime:
    """The fleet's month ends at the last UTC midnight, so the hotspot job's window (the last
    `days` days before its run) and the data agree."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def start_api(reader_url: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    config = workdir / "api.toml"
    config.write_text(
        f"[database]\nurl = {json.dumps(reader_url)}\nstatement_timeout_s = 60\n\n"
        "[rate_limit]\nkey_per_minute = 0\nanonymous_per_minute = 0\n"
    )
    command = shutil.which("envpatrol", path=str(Path(sys.executable).parent))
    if command is None:
        raise RuntimeError("the envpatrol command is not installed next to this Python")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ENVPATROL_DATABASE_URL", "ENVPATROL_ADMIN_DATABASE_URL", "ENVPATROL_MQTT_URL")
    }
    return subprocess.Popen(
        [command, "api", "--config", str(config), "--port", str(port)],
        env=env,
        stdout=(workdir / "api.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_ready(client: httpx.Client, process: subprocess.Popen[bytes], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}")
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the API did not answer /healthz within {deadline_s} s")


def cases(client: httpx.Client, openapi: dict[str, Any], start: datetime, days: int) -> list[Case]:
    """The measured requests; ids (a hotspot, a busy cell, a deep cursor) are looked up first."""
    end = start + timedelta(days=days)
    month = {"from": start.isoformat(), "to": end.isoformat()}
    last_day = {"from": (end - timedelta(days=1)).isoformat(), "to": end.isoformat()}
    last_week = {"from": (end - timedelta(days=7)).isoformat(), "to": end.isoformat()}
    area = {"pollutant": "pm10", "bbox": SUB_DISTRICT_BBOX}
    out: list[Case] = []

    allowed = enum_of(openapi, "/v1/hotspots", "format")
    formats: list[str | None] = [f for f in ("json", "geojson") if f in allowed] or [None]
    for fmt in formats:
        fmt_params = {} if fmt is None else {"format": fmt}
        label = "GeoJSON" if fmt is None else fmt
        out.append(Case(f"GET /v1/hotspots (sub-district, pm10, {label})", "/v1/hotspots",
                        {**month, **area, **fmt_params}))  # fmt: skip
    paths = openapi.get("paths", {})
    hotspot_path = next((p for p in paths if p.startswith("/v1/hotspots/{")), "/v1/hotspots/{id}")
    spot_ids: list[str] = []
    if hotspot_path in paths:  # only then is the list worth asking for (it may be slow)
        spots = client.get("/v1/hotspots", params={**month, **area}).json()
        spot_ids = [str(f["id"]) for f in spots.get("features", []) if "id" in f]
    if spot_ids:
        name = hotspot_path.split("{")[1].rstrip("}")
        out.append(Case("GET /v1/hotspots/{id}", hotspot_path, dict(month), {name: spot_ids[0]}))
        # the hotspot with the most evidence over every pollutant (its drives, its passes)
        every = client.get("/v1/hotspots", params={**month, "format": "json", "limit": 1000})
        largest = max(
            every.json().get("results", []),
            key=lambda h: (h.get("n_drives", 0), h.get("n_passes", 0)),
            default=None,
        )
        if largest is not None:
            out.append(
                Case(
                    f"GET /v1/hotspots/{{id}} (most evidence: {largest['pollutant']}, "
                    f"{largest.get('n_drives', '?')} drives)",
                    hotspot_path,
                    dict(month),
                    {name: str(largest["id"])},
                )
            )
    else:
        out.append(Case("GET /v1/hotspots/{id}", hotspot_path, {}))

    for span, period in (("1 day", last_day), ("7 days", last_week), ("30 days", month)):
        out.append(Case(f"GET /v1/cells (sub-district map layer, pm10, {span})", "/v1/cells",
                        {**period, **area}))  # fmt: skip
    layer = client.get("/v1/cells", params={**month, **area}).json().get("features", [])
    busiest = max(layer, key=lambda f: f["properties"]["n"], default=None)
    if busiest is not None:
        out.append(Case("GET /v1/cells/{cell} (busiest cell, pm10, 30 days)", "/v1/cells/{cell}",
                        {**month, "pollutant": "pm10"}, {"cell": str(busiest["id"])}))  # fmt: skip

    out.append(Case("GET /v1/readings (first page of the month)", "/v1/readings", dict(month)))
    deep = {"from": (end - timedelta(days=5)).isoformat(), "to": end.isoformat()}
    page = client.get("/v1/readings", params=deep).json()
    cursor = page.get("meta", {}).get("next_cursor")
    if cursor:
        out.append(Case("GET /v1/readings (cursor page 25 days into the month)", "/v1/readings",
                        {**month, "cursor": cursor}))  # fmt: skip
    out.append(Case("GET /v1/vehicles", "/v1/vehicles"))
    out.append(Case("GET /v1/vehicles/{id}/track (one day)", "/v1/vehicles/{vehicle_id}/track",
                    dict(last_day), {"vehicle_id": "patrol-01"}))  # fmt: skip
    return out


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"nproc {os.cpu_count()}, {cpu}, Python {sys.version.split()[0]}"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def ensure_filled(args: argparse.Namespace) -> datetime:
    """The start of the benchmark month: of the existing fill when it matches, else of a new one."""
    if args.start:
        print(f"using {args.database} as it is, month from {args.start}")
        return datetime.fromisoformat(args.start)
    marker = fill_marker(args.admin_url, args.database)
    wanted = {"vehicles": args.vehicles, "days": args.days}
    if (
        marker is not None
        and not args.rebuild
        and all(marker["spec"][k] == v for k, v in wanted.items())
    ):
        print(f"reusing {args.database} filled for {marker['spec']['start']}: {marker['fill']}")
        return datetime.fromisoformat(marker["spec"]["start"])
    start = month_start(args.days)
    spec = FleetSpec(start, vehicles=args.vehicles, days=args.days)
    print(f"filling {args.database}: {spec.readings:,} readings from {start.isoformat()}")
    begin = time.perf_counter()
    report = fill(args.admin_url, args.database, spec)
    print(f"filled in {time.perf_counter() - begin:.0f} s: {report}")
    return start


def time_routes(args: argparse.Namespace, reader_url: str, start: datetime) -> list[Timing]:
    timings: list[Timing] = []
    with tempfile.TemporaryDirectory(prefix="envpatrol-bench-api-") as tmp:
        process = start_api(reader_url, args.port, Path(tmp))
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=300) as client:
                wait_ready(client, process, 60)
                openapi = client.get("/openapi.json").json()
                for case in cases(client, openapi, start, args.days):
                    if args.only and args.only not in case.name:
                        continue
                    timing = measure(
                        client, openapi, case, args.requests, args.warmup, args.slow_ms
                    )
                    print(table([timing]).splitlines()[-1], flush=True)
                    timings.append(timing)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--admin-url", default=os.environ.get("ENVPATROL_TEST_DATABASE_URL", ADMIN_URL)
    )
    parser.add_argument("--database", default="envpatrol_bench_api")
    parser.add_argument("--rebuild", action="store_true", help="fill the database again")
    parser.add_argument("--start", help="use the database as it is, its month starting here (ISO)")
    parser.add_argument("--vehicles", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--port", type=int, default=0, help="the API's port (default: a free one)")
    parser.add_argument(
        "--slow-ms", type=float, default=10_000.0, help="a slower request ends its case"
    )
    parser.add_argument("--only", help="time only the routes whose name contains this")
    parser.add_argument("--no-store", action="store_true", help="skip the store-level timings")
    parser.add_argument("--drop", action="store_true", help="drop the database at the end")
    args = parser.parse_args()
    print(f"self-check: {api_scale_check.run()} checks of the generator and fitting passed")
    args.port = args.port or free_port()
    print(f"machine: {machine()}; load average at start: {loadavg()}")
    print(f"disk: {shutil.disk_usage('/').free / 1e9:.0f} GB free on /")
    start = ensure_filled(args)
    reader_url = database_url(args.admin_url, args.database, user="envpatrol_reader")
    timings = time_routes(args, reader_url, start)
    print()
    print(table(timings))
    if not args.no_store:
        end = start + timedelta(days=args.days)
        found = store_timings(reader_url, start, end, SUB_DISTRICT_BBOX, args.requests)
        print("\nStore level (psycopg on the read-only role, same statements as the routes):\n")
        print(sql_table(found))
    print(f"\nload average at end: {loadavg()}")
    if args.drop:
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(args.database))
            )


if __name__ == "__main__":
    main()
