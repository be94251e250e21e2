"""Record a simulated drive through the real pipeline, replay it, and find the same readings.

Scenario vehicle (box and GPS on pseudo-terminals, with CRC, garbage and dropped-poll faults) ->
edge agent recording the drive -> Mosquitto -> ingest -> PostgreSQL. The recording is then
replayed into fresh databases under their own topic roots: through pseudo-terminals and a new
edge agent (serial path), and published as recorded (direct path).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from edge.agent import Agent
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.mqtt import MqttSettings
from edge.recording import SerialChunk, load_recording
from firmware_sim.patrol import ScenarioRun
from firmware_sim.replay import replay_direct, replay_serial
from firmware_sim.scenario import parse_scenario
from firmware_sim.truth import read_truth
from ingest.service import IngestService
from ingest.settings import IngestSettings
from store.reading_columns import COLUMNS as READING_COLUMNS
from tests.services import scratch_database, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SPEED = 200.0
SCENARIO = """
name = "replay-test"
seed = 11
start = 2026-03-02T12:00:00+08:00
duration_h = 0.35
[[vehicles]]
name = "rec-1"
[vehicles.speed]
idle_every_s = [600, 900]
idle_s = [60, 120]
[[sources]]
name = "gate"
kind = "dust"
at = [39.89368, 116.47020]
[sources.amplitude]
pm10 = 150.0
[faults]
drop = 0.03
crc = 0.03
garbage = 0.05
"""

# Every stored column but the vehicle (named alike in each run) and the cell (derived).
COLUMNS = [c for c in READING_COLUMNS if c not in ("vehicle", "cell")]


@contextmanager
def ingest(database_url: str, mqtt: MqttSettings) -> Iterator[IngestService]:
    service = IngestService(
        IngestSettings(database_url=database_url, mqtt=mqtt, client_id=f"{mqtt.topic_root}-in")
    )
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    try:
        yield service
    finally:
        stop.set()
        thread.join(30)


def stored(database_url: str, vehicle: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url) as conn:
        cursor = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM reading WHERE vehicle = %s ORDER BY seq",
            (vehicle,),
        )
        return [dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def test_a_recorded_drive_replays_into_the_same_readings(
    database_url: str, admin_url: str, broker_url: str, topic_root: str, tmp_path: Path
) -> None:
    # 1. The original drive, recorded by the agent.
    scenario = parse_scenario(SCENARIO, "replay-test.toml")
    run = ScenarioRun(scenario, speed=SPEED, truth_path=str(tmp_path / "truth.jsonl.gz"))
    vehicle = run.vehicles[0]
    mqtt = MqttSettings.from_url(broker_url, topic_root=topic_root)
    recording_path = tmp_path / "drive.jsonl.gz"
    # The vehicle name is the MQTT client id: one of its own, so that a run of this test
    # elsewhere on the same broker cannot take over its session.
    name = f"rec-{topic_root.removeprefix('eptest-')}"
    settings = EdgeSettings(
        vehicle=name,
        mqtt=mqtt,
        box=BoxSettings(port=vehicle.box_path),
        gps=GpsSettings(port=vehicle.gps_path),
        outbox_path=str(tmp_path / "outbox.sqlite3"),
        time_scale=SPEED,
        record_path=str(recording_path),
    )
    with ingest(database_url, mqtt) as service:
        run.start()
        agent = Agent(settings)
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop,))
        thread.start()
        try:
            wait_until(lambda: run.clock.now() >= scenario.end, 60, "the end of the drive")
        finally:
            stop.set()
            thread.join(30)
            run.stop()
        made = agent.readings
        wait_until(lambda: service.counters.readings_inserted >= made, 60, "the original")
    original = stored(database_url, name)
    # A dropped poll costs the agent its 0.5 s (wall) timeout: 100 s of drive time at 200x, and
    # a busy machine makes the agent miss grid slots: of the 126 polls due, 30-60 are typical.
    assert len(original) == made > 20
    assert agent.box.counters.crc_errors + agent.box.counters.timeouts > 0  # faults were met
    assert agent.box.counters.garbage_bytes > 0

    recording = load_recording(recording_path)
    assert recording.complete
    assert len(recording.readings) == made
    assert any(isinstance(e, SerialChunk) and e.port == "gps" for e in recording.events)

    truth = list(read_truth(tmp_path / "truth.jsonl.gz"))
    assert truth[0]["format"] == "envpatrol-truth"
    assert [r["name"] for r in truth if r["type"] == "source"] == ["gate"]
    served = [r for r in truth if r["type"] == "reading"]
    assert len(served) >= made
    assert all(set(r["truth"]) >= {"pm10", "no2"} for r in served)

    # 2. The direct path: the recorded readings, published as they are.
    with scratch_database(admin_url) as direct_db:
        direct_mqtt = mqtt.replace(topic_root=f"{topic_root}-direct")
        with ingest(direct_db, direct_mqtt) as service:
            result = replay_direct(recording, direct_mqtt, speed=None)
            assert result.readings_replayed == made
            wait_until(lambda: service.counters.readings_inserted >= made, 60, "direct replay")
        assert stored(direct_db, name) == original

    # 3. The serial path: the recorded bytes through pseudo-terminals and a new edge agent on a
    # clock driven from the recording, paced at SPEED and as fast as possible. Every byte is the
    # same, so every decoded value and fix is; the agent's clock reads what it read on the road,
    # so every fix age, reading time and flag is too.
    for speed in (SPEED, None):
        with scratch_database(admin_url) as serial_db:
            label = "max" if speed is None else f"{speed:g}"
            serial_mqtt = mqtt.replace(topic_root=f"{topic_root}-serial-{label}")
            with ingest(serial_db, serial_mqtt) as service:
                result = replay_serial(recording, serial_mqtt, speed=speed, work=tmp_path)
                assert result.request_mismatches == 0
                assert result.readings_missed == 0
                assert result.readings_replayed == made
                wait_until(lambda: service.counters.readings_inserted >= made, 60, "serial replay")
            replayed = stored(serial_db, name)
        assert len(replayed) == len(original)
        for before, after in zip(original, replayed, strict=True):
            differ = {k: (v, after[k]) for k, v in before.items() if after[k] != v}
            assert not differ, (label, before["seq"], differ)
        assert any(r["time_source"] == "gnss" for r in replayed)
