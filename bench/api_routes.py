"""Latency of the officers' routes added for grids, cells, tracks and exports, over a simulated
fleet stored by the ingest's writer (and one run of the hotspot job over it).

    .venv/bin/python -m bench.api_routes [--vehicles 10] [--days 30] [--repeat 30]

Fills a scratch database on the test PostgreSQL with the box simulator's patrols (three loops
of the Shuangjing route a day per vehicle, 10 s readings), uploads a grid layer of 12 polygons,
and times each route in-process (FastAPI's TestClient, so HTTP parsing is included but not a
socket): p50 and p95 over `--repeat` calls, and export throughput in readings per second.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from api import keys
from api.app import create_app
from api.settings import ApiSettings
from demo.embedded import EmbeddedDatabase
from demo.patrol_data import simulated_readings, store_readings
from hotspots.job import JobSettings, run_once
from store.scratch import admin_database_url, scratch_database

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with", category=UserWarning)
    from fastapi.testclient import TestClient

START = datetime(2026, 5, 1, tzinfo=UTC)


def grid_layer() -> dict[str, Any]:
    """A 4 x 3 tiling of the Shuangjing area."""
    west, south, step_lon, step_lat = 116.455, 39.882, 0.006, 0.006
    features = []
    for i in range(4):
        for j in range(3):
            x0, y0 = west + i * step_lon, south + j * step_lat
            ring = [[x0, y0], [x0 + step_lon, y0], [x0 + step_lon, y0 + step_lat],
                    [x0, y0 + step_lat], [x0, y0]]  # fmt: skip
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": {"name": f"grid {i}-{j}", "responsible": "bench"},
                }
            )
    return {"type": "FeatureCollection", "features": features}


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        begin = time.perf_counter()
        response = call()
        samples.append(time.perf_counter() - begin)
        assert response.status_code == 200, response.text[:300]
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples) * 1000, p95 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=10)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with scratch_database(admin_database_url(start=lambda: EmbeddedDatabase.start().url)) as url:
        begin = time.perf_counter()
        readings = simulated_readings(START, vehicles=args.vehicles, days=args.days)
        store_readings(url, readings)
        print(f"stored {len(readings)} readings in {time.perf_counter() - begin:.1f} s")
        with psycopg.connect(url, autocommit=True) as conn:
            key = keys.create(conn, "bench", "admin").key
            begin = time.perf_counter()
            job = JobSettings(window=timedelta(days=args.days))
            summary = run_once(conn, job, now=START + timedelta(days=args.days))
            print(
                f"hotspot job: {summary.passes} passes, {summary.hotspots} hotspots in "
                f"{time.perf_counter() - begin:.1f} s"
            )
        settings = ApiSettings(database_url=url, key_per_minute=0, anonymous_per_minute=0)
        with TestClient(create_app(settings)) as client:
            client.post("/v1/grids", json=grid_layer(), headers={"X-API-Key": key})
            period = {
                "from": START.isoformat(),
                "to": (START + timedelta(days=args.days)).isoformat(),
            }
            spots = client.get("/v1/hotspots", params={**period, "pollutant": "pm10"}).json()
            cell = spots["features"][0]["properties"]["cell"]
            spot = spots["features"][0]["id"]
            grid = spots["features"][0]["properties"]["grid_id"]
            day = {"from": START.isoformat(), "to": (START + timedelta(days=1)).isoformat()}
            cases: list[tuple[str, Callable[[], Any]]] = [
                ("GET /v1/cells/{cell} (whole period)",
                 lambda: client.get(f"/v1/cells/{cell}", params={**period, "pollutant": "pm10"})),
                ("GET /v1/vehicles/{id}/track (one day)",
                 lambda: client.get("/v1/vehicles/patrol-01/track", params=day)),
                ("GET /v1/grids",
                 lambda: client.get("/v1/grids")),
                ("GET /v1/hotspots (whole period)",
                 lambda: client.get("/v1/hotspots", params={**period, "pollutant": "pm10"})),
                ("GET /v1/hotspots?grid= (whole period)",
                 lambda: client.get("/v1/hotspots", params={**period, "pollutant": "pm10", "grid": grid})),
                ("GET /v1/hotspots/{id} (evidence)",
                 lambda: client.get(f"/v1/hotspots/{spot}")),
                ("GET /v1/reports/inventory (whole area)",
                 lambda: client.get("/v1/reports/inventory", params=period)),
                ("GET /v1/cases",
                 lambda: client.get("/v1/cases")),
            ]  # fmt: skip
            print("| route | p50 ms | p95 ms | calls |\n|---|---|---|---|")
            for name, call in cases:
                slow = "hotspots" in name or "reports" in name
                repeat = max(5, args.repeat // 5) if slow else args.repeat
                p50, p95 = timed(call, repeat)
                print(f"| {name} | {p50:.1f} | {p95:.1f} | {repeat} |")
            print("\n| export | readings | seconds | readings/s |\n|---|---|---|---|")
            for fmt in ("csv", "ndjson", "geojson"):
                begin = time.perf_counter()
                response = client.get(
                    "/v1/readings", params={**period, "format": fmt, "limit": 1_000_000}
                )
                elapsed = time.perf_counter() - begin
                assert response.status_code == 200
                rows = len(readings)
                print(f"| {fmt} | {rows} | {elapsed:.2f} | {rows / elapsed:,.0f} |")


if __name__ == "__main__":
    main()
