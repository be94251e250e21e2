"""Replay benchmark: an 8-hour drive through the pseudo-terminal path and the direct path.

1. Records a drive: the worked scenario's first vehicle on an 8-hour shift, simulated on
   pseudo-terminals and read by a real edge agent with recording on (at --record-speed).
   Skipped when --recording names an existing file.
2. Replays it through the serial path (simulated box and GPS on pseudo-terminals, a new edge
   agent, its outbox and publisher, acknowledged by the broker) at each --speeds value, and
   through the direct path, timing each; the serial replays are re-recorded and compared with
   the original reading by reading.

    .venv/bin/python -m bench.replay [--speeds max,200] [--recording FILE] [--mqtt-url URL]

Needs an MQTT broker (ENVPATROL_MQTT_URL or --mqtt-url; default mqtt://127.0.0.1:1883).
Publishes under a topic root of its own (`bench-<random>`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from edge.agent import Agent
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.mqtt import MqttSettings
from edge.recording import Recording, load_recording
from firmware_sim.cli import find_scenario
from firmware_sim.patrol import ScenarioRun
from firmware_sim.replay import replay_direct, replay_serial


def record_drive(path: Path, mqtt: MqttSettings, hours: float, speed: float) -> None:
    base = find_scenario("shuangjing")
    vehicle = dataclasses.replace(base.vehicles[0], shifts=())
    scenario = dataclasses.replace(
        base,
        vehicles=(vehicle,),
        duration_h=hours,
        # The box's protocol faults cost the agent its wall-clock timeout at any speed; the
        # channel faults (stuck, sentinel) stay.
        faults=dataclasses.replace(base.faults, drop=0.0, late=0.0),
    )
    run = ScenarioRun(scenario, speed=speed)
    sim = run.vehicles[0]
    work = path.parent
    settings = EdgeSettings(
        vehicle=sim.name,
        mqtt=mqtt,
        box=BoxSettings(port=sim.box_path),
        gps=GpsSettings(port=sim.gps_path),
        outbox_path=str(work / "record-outbox.sqlite3"),
        time_scale=speed,
        record_path=str(path),
    )
    run.start()
    agent = Agent(settings)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    started = time.monotonic()
    thread.start()
    while run.clock.now() < scenario.end:
        time.sleep(0.5)
    stop.set()
    thread.join(60)
    run.stop()
    print(
        f"recorded {agent.readings} readings, {hours:g} h at {speed:g}x in "
        f"{time.monotonic() - started:.1f} s: {path} ({path.stat().st_size / 1e6:.1f} MB)"
    )


def compare(original: Recording, replayed: Recording) -> dict[str, Any]:
    a = [r.reading for r in original.readings]
    b = [r.reading for r in replayed.readings]
    same_values = sum(x["values"] == y["values"] for x, y in zip(a, b, strict=False))
    same_position = sum(
        (x["position"] or {}).get("lat") == (y["position"] or {}).get("lat")
        and (x["position"] or {}).get("lon") == (y["position"] or {}).get("lon")
        for x, y in zip(a, b, strict=False)
    )
    drifts = sorted(
        abs(
            (datetime.fromisoformat(x["time"]) - datetime.fromisoformat(y["time"]))
            / timedelta(seconds=1)
        )
        for x, y in zip(a, b, strict=False)
        if x["time_source"] == "gnss" and y["time_source"] == "gnss"
    )
    n = len(drifts) or 1
    return {
        "readings": f"{len(b)}/{len(a)}",
        "identical": sum(x == y for x, y in zip(a, b, strict=False)),
        "same_time": sum(x["time"] == y["time"] for x, y in zip(a, b, strict=False)),
        "same_values": same_values,
        "same_position": same_position,
        "time_p50_s": drifts[n // 2] if drifts else None,
        "time_p99_s": drifts[min(n - 1, int(n * 0.99))] if drifts else None,
        "time_max_s": drifts[-1] if drifts else None,
        "within_1s": f"{sum(d <= 1.0 for d in drifts) / n:.1%}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recording", help="use (or create) this recording")
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--record-speed", type=float, default=400.0)
    parser.add_argument("--speeds", default="max,200", help="serial replay speeds, comma-separated")
    parser.add_argument("--mqtt-url", default=os.environ.get("ENVPATROL_MQTT_URL"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="envpatrol-bench-replay-"))
    root = f"bench-{uuid.uuid4().hex[:8]}"
    mqtt = MqttSettings.from_url(args.mqtt_url or "mqtt://127.0.0.1:1883", topic_root=root)
    path = Path(args.recording) if args.recording else work / "drive.jsonl.gz"
    if not path.exists():
        record_drive(path, mqtt, args.hours, args.record_speed)
    loaded = time.monotonic()
    recording = load_recording(path)
    print(
        f"loaded {len(recording.events)} events, {len(recording.readings)} readings, "
        f"{recording.duration_s / 3600:.2f} h of driving in {time.monotonic() - loaded:.1f} s"
    )
    for text in args.speeds.split(","):
        speed = None if text == "max" else float(text)
        again = work / f"replay-{text}.jsonl.gz"
        result = replay_serial(
            recording,
            mqtt.replace(topic_root=f"{root}-s{text}"),
            speed=speed,
            record_path=str(again),
            work=work,
        )
        print(
            f"serial --speed {text}: {result.readings_replayed} readings, "
            f"{result.drive_s / 3600:.2f} h in {result.wall_s:.1f} s = {result.speedup:.0f}x, "
            f"{result.request_mismatches} request mismatches, "
            f"{result.readings_missed} readings missed"
        )
        print(f"  against the original: {compare(recording, load_recording(again))}")
    result = replay_direct(
        recording, mqtt.replace(topic_root=f"{root}-direct"), speed=None, work=work
    )
    print(
        f"direct --speed max: {result.readings_replayed} readings, "
        f"{result.drive_s / 3600:.2f} h in {result.wall_s:.1f} s = {result.speedup:.0f}x"
    )


if __name__ == "__main__":
    main()
