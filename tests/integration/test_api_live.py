"""The live feed end to end: a real uvicorn server, a paho publisher, and the machine's Mosquitto
or a private one run from the shipped configuration (client id bound to the login)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import psycopg
import pytest
import uvicorn

from api import keys, live
from api.app import create_app
from api.geometry import parse_area
from api.officers import grids
from api.scopes import KeyScope
from api.settings import ApiSettings
from demo.embedded import free_port
from edge.mqtt import MqttSettings, make_client
from edge.topics import Topics
from edge.wire import encode_message
from hotspots.analysis.synthetic import (
    SHUANGJING,
    Source,
    SyntheticWorld,
    as_stored,
    generate,
    offset,
)
from hotspots.job import JobSettings, run_once
from ingest import pass_store
from store.analysis_meta import read_analysis
from tests.integration.shipped_broker import Probe, ShippedBroker, needs_broker_tools
from tests.unit.api.test_live import position, reading

pytestmark = pytest.mark.integration


@dataclass
class Server:
    base: str
    mqtt: MqttSettings


def serve(settings: ApiSettings) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        assert thread.is_alive(), "the API thread died"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live_server(database_url: str, broker_url: str, topic_root: str) -> Iterator[Server]:
    mqtt = MqttSettings.from_url(broker_url, topic_root=topic_root)
    settings = ApiSettings(database_url=database_url, mqtt=mqtt)
    for base in serve(settings):
        yield Server(base, mqtt)


def events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, object]]]:
    kind = ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield kind, json.loads(line[6:])


def publish(mqtt: MqttSettings, topic: str, payload: bytes) -> None:
    client = make_client(mqtt, f"live-test-{time.monotonic_ns()}")
    client.connect(mqtt.host, mqtt.port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.rc == paho.MQTT_ERR_SUCCESS
    finally:
        client.disconnect()
        client.loop_stop()


def test_positions_and_states_arrive_as_server_sent_events(live_server: Server) -> None:
    topics = Topics(live_server.mqtt.topic_root)
    timeout = httpx.Timeout(10.0, read=20.0)
    with httpx.stream("GET", f"{live_server.base}/v1/live", timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["RateLimit-Limit"] == "120"
        stream = events(response.iter_lines())
        kind, _ = next(stream)
        assert kind == "ready"  # subscribed: what is published now reaches us
        publish(live_server.mqtt, topics.of("patrol-01", "readings"), b"garbage")
        payload = encode_message("patrol-01", [reading(1), reading(2, seconds=10)])
        publish(live_server.mqtt, topics.of("patrol-01", "readings"), payload)
        status = json.dumps({"state": "offline", "time": "2026-05-01T08:01:00Z"}).encode()
        publish(live_server.mqtt, topics.of("patrol-01", "status"), status)
        kind, data = next(stream)
        assert (kind, data["vehicle"], data["seq"]) == ("position", "patrol-01", 2)
        kind, data = next(stream)
        assert (kind, data["state"]) == ("status", "offline")


def test_a_new_hotspot_in_a_new_run_is_an_event(
    database_url: str, broker_url: str, topic_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "HOTSPOT_POLL_S", 0.2)  # read when the app is made
    mqtt = MqttSettings.from_url(broker_url, topic_root=topic_root)
    for base in serve(ApiSettings(database_url=database_url, mqtt=mqtt)):
        a_new_hotspot_in_a_new_run_is_an_event(base, database_url)


def a_new_hotspot_in_a_new_run_is_an_event(base: str, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        resolution = read_analysis(conn).resolution
        world = SyntheticWorld(
            resolution=resolution,
            vehicles=2,
            days=8,
            trips_per_day=2,
            pollutants=("pm25",),
            sources=(Source(*offset(SHUANGJING, -125.0, 125.0), "pm25", 40.0, 40.0),),
            seed=4,
        )
        table = generate(world)
        with conn.transaction(), conn.cursor() as cur:
            pass_store.store(cur, resolution, as_stored(table))
        end = datetime.fromtimestamp(float(table.end.max()), UTC) + timedelta(hours=1)
        job = JobSettings(window=timedelta(days=30))
        before = run_once(conn, job, now=end - timedelta(days=20))  # no passes yet: no hotspot
        assert before.hotspots == 0
        timeout = httpx.Timeout(10.0, read=20.0)
        with httpx.stream("GET", f"{base}/v1/live", timeout=timeout) as response:
            stream = events(response.iter_lines())
            assert next(stream)[0] == "ready"
            after = run_once(conn, job, now=end)
            assert after.hotspots > 0
            kind, data = next(stream)
    assert kind == "hotspot"
    assert data["run_id"] == after.run_id
    assert str(data["id"]).startswith(f"{after.run_id}-")
    assert data["pollutant"] == "pm25"


def square_grid(name: str, lat: float, lon: float, subdistrict: str) -> grids.GridUpload:
    half = 0.01
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half],
            [lon - half, lat + half], [lon - half, lat - half]]  # fmt: skip
    area = parse_area({"type": "Polygon", "coordinates": [ring]})
    return grids.GridUpload(name, "someone", area, {}, subdistrict)


def test_a_viewer_limited_to_grids_gets_only_the_hotspots_inside_them(
    database_url: str, broker_url: str, topic_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "HOTSPOT_POLL_S", 0.2)  # read when the app is made
    mqtt = MqttSettings.from_url(broker_url, topic_root=topic_root)
    lat, lon = SHUANGJING
    with psycopg.connect(database_url, autocommit=True) as conn:
        grids.save(conn, [square_grid("here", lat, lon, "双井街道"),
                          square_grid("elsewhere", lat + 0.1, lon, "其他街道")])  # fmt: skip
        here = keys.create(conn, "here", "read", KeyScope(subdistricts=frozenset({"双井街道"})))
        away = keys.create(conn, "away", "read", KeyScope(subdistricts=frozenset({"其他街道"})))
    timeout = httpx.Timeout(10.0, read=20.0)
    for base in serve(ApiSettings(database_url=database_url, mqtt=mqtt)):
        with (
            httpx.stream("GET", f"{base}/v1/live", headers={"X-API-Key": here.key},
                         timeout=timeout) as near,
            httpx.stream("GET", f"{base}/v1/live", headers={"X-API-Key": away.key},
                         timeout=timeout) as far,
        ):  # fmt: skip
            near_events, far_events = events(near.iter_lines()), events(far.iter_lines())
            assert next(near_events)[0] == "ready"
            assert next(far_events)[0] == "ready"
            run_id = a_run_with_a_new_hotspot(database_url)
            kind, data = next(near_events)
            assert (kind, data["run_id"]) == ("hotspot", run_id)
            # The hotspot events went to every viewer's queue before this status did: the
            # viewer limited to grids elsewhere gets the status first, and no hotspot.
            status = json.dumps({"state": "online", "time": "2026-05-01T08:01:00Z"}).encode()
            publish(mqtt, Topics(topic_root).of("patrol-01", "status"), status)
            kind, data = next(far_events)
            assert (kind, data["state"]) == ("status", "online")


def a_run_with_a_new_hotspot(database_url: str) -> int:
    """Passes over a source in Shuangjing, and a run finding it after one that did not."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        resolution = read_analysis(conn).resolution
        world = SyntheticWorld(
            resolution=resolution,
            vehicles=2,
            days=8,
            trips_per_day=2,
            pollutants=("pm25",),
            sources=(Source(*offset(SHUANGJING, -125.0, 125.0), "pm25", 40.0, 40.0),),
            seed=4,
        )
        table = generate(world)
        with conn.transaction(), conn.cursor() as cur:
            pass_store.store(cur, resolution, as_stored(table))
        end = datetime.fromtimestamp(float(table.end.max()), UTC) + timedelta(hours=1)
        job = JobSettings(window=timedelta(days=30))
        assert run_once(conn, job, now=end - timedelta(days=20)).hotspots == 0
        after = run_once(conn, job, now=end)
        assert after.hotspots > 0
        return after.run_id


