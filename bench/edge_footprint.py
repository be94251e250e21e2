"""Edge agent footprint: resident memory and CPU share of `envpatrol edge`, and outbox disk use.

The agent runs as its own process (exactly as systemd starts it) against a simulated box and GPS
on pseudo-terminals, publishing to an MQTT broker (or to nobody, `--offline`). Its RSS and CPU
time are read from /proc every second. With `--speed 1` the cadence is the real one (a reading
every 10 s); with a higher speed the run compresses hours into minutes and the CPU share at the
real cadence is extrapolated from the CPU time per reading plus the idle cost measured between
polls (both figures are printed, so the extrapolation can be checked against a real-cadence run).

`--outbox-days N` instead fills an outbox with N days of readings at a 10 s cadence (realistic
payloads from the agent's own encoder) and reports its size on disk.

    .venv/bin/python -m bench.edge_footprint --speed 1 --duration 300
    .venv/bin/python -m bench.edge_footprint --speed 100 --duration 120
    .venv/bin/python -m bench.edge_footprint --outbox-days 7
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.agent import Tagging, tag_reading
from edge.gps import TimedFix
from edge.nmea import Fix
from edge.outbox import Outbox
from edge.profile import load_profile
from edge.quality import QualityTracker
from edge.wire import reading_to_dict
from firmware_sim.drive import CruiseDrive, SimClock
from firmware_sim.field import SHUANGJING_SOURCES, PollutionField
from firmware_sim.route import SHUANGJING_LOOP
from firmware_sim.vehicle import SimVehicle

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_sample(pid: int) -> tuple[float, int]:
    """(CPU seconds used so far, resident bytes) of a process."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    with open(f"/proc/{pid}/statm", encoding="ascii") as f:
        rss = int(f.read().split()[1]) * PAGE
    return cpu, rss


def outbox_rows(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT value FROM counter WHERE name='last_seq'").fetchone()[0])
    except sqlite3.Error:
        return 0


def run_agent(speed: float, duration: float, broker: str, offline: bool) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="envpatrol-bench-"))
    clock = SimClock(datetime.now(UTC), speed=speed)
    profile = load_profile("default-multi")
    vehicle = SimVehicle(
        "bench-01",
        profile,
        CruiseDrive(SHUANGJING_LOOP, clock.start, speed_mps=7.0),
        clock,
        PollutionField(SHUANGJING_SOURCES, seed=1),
    )
    vehicle.start()
    url = "mqtt://127.0.0.1:9" if offline else broker
    config = work / "edge.toml"
    config.write_text(
        f"""vehicle = "bench-01"
time_scale = {speed}
[box]
port = "{vehicle.box_path}"
[gps]
port = "{vehicle.gps_path}"
[mqtt]
url = "{url}"
topic_root = "bench-{uuid.uuid4().hex[:8]}"
[outbox]
path = "{work / "outbox.sqlite3"}"
""",
        encoding="utf-8",
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "edge", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(work / "agent.log").open("wb"),
    )
    try:
        time.sleep(3.0)  # imports and start-up are not the steady state
        cpu0, _ = proc_sample(agent.pid)
        readings0 = outbox_rows(work / "outbox.sqlite3")
        t0 = time.monotonic()
        peak = 0
        samples: list[int] = []
        while time.monotonic() - t0 < duration:
            time.sleep(1.0)
            _, rss = proc_sample(agent.pid)
            samples.append(rss)
            peak = max(peak, rss)
        cpu1, rss_end = proc_sample(agent.pid)
        wall = time.monotonic() - t0
        readings = outbox_rows(work / "outbox.sqlite3") - readings0
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        vehicle.stop()
    cpu = cpu1 - cpu0
    result: dict[str, object] = {
        "speed": speed,
        "offline": offline,
        "wall_s": round(wall, 1),
        "readings": readings,
        "cpu_s": round(cpu, 3),
        "cpu_share_of_one_core_pct": round(100 * cpu / wall, 3),
        "rss_mb_end": round(rss_end / 2**20, 1),
        "rss_mb_peak": round(peak / 2**20, 1),
        "rss_mb_first": round(samples[0] / 2**20, 1) if samples else None,
    }
    if readings and speed > 1:
        per_reading = cpu / readings
        # At the real cadence the agent does the same work per reading, once per 10 s.
        result["cpu_ms_per_reading"] = round(per_reading * 1000, 2)
        result["extrapolated_cpu_share_at_10s_pct"] = round(100 * per_reading / 10.0, 3)
    return result


def fill_outbox(days: float) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="envpatrol-bench-outbox-"))
    path = work / "outbox.sqlite3"
    outbox = Outbox(path)
    # Durability does not change the file's size; skipping the fsync of each of the ~60 000
    # transactions only makes the fill take seconds instead of minutes.
    outbox._db.execute("PRAGMA synchronous=OFF")
    profile = load_profile("default-multi")
    field = PollutionField(SHUANGJING_SOURCES, seed=1)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    drive = CruiseDrive(SHUANGJING_LOOP, start, speed_mps=7.0)
    tracker = QualityTracker()
    count = int(days * 86400 / 10)
    for i in range(count):
        moment = start + timedelta(seconds=10 * i)
        state = drive.state(moment)
        registers = tuple(profile.encode(dict(field.true_values(state.lat, state.lon, moment))))
        fix = Fix(moment, state.lat, state.lon, True, 1, 12, 0.9, 45.0, 7.0, 90.0, "GN")

        now = i * 10.0

        def build(
            seq: int, registers: tuple[int, ...] = registers, fix: Fix = fix, now: float = now
        ) -> bytes:
            reading = tag_reading(
                "patrol-01",
                seq,
                profile,
                registers,
                TimedFix(fix, now - 0.4),
                now,
                fix.time or start,
                Tagging(),
                tracker,
                1e9,
            )
            return json.dumps(reading_to_dict(reading), separators=(",", ":")).encode()

        outbox.store(moment.timestamp(), build)
    stats = outbox.stats()
    outbox._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    outbox.close()
    files = sum(p.stat().st_size for p in work.iterdir())
    return {
        "days": days,
        "readings": count,
        "payload_mb": round(stats.bytes / 2**20, 1),
        "bytes_per_reading": round(stats.bytes / count),
        "disk_mb": round(files / 2**20, 1),
        "disk_bytes_per_reading": round(files / count),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", type=float, default=1.0, help="simulated s per wall s")
    parser.add_argument("--duration", type=float, default=120.0, help="measured wall seconds")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--offline", action="store_true", help="no broker: the outbox fills")
    parser.add_argument("--outbox-days", type=float, help="only measure outbox disk use")
    args = parser.parse_args()
    if args.outbox_days:
        print(json.dumps(fill_outbox(args.outbox_days)))
    else:
        print(json.dumps(run_agent(args.speed, args.duration, args.broker, args.offline)))


if __name__ == "__main__":
    main()
