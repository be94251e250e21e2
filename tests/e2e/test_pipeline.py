"""The whole path on real parts: simulated box and GPS on pseudo-terminals, the edge agent opening
them with pyserial, the machine's Mosquitto, the ingest, PostgreSQL, and the HTTP API."""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from demo import job as demo_job
from demo.api_server import api_server
from edge.agent import Agent
from edge.box import Discard
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.mqtt import MqttSettings
from edge.profile import load_profile
from firmware_sim.drive import CruiseDrive, SimClock
from firmware_sim.field import SHUANGJING_SOURCES, PollutionField
from firmware_sim.geo import haversine_m
from firmware_sim.route import SHUANGJING_LOOP
from firmware_sim.truth import Accounting, account
from firmware_sim.vehicle import SimVehicle, TruthRecord
from ingest.service import IngestService
from ingest.settings import IngestSettings
from tests.services import wait_until

pytestmark = pytest.mark.e2e

# Simulated seconds per wall second. The suite runs under coverage, which slows the simulated
# boxes, the agents, the ingest and the hotspot job (all one process, one GIL) two- to
# threefold: at 400x the agents fell short of MIN_READINGS there.
SPEED = 200.0
SIM_HOURS = 2.5
# At the 10 s cadence the nominal drive makes 900 readings a vehicle; an idle machine makes
# about 750-830 of them.
MIN_READINGS = 500
DRIVE_LIMIT_S = 240.0  # wall seconds beyond the nominal drive (a starved agent needs them)
VEHICLES = 2


def same_values(served: dict[str, float | None], stored: dict[str, Any]) -> bool:
    """A stored reading's values are those the box served (to the stored precision)."""
    for channel, value in served.items():
        got = stored.get(channel)
        if value is None or got is None:
            if value is not got:
                return False
        elif abs(got - value) > 1e-3:
            return False
    return True


@pytest.fixture
def api_base(database_url: str) -> Iterator[str]:
    with api_server(database_url, timeout_s=30) as base:
        yield base


@pytest.fixture
def hotspot_job(database_url: str) -> Iterator[None]:
    """The demo's analysis loop every 2 s, stopped when the test ends however it ends: a loop
    left running after a failure would go on against a dropped database."""
    stop = threading.Event()
    thread = threading.Thread(
        target=demo_job.loop,
        args=(lambda: psycopg.connect(database_url, autocommit=True), stop, 2.0),
        daemon=True,
    )
    thread.start()
    yield
    stop.set()
    thread.join(30)