def test_without_a_broker_setting_the_feed_is_a_503(database_url: str) -> None:
    for base in serve(ApiSettings(database_url=database_url)):
        response = httpx.get(f"{base}/v1/live", timeout=10)
        assert response.status_code == 503
        assert response.json()["type"].endswith("live-feed-off")


def test_an_unreachable_broker_is_an_error_event(database_url: str, topic_root: str) -> None:
    mqtt = MqttSettings(host="127.0.0.1", port=free_port(), topic_root=topic_root)
    for base in serve(ApiSettings(database_url=database_url, mqtt=mqtt)):
        with httpx.stream("GET", f"{base}/v1/live", timeout=20) as response:
            kind, data = next(events(response.iter_lines()))
    assert kind == "error"
    assert "cannot be reached" in str(data["detail"])


@pytest.fixture
def shipped_broker(tmp_path: Path) -> Iterator[ShippedBroker]:
    running = ShippedBroker(tmp_path, ["api", "patrol-01"])
    running.start()
    try:
        yield running
    finally:
        running.stop()


@needs_broker_tools
def test_one_broker_connection_serves_every_viewer_on_the_shipped_broker(
    shipped_broker: ShippedBroker, database_url: str
) -> None:
    """The shipped broker replaces every client id by the username: connections per viewer
    under the one `api` account would replace each other."""
    mqtt = MqttSettings.from_url(shipped_broker.url("api"), topic_root="envpatrol")
    vehicle = Probe(
        shipped_broker.local_port,
        "patrol-01",
        "patrol-01",
        shipped_broker.passwords["patrol-01"],
    )
    timeout = httpx.Timeout(10.0, read=20.0)
    for base in serve(ApiSettings(database_url=database_url, mqtt=mqtt)):
        with ExitStack() as stack:
            responses = [
                stack.enter_context(httpx.stream("GET", f"{base}/v1/live", timeout=timeout))
                for _ in range(3)
            ]
            streams = [events(r.iter_lines()) for r in responses]
            assert [next(stream)[0] for stream in streams] == ["ready"] * 3
            assert vehicle.connect().is_failure is False
            topic = Topics("envpatrol").of("patrol-01", "readings")
            for seq in (1, 2, 3):
                assert vehicle.publish(topic, position(seq)).is_failure is False
            seen = [[next(stream) for _ in range(3)] for stream in streams]
            assert seen[0] == seen[1] == seen[2]
            assert [(kind, data["seq"]) for kind, data in seen[0]] == [
                ("position", 1),
                ("position", 2),
                ("position", 3),
            ]
            logins = [line for line in shipped_broker.log().splitlines() if "u'api'" in line]
            assert len(logins) == 1, logins
            assert "already connected" not in shipped_broker.log()

            # The broker goes away: every viewer gets `error`, and its stream ends.
            vehicle.close()
            shipped_broker.stop()
            for stream in streams:
                kind, data = next(stream)
                assert kind == "error"
                assert "cannot be reached" in str(data["detail"])
                assert next(stream, None) is None
