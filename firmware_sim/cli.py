"""`envpatrol sim` (simulated vehicles on pseudo-terminals) and `envpatrol replay` (recorded
drives back through the pipeline)."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from edge.cli import stop_on_signals
from edge.profile import ProfileError, builtin_profiles, load_profile
from firmware_sim.drive import CruiseDrive, SimClock
from firmware_sim.field import SHUANGJING_SOURCES, PollutionField
from firmware_sim.route import SHUANGJING_LOOP
from firmware_sim.route_import import RouteError
from firmware_sim.scenario import Scenario, ScenarioError, load_scenario
from firmware_sim.vehicle import SimVehicle

SIM_EPILOG = """\
examples:
  # one vehicle on the Shuangjing loop in real time (no scenario file)
  envpatrol sim
  # the worked scenario at 60x, ground truth beside it, edge configs ready to use
  envpatrol sim --scenario shuangjing --speed 60 --truth run/truth.jsonl.gz --edge-configs run/
  envpatrol edge --config run/patrol-01.toml --record run/patrol-01.jsonl.gz
  # check a scenario file and print what it describes, without starting anything
  envpatrol sim --scenario my.toml --check

Scenario files are documented in docs/scenarios.md; built-in scenarios: {builtin}.
The edge agent must run with time_scale equal to --speed (the written configs do that).
"""

REPLAY_EPILOG = """\
examples:
  # record a drive (on a vehicle, or against `envpatrol sim`)
  envpatrol edge --config edge.toml --record drive.jsonl.gz
  # replay it through pseudo-terminals and a real edge agent at 100x
  envpatrol replay drive.jsonl.gz --speed 100 --mqtt-url mqtt://127.0.0.1:1883
  # as fast as the pipeline takes, into another topic root
  envpatrol replay drive.jsonl.gz --speed max --topic-root envpatrol-replay
  # publish the recorded readings directly (no serial hop), unchanged
  envpatrol replay drive.jsonl.gz --direct --speed max

