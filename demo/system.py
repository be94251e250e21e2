"""`envpatrol demo`: the whole system on one machine.

Broker and database come from ENVPATROL_MQTT_URL / ENVPATROL_DATABASE_URL when set, else embedded
ones are started. The ingest, the API and one edge agent per vehicle run as their own processes,
exactly as deployed; the simulated boxes and GPS receivers run here, on pseudo-terminals.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from demo.embedded import EmbeddedBroker, EmbeddedDatabase, free_port
from edge.cli import stop_on_signals
from edge.profile import load_profile
from firmware_sim.drive import CruiseDrive, SimClock
from firmware_sim.field import SHUANGJING_SOURCES, PollutionField
from firmware_sim.route import SHUANGJING_LOOP
from firmware_sim.vehicle import SimVehicle

# The channel each demo source is expected to show up on.
SOURCE_CHANNELS = {"dust": "pm10", "cooking": "cooking_fume", "traffic": "no2"}


def demo_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--vehicles", type=int, default=3, help="simulated patrol vehicles (3)")
    parser.add_argument(
        "--speed", type=float, default=240.0, help="simulated seconds per wall second (240)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="API port (8080; 0 picks a free one)"
    )
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many wall seconds (0: Ctrl-C)"
    )
    parser.add_argument(
        "--job-interval",
        type=float,
        default=5.0,
        help="wall seconds between runs of the hotspot analysis (5)",
    )
    parser.add_argument(
        "--hours-back",
        type=float,
        default=4.0,
        help="start the simulated patrol this many hours before now (4)",
    )
    return run_demo


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "edge.cli", *args], env=env, stdout=handle, stderr=subprocess.STDOUT
    )


def _get_json(url: str) -> object:
    if not url.startswith("http://"):
        raise ValueError(f"the demo only talks to its own API over http, not {url!r}")
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - scheme checked above
        return json.loads(response.read())


def _wait_http(url: str, timeout: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the API process exited; see its log")
        try:
            _get_json(url)
            return
        except (OSError, urllib.error.URLError, ValueError):
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def run_demo(args: argparse.Namespace) -> int:
    stop = stop_on_signals()
    work = Path(tempfile.mkdtemp(prefix="envpatrol-demo-"))
    started = time.monotonic()
    cleanup: list[Callable[[], None]] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        env = _backends(cleanup)
        migrate = subprocess.run(
            [sys.executable, "-m", "edge.cli", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if migrate.returncode != 0:
            _say(f"migration failed:\n{migrate.stdout}{migrate.stderr}")
            return 1
        _say(migrate.stdout.strip())

        processes.append(_spawn(["ingest"], env, work / "ingest.log"))
        # The hotspot analysis every few wall seconds, over the stored passes up to the newest
        # (the simulated clock runs ahead of the database's), with settings for a short patrol.
        with (work / "analysis.log").open("wb") as analysis_log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "demo.job", "--interval-s", str(args.job_interval)],
                    env=env,
                    stdout=analysis_log,
                    stderr=subprocess.STDOUT,
                )
            )
        port = args.port or free_port()
        api = _spawn(["api", "--host", "127.0.0.1", "--port", str(port)], env, work / "api.log")
        processes.append(api)
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/healthz", 30, lambda: api.poll() is None)

        clock = SimClock(datetime.now(UTC) - timedelta(hours=args.hours_back), speed=args.speed)
        for config in _vehicles(args, clock, work, cleanup):
            name = config.stem
            processes.append(_spawn(["edge", "--config", str(config)], env, work / f"{name}.log"))
        _say(f"{args.vehicles} simulated vehicles patrolling Shuangjing at {args.speed:g}x")
        _say(f"open {base}/  (API docs: {base}/docs, hotspots: {base}/v1/hotspots?pollutant=pm10)")
        _say(f"logs in {work}")
        deadline = started + args.duration if args.duration else None
        return _watch(base, clock, started, deadline, stop, processes)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for action in reversed(cleanup):
            action()


def _backends(cleanup: list[Callable[[], None]]) -> dict[str, str]:
    """The environment for the services: configured broker and database, else embedded ones."""
    mqtt_url = os.environ.get("ENVPATROL_MQTT_URL")
    if not mqtt_url:
        broker = EmbeddedBroker.start()
        cleanup.append(broker.stop)
        mqtt_url = broker.url
        _say(f"embedded broker ({broker.kind}) at {mqtt_url}")
    db_url = os.environ.get("ENVPATROL_DATABASE_URL")
    if not db_url:
        database = EmbeddedDatabase.start()
        cleanup.append(database.stop)
        db_url = database.url
        _say("embedded PostgreSQL started")
    return {**os.environ, "ENVPATROL_MQTT_URL": mqtt_url, "ENVPATROL_DATABASE_URL": db_url}


def _vehicles(
    args: argparse.Namespace, clock: SimClock, work: Path, cleanup: list[Callable[[], None]]
) -> list[Path]:
    """Start the simulated vehicles; one edge config file per vehicle, named after it."""
    field = PollutionField(SHUANGJING_SOURCES, seed=7)
    profile = load_profile("default-multi")
    configs: list[Path] = []
    for i in range(args.vehicles):
        name = f"patrol-{i + 1:02d}"
        drive = CruiseDrive(
            SHUANGJING_LOOP,
            clock.start,
            speed_mps=5.5 + 0.5 * i,
            offset_m=i * SHUANGJING_LOOP.length_m / max(1, args.vehicles),
        )
        vehicle = SimVehicle(name, profile, drive, clock, field, seed=100 + i)
        vehicle.start()
        cleanup.append(vehicle.stop)
        config = work / f"{name}.toml"
        config.write_text(
            f'vehicle = "{name}"\npoll_interval_s = 10.0\ntime_scale = {args.speed}\n'
            f'health_interval_s = 60.0\n[box]\nport = "{vehicle.box_path}"\n'
            f'[gps]\nport = "{vehicle.gps_path}"\n'
            f'[outbox]\npath = "{work / name}-outbox.sqlite3"\n'
        )
        configs.append(config)
    return configs


def _watch(
    base: str,
    clock: SimClock,
    started: float,
    deadline: float | None,
    stop: threading.Event,
    processes: list[subprocess.Popen[bytes]],
) -> int:
    """Report each injected source once the API lists a hotspot at it; run until told to stop."""
    pending = {s.name: SOURCE_CHANNELS[s.kind] for s in SHUANGJING_SOURCES}
    found_at: list[float] = []
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        for source, channel in list(pending.items()):
            if _hotspot_near(base, channel, source):
                _say(
                    f"hotspot for {source} ({channel}) found after "
                    f"{time.monotonic() - started:.0f} s wall, sim time {clock.now():%H:%M} UTC"
                )
                del pending[source]
                found_at.append(time.monotonic() - started)
                if not pending:
                    _say(
                        f"all {len(found_at)} sources found: first after {found_at[0]:.0f} s, "
                        f"all after {found_at[-1]:.0f} s wall"
                    )
        if any(p.poll() is not None for p in processes):
            _say("a service exited unexpectedly; see the logs")
            return 1
        stop.wait(2.0)
    return 0


def _hotspot_near(base: str, channel: str, source_name: str) -> bool:
    source = next(s for s in SHUANGJING_SOURCES if s.name == source_name)
    try:
        doc = _get_json(f"{base}/v1/hotspots?pollutant={channel}")
    except (OSError, urllib.error.URLError, ValueError):
        return False
    features = doc.get("features", []) if isinstance(doc, dict) else []
    from firmware_sim.geo import haversine_m

    for feature in features:
        props = feature.get("properties", {})
        lat, lon = props.get("lat"), props.get("lon")
        if (
            isinstance(lat, float)
            and isinstance(lon, float)
            and haversine_m(lat, lon, source.lat, source.lon) < 150
        ):
            return True
    return False
