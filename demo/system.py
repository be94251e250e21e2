"""`envpatrol demo`: the whole system on one machine.

Broker and database come from ENVPATROL_MQTT_URL / ENVPATROL_DATABASE_URL when set, else embedded
ones are started. The ingest, the API and one edge agent per vehicle run as their own processes,
exactly as deployed; the simulated boxes and GPS receivers run here, on pseudo-terminals.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from api import keys
from demo.embedded import EmbeddedBroker, EmbeddedDatabase, free_port
from demo.streets import write_streets
from edge.cli import stop_on_signals
from edge.errors import EnvpatrolError
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


@dataclass
class Service:
    """One of the demo's processes, by the name the demo reports it under."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def exited(self) -> int | None:
        return self.process.poll()

    def last_lines(self, n: int = 15) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(f"    {line}" for line in lines[-n:]) or "    (empty log)"


def _spawn(name: str, args: list[str], env: dict[str, str], log: Path) -> Service:
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", *args],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    return Service(name, process, log)


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _get_json(url: str) -> object:
    if not url.startswith("http://"):
        raise ValueError(f"the demo only talks to its own API over http, not {url!r}")
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - scheme checked above
        return json.loads(response.read())


def _wait_http(url: str, timeout: float, api: Service) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.exited() is not None:
            raise ServiceExitedError(api)
        try:
            _get_json(url)
            return
        except (OSError, urllib.error.URLError, ValueError):
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class ServiceExitedError(EnvpatrolError, RuntimeError):
    """One of the demo's services stopped on its own; `service` says which, with its log."""

    def __init__(self, service: Service) -> None:
        super().__init__(service.name, f"exited with code {service.exited()}")
        self.service = service


def _report_exit(service: Service) -> None:
    _say(
        f"{service.name} exited with code {service.exited()}; the last lines of "
        f"{service.log}:\n{service.last_lines()}"
    )


def run_demo(args: argparse.Namespace) -> int:
    if args.port and _port_taken(args.port):
        _say(
            f"port {args.port} is already in use (another server?): stop it, or give "
            "--port N (--port 0 picks a free one)"
        )
        return 2
    stop = stop_on_signals()
    work = Path(tempfile.mkdtemp(prefix="envpatrol-demo-"))
    started = time.monotonic()
    cleanup: list[Callable[[], None]] = []
    services: list[Service] = []
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
        admin_key = _admin_key(env["ENVPATROL_DATABASE_URL"])

        services.append(_spawn("the ingest", ["ingest"], env, work / "ingest.log"))
        # The hotspot analysis every few wall seconds, over the stored passes up to the newest,
        # with settings for a short patrol.
        with (work / "analysis.log").open("wb") as analysis_log:
            job = subprocess.Popen(
                [sys.executable, "-m", "demo.job", "--interval-s", str(args.job_interval)],
                env=env,
                stdout=analysis_log,
                stderr=subprocess.STDOUT,
            )
        services.append(Service("the hotspot analysis", job, work / "analysis.log"))
        port = args.port or free_port()
        # The map shows the loop's streets whatever the network: a street file of its own.
        streets = write_streets(work / "streets.geojson")
        api_config = work / "api.toml"
        api_config.write_text(f'[dashboard]\nstreets_file = "{streets}"\n', encoding="utf-8")
        api = _spawn(
            "the API",
            ["api", "--config", str(api_config), "--host", "127.0.0.1", "--port", str(port)],
            env,
            work / "api.log",
        )
        services.append(api)
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/healthz", 30, api)

        # The patrol starts some hours back at `speed` and, once the simulated clock reaches
        # now, drives on in real time (`_watch` restarts the agents at time scale 1).
        clock = SimClock(
            datetime.now(UTC) - timedelta(hours=args.hours_back), speed=args.speed, catch_up=True
        )
        edges = _vehicles(args, clock, cleanup)
        for name, vehicle in edges.items():
            services.append(_edge(name, _edge_config(name, vehicle, work, args.speed), env, work))
        _say(f"{args.vehicles} simulated vehicles patrolling Shuangjing at {args.speed:g}x")
        _say(f"dashboard:  {base}/  (API docs: {base}/docs)")
        _say(f"database:   {_redacted(env['ENVPATROL_DATABASE_URL'])}")
        _say(f"admin key:  {admin_key}  (for the case buttons; made for this demo)")
        _say(f"logs in {work}")
        deadline = started + args.duration if args.duration else None
        return _watch(base, clock, started, deadline, stop, services, (edges, env, work))
    except ServiceExitedError as exc:
        _report_exit(exc.service)
        return 1
    finally:
        for service in services:
            service.process.terminate()
        for service in services:
            try:
                service.process.wait(10)
            except subprocess.TimeoutExpired:
                service.process.kill()
        for action in reversed(cleanup):
            action()


