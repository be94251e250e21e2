"""Freshness under a live fleet: how long from a box read until the reading is visible in the API.

A private Mosquitto, a fresh migrated database, `envpatrol ingest` (one or more workers on a
shared subscription) and `envpatrol api`, each in its own process, as deployed. Then:

- `--vehicles` direct publishers, one MQTT connection each (asyncio, aiomqtt, QoS 1, MQTT 5),
  each making one reading every `--cadence` seconds at its own phase and publishing it at once,
  the reading's time being the moment it was made;
- `--agents` real edge agents (`edge.agent.Agent`) reading simulated boxes and GPS receivers on
  pseudo-terminals at real time (`firmware_sim.SimVehicle`), with their disk outboxes;
- an observer polling `GET /v1/vehicles` every `--poll` seconds: when a vehicle's `last_seq`
  changes, the reading became visible; its freshness is the observation's wall time minus the
  reading's time (the poll interval is part of the figure: a reading waits up to one interval
  to be seen).

Readings of the first `--warmup` seconds are not counted. Printed: freshness percentiles for the
publishers and for the agents, readings made / stored, the CPU seconds of the ingest workers, the
broker and the API per reading, and the machine's load.

    .venv/bin/python -m bench.freshness --vehicles 500 --agents 3 --duration 120
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import psycopg

from bench.ingest import (
    BROKER_PID,
    REPO,
    broker,
    cpu_seconds,
    database,
    database_backends_cpu,
    machine,
)
from demo.embedded import free_port
from edge.agent import Agent
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.mqtt import MqttSettings
from edge.profile import load_profile
from edge.wire import Position, Reading, encode_message
from firmware_sim.drive import CruiseDrive, SimClock
from firmware_sim.field import SHUANGJING_SOURCES, PollutionField
from firmware_sim.route import SHUANGJING_LOOP
from firmware_sim.vehicle import SimVehicle


@dataclass
class Seen:
    """What the observer saw: per vehicle the last sequence number and the freshness figures."""

    last: dict[str, int] = field(default_factory=dict)
    fresh: dict[str, list[float]] = field(default_factory=dict)  # vehicle -> seconds
    polls: int = 0
    poll_s: list[float] = field(default_factory=list)


def start_ingest(
    port: int, url: str, directory: Path, workers: int
) -> list[subprocess.Popen[bytes]]:
    """`envpatrol ingest` as deployed (default batching), one process per worker."""
    procs = []
    for k in range(workers):
        client_id = f"fresh-ingest-{k}"
        config = directory / f"{client_id}.toml"
        share = '\nshare_group = "fresh"' if workers > 1 else ""
        config.write_text(
            f'[mqtt]\nurl = "mqtt://127.0.0.1:{port}"\nclient_id = "{client_id}"\n'
            f'[database]\nurl = "{url}"\n[ingest]\nmetrics_port = {free_port()}{share}\n'
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "ingest", "--config", str(config)],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=(directory / f"{client_id}.log").open("wb"),
            )
        )
    return procs


@contextlib.contextmanager
def api(url: str, directory: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`envpatrol api` with the anonymous rate limit off (the observer polls often)."""
    port = free_port()
    config = directory / "api.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[rate_limit]\nanonymous_per_minute = 0\nkey_per_minute = 0\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "api", "--config", str(config), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=(directory / "api.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the API did not start: {(directory / 'api.log').read_text()}")
            time.sleep(0.1)
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(10)


