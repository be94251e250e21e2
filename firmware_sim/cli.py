"""`envpatrol sim` (simulated vehicles on pseudo-terminals) and `envpatrol replay` (recorded
drives back through the pipeline)."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.cli import stop_on_signals
from edge.profile import BoxProfile, ProfileError, builtin_profiles, load_profile
from edge.quality import QualitySettings
from firmware_sim.drive import CruiseDrive, SimClock
from firmware_sim.field import SHUANGJING_SOURCES, PollutionField
from firmware_sim.route import SHUANGJING_LOOP
from firmware_sim.route_import import RouteError
from firmware_sim.scenario import (
    Scenario,
    ScenarioError,
    ShiftWindow,
    VehicleSpec,
    load_scenario,
)
from firmware_sim.vehicle import SimVehicle

if TYPE_CHECKING:
    from firmware_sim.patrol import PatrolVehicle

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


def _local(moment: datetime, scenario: Scenario) -> datetime:
    return moment + timedelta(hours=scenario.timezone_h)


def describe_windows(scenario: Scenario, windows: Sequence[ShiftWindow], shown: int = 3) -> str:
    """A vehicle's shift windows in brief: how many, how long in all, and the first `shown`
    in local time."""
    powered_h = sum((w.off - w.on).total_seconds() for w in windows) / 3600.0
    lines = [
        f"    {len(windows)} shift{'' if len(windows) == 1 else 's'}, {powered_h:.1f} h powered "
        f"(local time, UTC{scenario.timezone_h:+g}):"
    ]
    for w in windows[:shown]:
        on, off = _local(w.on, scenario), _local(w.off, scenario)
        later = (off.date() - on.date()).days
        lines.append(
            f"      {on:%a %Y-%m-%d %H:%M}-{off:%H:%M}{f' (+{later} d)' if later else ''} "
            f"on {w.route}"
        )
    if len(windows) > shown:
        lines.append(f"      ... and {len(windows) - shown} more")
    return "\n".join(lines)


def describe(scenario: Scenario) -> str:
    days = f" ({scenario.duration_h / 24:g} days)" if scenario.duration_h >= 48 else ""
    lines = [
        f"scenario {scenario.name}: {scenario.description}".rstrip(": "),
        f"  {scenario.start:%Y-%m-%d %H:%M} UTC for {scenario.duration_h:g} h{days}, "
        f"seed {scenario.seed}",
    ]
    for v in scenario.vehicles:
        lines.append(
            f"  vehicle {v.name}: route {v.route}, box {v.profile}, "
            f"cruise {v.speed.cruise_mps:g} m/s"
        )
        lines.append(describe_windows(scenario, scenario.windows(v)))
    for s in scenario.sources:
        where = "line" if s.end else "point"
        if s.radius_m > 0:
            where = f"area {s.radius_m:g} m around a {where}"
        when: str = s.schedule.kind
        if s.schedule.days < 1:
            when += f", on {s.schedule.days:.0%} of days"
        lines.append(
            f"  source {s.name} ({s.kind}, {where}, {when}): "
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


# How long (wall seconds) a simulated box must stay silent before the agent takes it as switched
# off: well above what timed-out polls cost (each attempt waits its timeout in wall seconds, which
# a speed-up turns into many drive seconds), well below a break between shifts at usual speeds.
SIM_SILENCE_WALL_S = 5.0


def sim_box_off_s(speed: float) -> float:
    """The agent's `[quality] box_off_s` for a simulation at `speed` (drive seconds)."""
    return max(QualitySettings().box_off_s, SIM_SILENCE_WALL_S * speed)


def module_warmup_s(scenario: Scenario, profile: BoxProfile) -> float:
    """The longest warm-up of the simulated modules behind the profile's channels."""
    return max(
        (
            scenario.sensors[ch.channel].warmup_s
            for ch in profile.channels
            if ch.channel in scenario.sensors
        ),
        default=0.0,
    )


def sim_quality(scenario: Scenario, profile: BoxProfile, speed: float) -> dict[str, Any]:
    """The `[quality]` settings that make an agent right about a simulated box: power-on is the
    agent's start (the host's boot is no simulated event) and every power-on the box shows by
    answering after a silence; warm-up lasts as long as the slowest simulated module's."""
    return {
        "warmup_from": "start",
        "warmup_s": module_warmup_s(scenario, profile),
        "box_off_s": sim_box_off_s(speed),
    }


def _toml(value: str | float) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    return repr(float(value))


def edge_config_text(
    vehicle: str,
    profile: str,
    box: str,
    gps: str,
    speed: float,
    mqtt: str,
    outbox: str,
    quality: dict[str, Any],
) -> str:
    """An edge configuration (edge/config.py keys) for one simulated vehicle."""
    lines = [
        f"vehicle = {_toml(vehicle)}",
        "poll_interval_s = 10.0",
        f"time_scale = {_toml(speed)}",
        "[box]",
        f"port = {_toml(box)}",
        f"profile = {_toml(profile)}",
        "[gps]",
        f"port = {_toml(gps)}",
        "[outbox]",
        f"path = {_toml(outbox)}",
        "[mqtt]",
        f"url = {_toml(mqtt)}",
        "[quality]",
        *(f"{key} = {_toml(value)}" for key, value in quality.items()),
    ]
    return "\n".join(lines) + "\n"


def write_edge_config(
    folder: Path, vehicle: PatrolVehicle, spec: VehicleSpec, speed: float, mqtt: str
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{vehicle.name}.toml"
    profile = load_profile(spec.profile)
    path.write_text(
        edge_config_text(
            vehicle.name,
            spec.profile,
            vehicle.box_path,
            vehicle.gps_path,
            speed,
            mqtt,
            f"{(folder / vehicle.name).resolve()}-outbox.sqlite3",
            sim_quality(vehicle.scenario, profile, speed),
        ),
        encoding="utf-8",
    )
    return path


def short_breaks(scenario: Scenario, speed: float) -> list[str]:
    """Vehicles whose shortest break between shifts an agent cannot tell from timed-out polls
    at this speed: their box's power-on after such a break does not restart the warm-up."""
    silence = sim_box_off_s(speed)
    out = []
    for v in scenario.vehicles:
        windows = scenario.windows(v)
        gaps = [(b.on - a.off).total_seconds() for a, b in itertools.pairwise(windows)]
        if gaps and min(gaps) <= silence:
            out.append(
                f"{v.name}: a break between shifts of {min(gaps) / 60:.0f} min is within the "
                f"{silence / 60:.0f} min of silence the agent needs at {speed:g}x to see the box "
                "switched off; run slower for a new warm-up after every break"
            )
    return out


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
    for vehicle, vehicle_spec in zip(run.vehicles, scenario.vehicles, strict=True):
        print(f"{vehicle.name}: box {vehicle.box_path}  gps {vehicle.gps_path}", flush=True)
        if args.edge_configs:
            path = write_edge_config(
                Path(args.edge_configs), vehicle, vehicle_spec, args.speed, mqtt
            )
            print(f"  envpatrol edge --config {path}", flush=True)
    if args.edge_configs:
        for warning in short_breaks(scenario, args.speed):
            print(f"note: {warning}", flush=True)
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