The broker comes from --config (an edge TOML file: [mqtt] table), else --mqtt-url, else
ENVPATROL_MQTT_URL, else mqtt://127.0.0.1:1883. The recording format is in docs/recording.md.
"""


def builtin_scenarios() -> list[str]:
    folder = resources.files("firmware_sim").joinpath("scenarios")
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def find_scenario(name_or_path: str) -> Scenario:
    path = Path(name_or_path)
    if path.suffix != ".toml" and not path.exists():
        resource = resources.files("firmware_sim").joinpath("scenarios", f"{name_or_path}.toml")
        if not resource.is_file():
            known = ", ".join(builtin_scenarios())
            raise ScenarioError(
                "(file)", f"no such file or built-in scenario (known: {known})", name_or_path
            )
        path = Path(str(resource))
    return load_scenario(path)


def describe(scenario: Scenario) -> str:
    lines = [
        f"scenario {scenario.name}: {scenario.description}".rstrip(": "),
        f"  {scenario.start:%Y-%m-%d %H:%M} UTC for {scenario.duration_h:g} h, seed {scenario.seed}",
    ]
    for v in scenario.vehicles:
        on, off = scenario.shift_window(v)
        lines.append(
            f"  vehicle {v.name}: route {v.route}, box {v.profile}, "
            f"on {on:%H:%M}-{off:%H:%M} UTC, cruise {v.speed.cruise_mps:g} m/s"
        )
    for s in scenario.sources:
        where = "line" if s.end else "point"
        lines.append(
            f"  source {s.name} ({s.kind}, {where}, {s.schedule.kind}): "
            + ", ".join(f"{ch} +{a:g}" for ch, a in s.amplitude.items())
        )
    f = scenario.faults
    lines.append(
        f"  faults per request: drop {f.drop:g}, late {f.late:g}, crc {f.crc:g}, "
        f"garbage {f.garbage:g}; stuck {len(f.stuck)}, sentinel {len(f.sentinel)} windows"
    )
    return "\n".join(lines)


def sim_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = textwrap.fill(
        "Start simulated patrol vehicles, each with a box (Modbus RTU) and a GPS receiver (NMEA) "
        "on its own pseudo-terminal. Without --scenario: vehicles drive the Shuangjing loop "
        "through the demo pollution field until Ctrl-C. With --scenario: the scenario's "
        "vehicles, shifts, field, sensor and GPS models and faults, until its end. Point "
        "`envpatrol edge` at the printed device paths (box.port, gps.port)."
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = SIM_EPILOG.format(builtin=", ".join(builtin_scenarios()) or "none")
    parser.add_argument(
        "--scenario", metavar="FILE|NAME", help="a scenario TOML file or a built-in name"
    )
    parser.add_argument(
        "--check", action="store_true", help="validate the scenario, describe it, exit"
    )
    parser.add_argument("--truth", metavar="FILE", help="write the ground truth here (.jsonl.gz)")
    parser.add_argument(
        "--edge-configs", metavar="DIR", help="write one edge TOML per vehicle into DIR"
    )
    parser.add_argument("--mqtt-url", help="broker for the written edge configs")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per wall second (1)"
    )
    parser.add_argument("--vehicles", type=int, default=1, help="without a scenario: how many (1)")
    parser.add_argument(
        "--profile",
        default="default-multi",
        help=f"without a scenario: box profile ({', '.join(builtin_profiles())})",
    )
    parser.add_argument("--seed", type=int, default=7, help="without a scenario: random seed (7)")

    def run(args: argparse.Namespace) -> int:
        if args.speed <= 0:
            print("envpatrol sim: --speed must be positive", file=sys.stderr)
            return 2
        if args.scenario:
            return _run_scenario(args)
        if args.check or args.truth:
            print("envpatrol sim: --check and --truth need --scenario", file=sys.stderr)
            return 2
        return _run_loop(args)

    return run


def _write_edge_config(
    folder: Path, name: str, box: str, gps: str, speed: float, mqtt: str
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(
        f'vehicle = "{name}"\npoll_interval_s = 10.0\ntime_scale = {speed}\n'
        f'[box]\nport = "{box}"\n[gps]\nport = "{gps}"\n'
        f'[outbox]\npath = "{(folder / name).resolve()}-outbox.sqlite3"\n'
        f'[mqtt]\nurl = "{mqtt}"\n',
        encoding="utf-8",
    )
    return path


def _run_scenario(args: argparse.Namespace) -> int:
    from firmware_sim.patrol import ScenarioRun

    try:
        scenario = find_scenario(args.scenario)
        if args.check:
            from firmware_sim.patrol import build_route

            for spec in scenario.routes.values():
                route = build_route(spec)
                print(
                    f"route {spec.name}: {len(route.waypoints)} waypoints, {route.length_m:.0f} m"
                )
            for vehicle_spec in scenario.vehicles:
                load_profile(vehicle_spec.profile)
            print(describe(scenario))
            return 0
        run = ScenarioRun(scenario, speed=args.speed, truth_path=args.truth)
    except (ScenarioError, RouteError, ProfileError) as exc:
        print(f"envpatrol sim: {exc}", file=sys.stderr)
        return 2
    stop = stop_on_signals()
    print(describe(scenario), flush=True)
    run.start()
    mqtt = args.mqtt_url or os.environ.get("ENVPATROL_MQTT_URL") or "mqtt://127.0.0.1:1883"
    for vehicle in run.vehicles:
        print(f"{vehicle.name}: box {vehicle.box_path}  gps {vehicle.gps_path}", flush=True)
        if args.edge_configs:
            path = _write_edge_config(
                Path(args.edge_configs),
                vehicle.name,
                vehicle.box_path,
                vehicle.gps_path,
                args.speed,
                mqtt,
            )
            print(f"  envpatrol edge --config {path}", flush=True)
    print(
        f"running until {scenario.end:%Y-%m-%d %H:%M} UTC simulated "
        f"({run.remaining_wall_s():.0f} s wall); Ctrl-C stops earlier.",
        flush=True,
    )
    stop.wait(run.remaining_wall_s())
    run.stop()
    if args.truth:
        print(f"ground truth: {args.truth} ({run.truth.records if run.truth else 0} readings)")
    return 0


def _run_loop(args: argparse.Namespace) -> int:
    stop = stop_on_signals()
    clock = SimClock(datetime.now(UTC), speed=args.speed)
    field = PollutionField(SHUANGJING_SOURCES, seed=args.seed)
    profile = load_profile(args.profile)
    vehicles = []
    for i in range(args.vehicles):
        drive = CruiseDrive(SHUANGJING_LOOP, clock.start, offset_m=i * 700.0)
        vehicle = SimVehicle(
            f"patrol-{i + 1:02d}", profile, drive, clock, field, seed=args.seed + i
        )
        vehicle.start()
        vehicles.append(vehicle)
        print(f"{vehicle.name}: box {vehicle.box_path}  gps {vehicle.gps_path}", flush=True)
    print("Ctrl-C stops the simulation.", flush=True)
    stop.wait()
    for vehicle in vehicles:
        vehicle.stop()
    return 0


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'max'") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError("speed must be positive")
    return value


def replay_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = textwrap.fill(
        "Replay a recorded drive (envpatrol edge --record). By default through pseudo-terminals: "
        "a simulated box answers a real edge agent with the recorded bytes and a simulated GPS "
        "sends the recorded NMEA, so the agent decodes, tags, stores and publishes the drive "
        "again. With --direct the recorded readings are published as they are."
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = REPLAY_EPILOG
    parser.add_argument("drive", metavar="DRIVE", help="a recording (.jsonl.gz)")
    parser.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        help="drive seconds per wall second, or 'max' for as fast as the pipeline takes (1)",
    )
    parser.add_argument("--direct", action="store_true", help="publish the recorded readings")
    parser.add_argument("--config", help="edge TOML file whose [mqtt] table names the broker")
    parser.add_argument("--mqtt-url", help="broker URL (mqtt://user:pass@host:port)")
    parser.add_argument("--topic-root", help="topic root to publish under (envpatrol)")
    parser.add_argument("--vehicle", help="publish as this vehicle instead of the recorded one")
    parser.add_argument("--record", metavar="FILE", help="record the replay itself (serial path)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return run_replay


def run_replay(args: argparse.Namespace) -> int:
    from edge.config import load_toml, mqtt_from
    from edge.errors import SettingsError
    from edge.recording import RecordingError, load_recording
    from firmware_sim.progress import ProgressBar
    from firmware_sim.replay import ReplayError, replay_direct, replay_serial

    try:
        recording = load_recording(args.drive)
        doc = load_toml(args.config)
        section = dict(doc.get("mqtt", {})) if isinstance(doc.get("mqtt", {}), dict) else {}
        if args.topic_root:
            section["topic_root"] = args.topic_root
        environ = dict(os.environ)
        if args.mqtt_url:
            environ["ENVPATROL_MQTT_URL"] = args.mqtt_url
        mqtt = mqtt_from(section, environ, default_username=args.vehicle or recording.vehicle)
    except (RecordingError, SettingsError) as exc:
        print(f"envpatrol replay: {exc}", file=sys.stderr)
        return 2
    readings = len(recording.readings)
    label = f"{args.vehicle or recording.vehicle} {'direct' if args.direct else 'serial'}"
    bar = None if args.no_progress else ProgressBar(recording.duration_s, label)

    def progress(t: float, note: str) -> None:
        if bar is not None:
            bar.update(t, f"{note}, drive {t / 3600:.2f} h")

    stop = stop_on_signals()
    try:
        if args.direct:
            result = replay_direct(
                recording,
                mqtt,
                speed=args.speed,
                vehicle=args.vehicle,
                progress=progress,
                stop=stop,
            )
        else:
            result = replay_serial(
                recording,
                mqtt,
                speed=args.speed,
                vehicle=args.vehicle,
                record_path=args.record,
                progress=progress,
                stop=stop,
            )
    except ReplayError as exc:
        print(f"\nenvpatrol replay: {exc}", file=sys.stderr)
        return 1
    if bar is not None:
        bar.finish(f"{result.readings_replayed}/{readings} readings")
    print(
        f"replayed {result.readings_replayed} of {readings} readings, "
        f"{result.drive_s / 3600:.2f} h of driving in {result.wall_s:.1f} s "
        f"({result.speedup:.0f}x)"
        + (f"; {result.request_mismatches} requests differed" if result.request_mismatches else "")
        + (
            f"; {result.gps_sentences_lost} NMEA sentences lost on the way"
            if result.gps_sentences_lost
            else ""
        )
        + (
            f"; {result.readings_missed} answers gave no reading in time"
            if result.readings_missed
            else ""
        )
    )
    return 0 if result.readings_replayed >= readings else 1