def reading(vehicle: str, seq: int, index: int) -> Reading:
    lat = 39.85 + 0.0011 * (index % 100)
    lon = 116.30 + 0.0004 * (index // 100) + 0.00011 * (seq % 500)
    return Reading(
        vehicle=vehicle,
        seq=seq,
        time=datetime.now(UTC),
        time_source="gnss",
        position=Position(lat, lon, True, 1, 9, 0.9, 8.0, 90.0, 0.4),
        values={
            "temperature": 18.0, "humidity": 40.0, "noise": 60.0 + seq % 9,
            "pm25": 20.0 + seq % 13, "pm10": 40.0, "co2": 420.0, "no2": 30.0,
        },
        profile="default-multi",
    )  # fmt: skip


async def publisher(
    port: int, index: int, cadence: float, until: float, made: dict[str, int], late: list[float]
) -> None:
    """One vehicle: its own connection, a reading every `cadence` seconds at a random phase,
    until the wall clock passes `until`; `late` gets how long after its moment each reading's
    publish was acknowledged (a generator that falls behind shows there, not as freshness)."""
    vehicle = f"live-{index:04d}"
    made[vehicle] = 0
    await asyncio.sleep(random.uniform(0, cadence))
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=vehicle, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        seq = 0
        next_at = time.monotonic()
        while time.time() < until:
            seq += 1
            payload = encode_message(vehicle, [reading(vehicle, seq, index)])
            await client.publish(f"envpatrol/v1/{vehicle}/readings", payload, qos=1)
            late.append(time.monotonic() - next_at)
            made[vehicle] = seq
            next_at += cadence
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def fleet_part(
    port: int, indices: range, cadence: float, until: float
) -> tuple[dict[str, int], list[float]]:
    made: dict[str, int] = {}
    late: list[float] = []
    await asyncio.gather(*(publisher(port, i, cadence, until, made, late) for i in indices))
    return made, late


def fleet_process(
    port: int, indices: range, cadence: float, until: float
) -> tuple[dict[str, int], list[float]]:
    """One process's share of the direct publishers (one event loop carries a few thousand)."""
    return asyncio.run(fleet_part(port, indices, cadence, until))


def agents(
    port: int, count: int, directory: Path
) -> list[tuple[Agent, threading.Thread, threading.Event, SimVehicle]]:
    """Real agents at real time on simulated boxes and receivers."""
    out = []
    profile = load_profile("default-multi")
    for i in range(count):
        name = f"agent-{i + 1:02d}"
        clock = SimClock(datetime.now(UTC), speed=1.0)
        drive = CruiseDrive(SHUANGJING_LOOP, clock.start, speed_mps=7.0, offset_m=i * 900.0)
        vehicle = SimVehicle(
            name, profile, drive, clock, PollutionField(SHUANGJING_SOURCES, seed=i), seed=i
        )
        vehicle.start()
        settings = EdgeSettings(
            vehicle=name,
            mqtt=MqttSettings.from_url(f"mqtt://127.0.0.1:{port}"),
            box=BoxSettings(port=vehicle.box_path),
            gps=GpsSettings(port=vehicle.gps_path),
            outbox_path=str(directory / f"{name}.sqlite3"),
            poll_interval_s=10.0,
        )
        agent = Agent(settings)
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        thread.start()
        out.append((agent, thread, stop, vehicle))
    return out


def observe(base: str, every: float, stop: threading.Event, seen: Seen, count_after: float) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        while not stop.is_set():
            started = time.monotonic()
            answer = http.get("/v1/vehicles")
            now = time.time()
            seen.poll_s.append(time.monotonic() - started)
            seen.polls += 1
            for v in answer.json()["results"]:
                seq = v["last_seq"]
                if seq is None or seen.last.get(v["vehicle"]) == seq:
                    continue
                seen.last[v["vehicle"]] = seq
                made = datetime.fromisoformat(v["last_time"].replace("Z", "+00:00")).timestamp()
                if made >= count_after:
                    seen.fresh.setdefault(v["vehicle"], []).append(now - made)
            time.sleep(max(0.0, every - (time.monotonic() - started)))


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 3),
        "p95": round(at(0.95), 3),
        "p99": round(at(0.99), 3),
        "max": round(ordered[-1], 3),
    }


@dataclass(frozen=True)
class Window:
    """CPU seconds by process kind at the start and end of the measured stretch, the readings
    stored in it, and the load average at its start."""

    cpu0: dict[str, float]
    cpu1: dict[str, float]
    stored: int
    load: float