def _edge(name: str, config: Path, env: dict[str, str], work: Path) -> Service:
    return _spawn(
        f"the agent of {name}", ["edge", "--config", str(config)], env, work / f"{name}.log"
    )


def _admin_key(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return keys.create(conn, "demo officer", "admin").key


def _redacted(url: str) -> str:
    """The URL without a password."""
    scheme, sep, rest = url.partition("://")
    user, at, host = rest.rpartition("@")
    if not at or ":" not in user:
        return url
    return f"{scheme}{sep}{user.split(':', 1)[0]}:***@{host}"


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
    args: argparse.Namespace, clock: SimClock, cleanup: list[Callable[[], None]]
) -> dict[str, SimVehicle]:
    """Start the simulated vehicles, by name."""
    field = PollutionField(SHUANGJING_SOURCES, seed=7)
    profile = load_profile("default-multi")
    vehicles: dict[str, SimVehicle] = {}
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
        vehicles[name] = vehicle
    return vehicles


def _edge_config(name: str, vehicle: SimVehicle, work: Path, time_scale: float) -> Path:
    """The agent's config file for a vehicle (written again on each call), named after it."""
    path = work / f"{name}.toml"
    path.write_text(
        f'vehicle = "{name}"\npoll_interval_s = 10.0\ntime_scale = {time_scale}\n'
        f'health_interval_s = 60.0\n[box]\nport = "{vehicle.box_path}"\n'
        f'[gps]\nport = "{vehicle.gps_path}"\n'
        f'[outbox]\npath = "{work / name}-outbox.sqlite3"\n'
    )
    return path


def _to_real_time(
    services: list[Service], edges: dict[str, SimVehicle], env: dict[str, str], work: Path
) -> None:
    """Restart every agent at time scale 1: the simulated clock now runs at real time."""
    agents = {f"the agent of {name}": name for name in edges}
    restarted = [(i, s) for i, s in enumerate(services) if s.name in agents]
    for _, service in restarted:
        service.process.terminate()
    for i, service in restarted:
        service.process.wait(15)
        name = agents[service.name]
        services[i] = _edge(name, _edge_config(name, edges[name], work, 1.0), env, work)


def _watch(
    base: str,
    clock: SimClock,
    started: float,
    deadline: float | None,
    stop: threading.Event,
    services: list[Service],
    agents: tuple[dict[str, SimVehicle], dict[str, str], Path],
) -> int:
    """Report each injected source once the API lists a hotspot at it, switch the agents to
    real time when the simulated clock reaches now, and run until told to stop."""
    pending = {s.name: SOURCE_CHANNELS[s.kind] for s in SHUANGJING_SOURCES}
    found_at: list[float] = []
    real_time = False
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
        if not real_time and clock.real_time_in_s() <= 1.0:
            _to_real_time(services, *agents)
            real_time = True
            _say("the simulated clock has reached now: the vehicles drive on in real time")
        for service in services:
            if service.exited() is not None:
                _report_exit(service)
                return 1
        stop.wait(min(2.0, max(0.1, clock.real_time_in_s() - 1.0)) if not real_time else 2.0)
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
