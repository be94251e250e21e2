"""`envpatrol sim`: simulated boxes and GPS receivers on pseudo-terminals, for a real edge agent."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime

from edge.cli import stop_on_signals
from edge.profile import builtin_profiles, load_profile
from firmware_sim.drive import Drive, SimClock
from firmware_sim.field import SHUANGJING_SOURCES, PollutionField
from firmware_sim.route import SHUANGJING_LOOP
from firmware_sim.vehicle import SimVehicle


def sim_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = (
        "Start simulated patrol vehicles, each with a box (Modbus RTU) and a GPS receiver (NMEA) "
        "on its own pseudo-terminal, driving the Shuangjing loop through the demo pollution field. "
        "Point `envpatrol edge` at the printed device paths (box.port, gps.port) and set its "
        "time_scale to the same --speed."
    )
    parser.add_argument("--vehicles", type=int, default=1, help="how many vehicles (1)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per wall second"
    )
    parser.add_argument(
        "--profile", default="default-multi", help=f"box profile ({', '.join(builtin_profiles())})"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed of the field and sensors")

    def run(args: argparse.Namespace) -> int:
        stop = stop_on_signals()
        clock = SimClock(datetime.now(UTC), speed=args.speed)
        field = PollutionField(SHUANGJING_SOURCES, seed=args.seed)
        profile = load_profile(args.profile)
        vehicles = []
        for i in range(args.vehicles):
            drive = Drive(SHUANGJING_LOOP, clock.start, offset_m=i * 700.0)
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

    return run