def summary(
    args: argparse.Namespace,
    url: str,
    made: dict[str, int],
    late: list[float],
    seen: Seen,
    window: Window,
) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM reading").fetchone()
        stored = int(row[0]) if row else 0
        dup = conn.execute(
            "SELECT count(*) FROM (SELECT vehicle, seq FROM reading"
            " GROUP BY 1, 2 HAVING count(*) > 1) d"
        ).fetchone()
    direct = [x for v, xs in seen.fresh.items() if v.startswith("live-") for x in xs]
    from_agents = [x for v, xs in seen.fresh.items() if v.startswith("agent-") for x in xs]
    spent = {k: window.cpu1[k] - window.cpu0[k] for k in window.cpu0}
    per_reading = {k: 1000 * v / max(1, window.stored) for k, v in spent.items()}
    return {
        "vehicles": args.vehicles,
        "agents": args.agents,
        "ingest_workers": args.ingest_workers,
        "cadence_s": args.cadence,
        "poll_s": args.poll,
        "measured_s": args.duration,
        "made": sum(made.values()),
        "stored": stored,
        "duplicated": int(dup[0]) if dup else 0,
        "stored_per_s_measured": round(window.stored / args.duration, 1),
        "publish_late_s": percentiles(late),
        "freshness_direct_s": percentiles(direct),
        "freshness_agents_s": percentiles(from_agents),
        "freshness_all_s": percentiles(direct + from_agents),
        "api_poll_request_s": percentiles(seen.poll_s),
        "cpu_ms_per_reading": {k: round(v, 3) for k, v in per_reading.items()},
        # readings a second one core would carry for the ingest and its database at this rate
        "readings_per_core_s": round(
            1000 / max(1e-9, per_reading["ingest"] + per_reading["database"])
        ),
        "cpu_share_of_one_core": {k: round(v / args.duration, 4) for k, v in spent.items()},
        "load_before_after": [round(window.load, 2), round(os.getloadavg()[0], 2)],
        "machine": machine(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="envpatrol-fresh-"))
    with broker(directory) as port, database() as url:
        ingest = start_ingest(port, url, directory, args.ingest_workers)
        try:
            with api(url, directory) as (base, api_proc):
                until = time.time() + args.warmup + args.duration
                shares = [range(k, args.vehicles, args.processes) for k in range(args.processes)]
                pool = ProcessPoolExecutor(args.processes, mp_context=get_context("spawn"))
                parts = [
                    pool.submit(fleet_process, port, share, args.cadence, until) for share in shares
                ]
                real = agents(port, args.agents, directory)
                seen = Seen()
                stop_observer = threading.Event()
                count_after = time.time() + args.warmup
                observer = threading.Thread(
                    target=observe, args=(base, args.poll, stop_observer, seen, count_after)
                )
                observer.start()
                with psycopg.connect(url) as db:

                    def cpu() -> dict[str, float]:
                        return {
                            "ingest": sum(cpu_seconds(p.pid) for p in ingest),
                            "database": database_backends_cpu(db),
                            "broker": cpu_seconds(BROKER_PID[0]),
                            "api": cpu_seconds(api_proc.pid),
                        }

                    def stored_now() -> int:
                        row = db.execute("SELECT count(*) FROM reading").fetchone()
                        db.commit()
                        return int(row[0]) if row else 0

                    time.sleep(args.warmup)  # connecting and settling, not measured
                    cpu0, stored0 = cpu(), stored_now()
                    load0 = os.getloadavg()
                    time.sleep(args.duration)  # the measured stretch itself
                    cpu1, stored1 = cpu(), stored_now()
                for _, _, stop, _ in real:
                    stop.set()
                made: dict[str, int] = {}
                late: list[float] = []
                for part in parts:
                    part_made, part_late = part.result(timeout=120)
                    made.update(part_made)
                    late.extend(part_late)
                pool.shutdown()
                for _, thread, _, vehicle in real:
                    thread.join(30)
                    vehicle.stop()
                # let the last readings land before the observer stops
                time.sleep(3 * args.poll + 2)
                stop_observer.set()
                observer.join(30)
                made_agents = {a.settings.vehicle: a.readings for a, _, _, _ in real}
                made["agents"] = sum(made_agents.values())
                window = Window(cpu0, cpu1, stored1 - stored0, load0[0])
                return summary(args, url, made, late, seen, window)
        finally:
            for p in ingest:
                p.terminate()
            for p in ingest:
                p.wait(10)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vehicles", type=int, default=500, help="direct publishers")
    parser.add_argument("--agents", type=int, default=3, help="real agents on pseudo-terminals")
    parser.add_argument("--processes", type=int, default=1, help="publisher processes")
    parser.add_argument("--ingest-workers", type=int, default=1)
    parser.add_argument("--cadence", type=float, default=10.0, help="seconds between readings")
    parser.add_argument("--duration", type=float, default=120.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds not counted")
    parser.add_argument("--poll", type=float, default=0.1, help="the observer's poll interval")
    return parser.parse_args()


def main() -> None:
    print(json.dumps(run(arguments()), indent=2))


if __name__ == "__main__":
    main()
