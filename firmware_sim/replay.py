"""Replaying a recorded drive (edge/recording.py).

Serial path: a DrivePlayer owns two pseudo-terminals, one answering as the box and one talking
as the GPS receiver. It sends back, byte for byte, what the box and the receiver sent during the
recording: each box request that arrives gets the next recorded answer (or, where the box was
silent, nothing), and the receiver's bytes flow on the recorded timeline between the exchanges.
The agent drives the pace: when its request arrives early, the receiver's bytes up to that
exchange are sent at once; every answer waits until the agent has read the receiver's bytes that
preceded it, so each reading is tagged with the fix it was tagged with on the road.

Direct path: the recorded readings are published to MQTT as they were, without the serial hop.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.agent import Agent
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.gps import GpsReceiver
from edge.modbus import decode_request
from edge.mqtt import MqttSettings
from edge.nmea import NmeaFramer
from edge.outbox import Outbox
from edge.publisher import Publisher
from edge.recording import RecordedReading, Recording, SerialChunk
from edge.wire import Reading, format_time
from firmware_sim.pty import PseudoTerminal

log = logging.getLogger("envpatrol.sim.replay")

# The agent's time scale when replaying "as fast as possible": it then polls every 10 ms of wall
# time and simply falls behind its grid when the pipeline is slower than that.
MAX_SPEED = 1000.0


class ReplayError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Exchange:
    """One box request and what the box answered (possibly nothing)."""

    t: float  # when the agent had the answer (the last answer byte), else when it asked
    request: bytes
    response: bytes
    asked: float  # when the agent sent the request
    fix_age_s: float | None = None  # age of the fix the reading made from this answer carried
    reading: bool = False  # whether the agent made a reading from this answer


@dataclass(frozen=True, slots=True)
class GpsBurst:
    t: float
    data: bytes


Step = Exchange | GpsBurst


def replay_plan(recording: Recording) -> list[Step]:
    """The recording as alternating box exchanges and receiver bursts, in drive-time order."""
    steps: list[Step] = []
    exchanges: list[tuple[float, bytes, list[SerialChunk]]] = []
    ages: dict[int, float | None] = {}  # exchange index -> fix age of the reading made from it
    for event in recording.events:
        if isinstance(event, RecordedReading):
            position = event.reading.get("position")
            age = position.get("age_s") if isinstance(position, dict) else None
            if exchanges:
                ages[len(exchanges) - 1] = float(age) if isinstance(age, int | float) else None
            continue
        if not isinstance(event, SerialChunk):
            continue
        if event.port == "gps" and event.direction == "rx":
            steps.append(GpsBurst(event.t, event.data))
        elif event.port == "box" and event.direction == "tx":
            exchanges.append((event.t, event.data, []))
        elif event.port == "box" and event.direction == "rx" and exchanges:
            exchanges[-1][2].append(event)
    for i, (t, request, answer) in enumerate(exchanges):
        key = answer[-1].t if answer else t
        steps.append(
            Exchange(key, request, b"".join(c.data for c in answer), t, ages.get(i), i in ages)
        )
    # Stable sort: a burst recorded at the same instant as an answer came first.
    order = {id(s): i for i, s in enumerate(steps)}
    steps.sort(key=lambda s: (s.t, isinstance(s, Exchange), order[id(s)]))
    return steps


@dataclass
class PlayerCounters:
    exchanges: int = 0
    gps_bursts: int = 0
    request_mismatches: int = 0
    gps_bytes_dropped: int = 0
    gps_sentences_lost: int = 0


@dataclass
class DrivePlayer:
    """Plays a recording's serial side on two pseudo-terminals (see the module docstring).

    `speed`: drive seconds per wall second for the receiver's timeline; None sends the receiver's
    bytes as soon as the previous exchange is done.
    """

    recording: Recording
    speed: float | None = 1.0
    agent_speed: float = 1.0  # the replaying agent's time_scale
    # How many NMEA sentences the agent's receiver has taken so far (edge.gps.GpsReceiver
    # .sentences), when the agent runs in this process: lets each answer wait exactly until the
    # agent has every fix sent before it. Without it the player waits for the port to drain.
    gps_sentences: Callable[[], int] | None = None
    idle_timeout_s: float = 30.0
    on_step: Callable[[int, float], None] | None = None
    counters: PlayerCounters = field(default_factory=PlayerCounters)

    def __post_init__(self) -> None:
        self.steps = replay_plan(self.recording)
        self.exchanges = sum(isinstance(s, Exchange) for s in self.steps)
        self.box = PseudoTerminal()
        self.gps = PseudoTerminal()
        self.gps.mark_unopened()
        self.done = threading.Event()
        self.error: str | None = None
        self._stop = threading.Event()
        self._rx = b""
        self._gps_written = 0.0
        self._framer = NmeaFramer()
        self._sentences_sent = 0
        self._latency = 0.0  # wall seconds from our answer to the agent reading its clock
        self._target_age: float | None = None
        self._unseen = b""  # receiver bytes sent before the agent took any
        self._took_fix = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-player", daemon=True)

    @property
    def box_path(self) -> str:
        return self.box.path

    @property
    def gps_path(self) -> str:
        return self.gps.path

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.box.close()
        self.gps.close()

    def _pump(self, timeout: float) -> None:
        self._rx += self.box.read(timeout)

    def _request_waiting(self) -> bool:
        return decode_request(self._rx).frame is not None

    def _take_request(self) -> bytes | None:
        decoded = decode_request(self._rx)
        if decoded.frame is None:
            self._rx = self._rx[decoded.consumed :]
            return None
        frame = self._rx[decoded.consumed - 8 : decoded.consumed]
        self._rx = self._rx[decoded.consumed :]
        return frame

    def _drain_gps(self, timeout: float = 0.3) -> None:
        deadline = time.monotonic() + timeout
        if self.gps_sentences is not None:
            while (
                self.gps_sentences() < self._sentences_sent
                and time.monotonic() < deadline
                and not self._stop.is_set()
            ):
                time.sleep(0.0001)
            taken = self.gps_sentences()
            if taken == 0 and self._unseen:
                # Nothing arrived at all: the agent's open flushed what we sent. Send it again.
                self.gps.write(self._unseen, timeout=0.5)
                self._unseen = b""
                self._drain_gps(timeout)
                return
            if taken < self._sentences_sent:
                # Sentences were lost on the way (the agent reopened its port, which flushes
                # it): count them as gone, so later answers do not wait for them as well.
                self.counters.gps_sentences_lost += self._sentences_sent - taken
                self._sentences_sent = taken
            # The counter moves just before the sentence updates the fix.
            time.sleep(0.0001)
            return
        while self.gps.unread() and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.0002)
        # The reader has the bytes; give its thread a moment to turn them into a fix.
        time.sleep(0.001)

    def _run(self) -> None:
        try:
            self._play()
        except Exception as exc:  # reported to the caller, never lost
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("replay player failed")
        finally:
            self.done.set()

    def observe_age(self, measured: float | None) -> None:
        """The agent made a reading from the last answer, with this fix age (drive seconds)."""
        self._took_fix.set()
        target = self._target_age
        if measured is None or target is None:
            return
        sample = self._latency + (measured - target) / self.agent_speed
        self._latency = min(0.01, max(0.0, 0.8 * self._latency + 0.2 * sample))

    def _await_gps_reader(self, timeout: float = 10.0) -> None:
        """Bytes written before the agent opens the GPS port would be flushed by its open
        (pyserial sets the line speed, then flushes the input: allow for that step too)."""
        deadline = time.monotonic() + timeout
        while not self.gps.opened() and time.monotonic() < deadline and not self._stop.is_set():
            self._pump(0.01)
        self._pump(0.02)

    def _settle(self, reading: bool, timeout: float = 0.5) -> None:
        """Wait until the agent has taken its fix for the reading it makes from this answer, so
        receiver bytes sent after this exchange cannot reach that reading. In this process the
        reading itself says so; otherwise: the answer has been read, and a moment more."""
        if self.gps_sentences is not None:
            if reading:
                self._took_fix.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        while self.box.unread() and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.0002)
        time.sleep(0.001)

    def _play(self) -> None:
        self._await_gps_reader()
        anchor_wall = time.monotonic()
        anchor_t = self.steps[0].t if self.steps else 0.0
        i = 0
        while i < len(self.steps) and not self._stop.is_set():
            step = self.steps[i]
            if isinstance(step, GpsBurst):
                if not self._request_waiting():
                    # Paced: on the recorded timeline. As fast as possible: at once, except the
                    # last burst before an answer, which waits until the agent asks.
                    last = i + 1 < len(self.steps) and isinstance(self.steps[i + 1], Exchange)
                    if self.speed is not None:
                        due = anchor_wall + (step.t - anchor_t) / self.speed
                    else:
                        due = float("inf") if last else 0.0
                    wait = due - time.monotonic()
                    if wait > 0:
                        self._pump(min(wait, 0.05))
                        continue
                self._send_gps(step.data)
                i += 1
                continue
            request = self._await_request()
            if request is None:
                return
            if request != step.request:
                self.counters.request_mismatches += 1
            if self.speed is not None:
                # The receiver's timeline follows the agent's poll grid: it is anchored at the
                # first request and moved on whenever the agent asks later than recorded (it
                # fell behind). An early request only flushes the bytes due before it.
                asked = time.monotonic()
                late = asked - (anchor_wall + (step.asked - anchor_t) / self.speed)
                if self.counters.exchanges == 0 or late > 0:
                    anchor_wall, anchor_t = asked, step.asked
            self._drain_gps()
            self._age_fix(step.fix_age_s)
            if step.response:
                self._took_fix.clear()
                self.box.write(step.response)
                self._settle(step.reading)
            self.counters.exchanges += 1
            i += 1
            if self.on_step is not None:
                self.on_step(self.counters.exchanges, step.t)

    def _send_gps(self, data: bytes) -> None:
        self.counters.gps_bytes_dropped += self.gps.write(data, timeout=0.5)
        self._sentences_sent += len(self._framer.feed(data))
        if self.gps_sentences is not None and self.gps_sentences() == 0:
            self._unseen += data
        self._gps_written = time.monotonic()
        self.counters.gps_bursts += 1

    def _age_fix(self, fix_age_s: float | None) -> None:
        """The agent measures a fix's age on its own clock: answer when the newest fix is as
        old as it was on the road, so the reading gets the same time. The agent's own delay
        between our answer and its clock reading is learnt from the ages it reports."""
        self._target_age = None
        if fix_age_s is None:
            return
        pause = self._gps_written + fix_age_s / self.agent_speed - self._latency - time.monotonic()
        if 0 < pause < 0.2:
            time.sleep(pause)
            self._target_age = fix_age_s

    def _await_request(self) -> bytes | None:
        deadline = time.monotonic() + self.idle_timeout_s
        while not self._stop.is_set():
            request = self._take_request()
            if request is not None:
                return request
            if time.monotonic() > deadline:
                raise ReplayError(f"no box request for {self.idle_timeout_s:.0f}s")
            self._pump(0.05)
        return None


def _preset_seq(outbox_path: Path, last_seq: int) -> None:
    """Make a fresh outbox hand out `last_seq + 1` next, so replayed readings keep their seq.
    (The outbox keeps its counter in a row of its own: see edge/outbox.py.)"""
    Outbox(outbox_path).close()
    with sqlite3.connect(outbox_path) as db:
        db.execute("UPDATE counter SET value = ? WHERE name = 'last_seq'", (last_seq,))


@dataclass
class ReplayResult:
    readings_recorded: int
    readings_replayed: int
    drive_s: float
    wall_s: float
    exchanges: int = 0
    request_mismatches: int = 0
    gps_sentences_lost: int = 0

    @property
    def speedup(self) -> float:
        return self.drive_s / self.wall_s if self.wall_s > 0 else float("inf")


def _first_seq(recording: Recording) -> int:
    readings = recording.readings
    seq = readings[0].reading.get("seq") if readings else 1
    return int(seq) if isinstance(seq, int) else 1


def replay_settings(
    recording: Recording, mqtt: MqttSettings, player: DrivePlayer, speed: float, work: Path
) -> EdgeSettings:
    """The agent's settings for a replay: the recorded box and GPS settings on the player's
    pseudo-terminals, a fresh outbox, the chosen speed."""
    header = recording.header
    box: dict[str, Any] = header.get("box") or {}
    gps: dict[str, Any] = header.get("gps") or {}
    return EdgeSettings(
        vehicle=recording.vehicle,
        mqtt=mqtt,
        box=BoxSettings(
            port=player.box_path,
            profile=str(box.get("profile", "default-multi")),
            address=box.get("address"),
            timeout_s=float(box.get("timeout_s", 0.5)),
            retries=int(box.get("retries", 2)),
        ),
        gps=GpsSettings(port=player.gps_path, max_fix_age_s=float(gps.get("max_fix_age_s", 5.0))),
        outbox_path=str(work / "replay-outbox.sqlite3"),
        poll_interval_s=float(header.get("poll_interval_s", 10.0)),
        time_scale=speed,
        health_interval_s=3600.0,
    )


def _wait(condition: Callable[[], bool], timeout: float, stop: threading.Event) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def replay_serial(
    recording: Recording,
    mqtt: MqttSettings,
    *,
    speed: float | None = 1.0,
    vehicle: str | None = None,
    record_path: str | None = None,
    progress: Callable[[float, str], None] | None = None,
    stop: threading.Event | None = None,
    work: Path | None = None,
) -> ReplayResult:
    """Replay through pseudo-terminals and a real edge agent publishing to `mqtt`."""
    stop = stop or threading.Event()
    work = work or Path(tempfile.mkdtemp(prefix="envpatrol-replay-"))
    if vehicle is not None:
        recording = replace(recording, header={**recording.header, "vehicle": vehicle})
    agent_speed = speed if speed is not None else MAX_SPEED

    def on_step(done: int, t: float) -> None:
        if progress is not None:
            progress(t, f"{done} exchanges")

    player = DrivePlayer(recording, speed, agent_speed, on_step=on_step)
    settings = replay_settings(recording, mqtt, player, agent_speed, work)
    if record_path:
        settings = replace(settings, record_path=record_path)
    _preset_seq(Path(settings.outbox_path), _first_seq(recording) - 1)
    expected = len(recording.readings)

    def on_reading(reading: Reading) -> None:
        player.observe_age(reading.position.age_s if reading.position is not None else None)

    agent = Agent(settings, on_reading=on_reading)
    receiver = agent.gps
    if not isinstance(receiver, GpsReceiver):  # replay settings always name a serial GPS port
        raise TypeError("a serial replay needs the agent's serial GPS receiver")
    player.gps_sentences = lambda: receiver.sentences
    agent_stop = threading.Event()
    started = time.monotonic()
    player.start()
    thread = threading.Thread(target=agent.run, args=(agent_stop,), name="replay-agent")
    thread.start()
    try:
        while not stop.is_set() and agent.readings < expected and not player.done.is_set():
            time.sleep(0.05)
        _wait(lambda: agent.readings >= expected, 10.0, stop)
        _wait(lambda: agent.outbox.depth() == 0, 60.0, stop)
    finally:
        agent_stop.set()
        thread.join(30)
        player.stop()
    if player.error:
        raise ReplayError(player.error)
    return ReplayResult(
        expected,
        agent.readings,
        recording.duration_s,
        time.monotonic() - started,
        player.counters.exchanges,
        player.counters.request_mismatches,
        player.counters.gps_sentences_lost,
    )


def replay_direct(
    recording: Recording,
    mqtt: MqttSettings,
    *,
    speed: float | None = None,
    vehicle: str | None = None,
    progress: Callable[[float, str], None] | None = None,
    stop: threading.Event | None = None,
    work: Path | None = None,
) -> ReplayResult:
    """Publish the recorded readings, unchanged, as the vehicle would (QoS 1, acknowledged)."""
    stop = stop or threading.Event()
    work = work or Path(tempfile.mkdtemp(prefix="envpatrol-replay-"))
    name = vehicle or recording.vehicle
    outbox = Outbox(work / "direct-outbox.sqlite3")

    def status(state: str) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "vehicle": name,
            "state": state,
            "time": format_time(datetime.now(UTC)),
            "software": "envpatrol-replay",
            "profile": str((recording.header.get("box") or {}).get("profile", "")),
            "outbox_depth": None,
            "last_error": None,
        }

    publisher = Publisher(mqtt, name, outbox, status)
    publisher.start()
    readings = recording.readings
    started = time.monotonic()
    origin = readings[0].t if readings else 0.0
    try:
        for n, item in enumerate(readings, 1):
            if stop.is_set():
                break
            if speed is not None:
                wait = started + (item.t - origin) / speed - time.monotonic()
                if wait > 0:
                    stop.wait(wait)
            payload = json.dumps(item.reading, separators=(",", ":")).encode()

            def keep(_seq: int, payload: bytes = payload) -> bytes:
                # The outbox's own seq only orders the queue; the reading keeps its recorded seq.
                return payload

            outbox.store(time.time(), keep)
            publisher.wake()
            if progress is not None:
                progress(item.t, f"{n} readings")
        _wait(lambda: outbox.depth() == 0, 60.0, stop)
    finally:
        publisher.stop()
        outbox.close()
    return ReplayResult(
        len(readings), len(readings), recording.duration_s, time.monotonic() - started
    )