@pytest.mark.usefixtures("hotspot_job")
def test_every_reading_arrives_once_with_position_and_values_and_sources_show_as_hotspots(
    database_url: str, broker_url: str, topic_root: str, api_base: str
) -> None:
    mqtt = MqttSettings.from_url(broker_url, topic_root=topic_root)
    ingest = IngestService(
        IngestSettings(database_url=database_url, mqtt=mqtt, client_id=f"{topic_root}-ingest")
    )
    stop_ingest = threading.Event()
    ingest_thread = threading.Thread(target=ingest.run, args=(stop_ingest,))
    ingest_thread.start()
    # Start far enough back that the simulated clock cannot pass the real one (whose readings
    # the ingest rejects as from the future) even when a loaded machine uses the whole limit.
    lead = timedelta(seconds=SPEED * (SIM_HOURS * 3600 / SPEED + DRIVE_LIMIT_S + 60))
    clock = SimClock(datetime.now(UTC) - lead, speed=SPEED)
    field = PollutionField(SHUANGJING_SOURCES, seed=3)
    profile = load_profile("default-multi")
    truth: dict[str, list[TruthRecord]] = {}
    discards: dict[str, list[Discard]] = {}
    drives: dict[str, CruiseDrive] = {}
    vehicles: list[SimVehicle] = []
    agents: list[tuple[Agent, threading.Thread, threading.Event]] = []
    work = Path(tempfile.mkdtemp(prefix="envpatrol-e2e-"))
    for i in range(VEHICLES):
        name = f"e2e-{i + 1}-{topic_root[-6:]}"  # own client id on a shared broker
        truth[name] = []
        discards[name] = []
        drive = CruiseDrive(SHUANGJING_LOOP, clock.start, speed_mps=6.0 + i, offset_m=i * 1500.0)
        drives[name] = drive
        vehicle = SimVehicle(
            name, profile, drive, clock, field, seed=i, on_truth=truth[name].append
        )
        vehicle.start()
        vehicles.append(vehicle)
        settings = EdgeSettings(
            vehicle=name,
            mqtt=mqtt,
            box=BoxSettings(port=vehicle.box_path),
            gps=GpsSettings(port=vehicle.gps_path),
            outbox_path=str(work / f"{name}.sqlite3"),
            poll_interval_s=10.0,
            time_scale=SPEED,
        )
        agent = Agent(settings, on_discard=discards[name].append)
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop,))
        thread.start()
        agents.append((agent, thread, stop))

    try:
        time.sleep(SIM_HOURS * 3600 / SPEED)  # the drive itself: simulated hours, not a wait
        # The simulated clock runs at a fixed speed-up whatever the agents manage: on a loaded
        # machine a starved agent samples fewer of those hours. Drive on until each has made
        # enough readings for the analysis to see the sources.
        wait_until(
            lambda: min(agent.readings for agent, _, _ in agents) >= MIN_READINGS,
            DRIVE_LIMIT_S,
            f"every agent to make {MIN_READINGS} readings",
            every=0.5,
        )
        for _, thread, stop in agents:
            stop.set()
            thread.join(30)
        for vehicle in vehicles:
            vehicle.stop()
        # What the agents made. Under load a box may serve an answer after the agent gave up
        # on it, so the truth can hold answers that never became readings: the agent reports
        # each one it read as a discard; the rest were still on the line when it stopped.
        made = {agent.settings.vehicle: agent.readings for agent, _, _ in agents}
        identities = {vehicle.name: vehicle.box.identity_answer() for vehicle in vehicles}
        accepted = {agent.settings.vehicle: agent.box.counters.ok for agent, _, _ in agents}
        requests = {agent.settings.vehicle: agent.box.counters.requests for agent, _, _ in agents}
        assert accepted == made
        produced = sum(made.values())
        wait_until(
            lambda: ingest.counters.readings_inserted >= produced,
            60,
            "the ingest to store everything",
        )
    finally:
        # However the test ends: simulated vehicles left running at this speed-up would take a
        # core from every test after this one.
        for _, thread, stop in agents:
            stop.set()
            thread.join(30)
        for vehicle in vehicles:
            vehicle.stop()
        stop_ingest.set()
        ingest_thread.join(30)

    # Everything the boxes served, stored once, read back through the API.
    stored: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(base_url=api_base, timeout=30) as http:
        while True:
            params: dict[str, Any] = {"limit": 500, "from": "2000-01-01T00:00:00Z"}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/v1/readings", params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            stored.extend(body["results"])
            cursor = body["meta"].get("next_cursor")
            if not cursor:
                break
        accounted: dict[str, Accounting] = {}
        for name, records in truth.items():
            rows = sorted((r for r in stored if r["vehicle"] == name), key=lambda r: r["seq"])
            assert [r["seq"] for r in rows] == list(range(1, made[name] + 1)), name
            # Every answer the box served, in order, is a reading, one of the agent's discards,
            # or one of those still unread when it stopped (at most one per request it wrote
            # that it read no answer for); `account` checks it byte for byte.
            accounting = account(
                [r.served.frame for r in records],
                discards[name],
                made[name],
                identities[name],
            )
            accounted[name] = accounting
            read = len(accounting.taken) + len(accounting.discarded)
            assert len(accounting.unread) <= requests[name] - read, (name, accounting.unread)
            for row, index in zip(rows, accounting.taken, strict=True):
                record = records[index]
                assert same_values(record.served.values, row["values"]), (name, row["seq"], index)
                if row["lat"] is not None and "no_fix" not in row["flags"]:
                    # A fresh fix puts the reading where the vehicle was at the reading's own
                    # time (GNSS time of the fix plus its age); a fix older than the limit must
                    # say so. (The box may have been sampled a little earlier: at this speed-up a
                    # tenth of a wall second of thread scheduling is most of a simulated minute.)
                    moment = datetime.fromisoformat(row["time"].replace("Z", "+00:00"))
                    where = drives[name].state(moment)
                    error = haversine_m(row["lat"], row["lon"], where.lat, where.lon)
                    if error >= 8.0 * 3 * record.state.speed_mps:
                        assert "stale_fix" in row["flags"], (
                            name,
                            row["seq"],
                            error,
                            (row.get("fix") or {}).get("age_s"),
                        )
        assert len(stored) == produced
        print(
            "\nanswers:",
            {
                name: {
                    "served": len(truth[name]),
                    "readings": len(a.taken),
                    "discarded": len(a.discarded),
                    "unread": len(a.unread),
                    "discards": dict(Counter(d.reason for d in discards[name])),
                }
                for name, a in accounted.items()
            },
        )

        # Each injected source is found as a hotspot on its pollutant, in the hotspot job's
        # runs (every 2 s over the stored passes, short-patrol settings, as in the demo).
        expected = {"dust": "pm10", "cooking": "cooking_fume", "traffic": "no2"}

        def nearest(source: Any) -> float | None:
            response = http.get("/v1/hotspots", params={"pollutant": expected[source.kind]})
            if response.status_code == 404:  # no run yet
                return None
            assert response.status_code == 200, response.text
            distances = [
                haversine_m(f["properties"]["lat"], f["properties"]["lon"], source.lat, source.lon)
                for f in response.json()["features"]
            ]
            return min(distances) if distances else None

        def found(source: Any) -> Callable[[], bool]:
            return lambda: (nearest(source) or 1e9) < 150

        for source in SHUANGJING_SOURCES:
            # once a second: the API allows 120 anonymous requests a minute
            try:
                wait_until(found(source), 60, f"a hotspot near {source.name}", every=1.0)
            except AssertionError as exc:
                listed = http.get("/v1/hotspots", params={"format": "json"}).json()
                raise AssertionError(f"{exc}; hotspots listed: {listed}") from None
