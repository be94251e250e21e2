"""Replaying a recorded drive (edge/recording.py).

Serial path: a DrivePlayer owns two pseudo-terminals, one answering as the box and one talking
as the GPS receiver. It sends back, byte for byte, what the box and the receiver sent during the
recording: each box request that arrives gets the next recorded answer (or, where the box was
silent, nothing), and the receiver's bytes flow on the recorded timeline between the exchanges.
The agent drives the pace: when its request arrives early, the receiver's bytes up to that
exchange are sent at once; every answer waits until the agent has taken the receiver's bytes
that preceded it, so each reading is tagged with the fix it was tagged with on the road.

The agent runs in this process on a ReplayClock (edge.clock.Clock) that the player sets from
the recording: the fix a reading uses arrives while the clock reads what the agent's clock read
when that fix arrived on the road, and the answer is read while it reads the instant the reading
was tagged. The agent therefore computes the recorded fix ages, times and quality durations,
whatever the speed-up. (Version 1 recordings lack the exact clock readings: the player then
uses the recorded times of the receiver's bytes and the recorded fix ages, to the 10 ms those
keep.)

Direct path: the recorded readings are published to MQTT as they were, without the serial hop.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.agent import Agent
from edge.clock import SystemClock
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.epoch import EpochAssembler
from edge.errors import EnvpatrolError
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

# How long the player waits for the agent to take what it was sent, or to make a reading,
# before it counts the bytes as lost (wall seconds; far longer than the agent ever takes).
TAKE_TIMEOUT_S = 5.0


class ReplayError(EnvpatrolError, RuntimeError):
    """A replay that could not finish; `subject` is the side that failed (player or agent)."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One box request and what the box answered (possibly nothing)."""

    t: float  # when the agent had the answer (the last answer byte), else when it asked
    request: bytes
    response: bytes
    asked: float  # when the agent sent the request
    reading: bool = False  # whether the agent made a reading from this answer
    tagged_at: float | None = None  # the agent's clock when it tagged that reading
    wall: datetime | None = None  # the host's time that dated it, when it had no GNSS time


@dataclass(frozen=True, slots=True)
class GpsBurst:
    t: float
    data: bytes
    fixes: int = 0  # fixes the agent's receiver completes from these bytes
    hold: float | None = None  # the agent's clock while it takes them: a reading uses their fix


Step = Exchange | GpsBurst


def _parse_time(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _fixes_per_burst(bursts: list[GpsBurst]) -> list[GpsBurst]:
    """Count the fixes each burst completes, with the agent's own framer and assembler."""
    framer, assembler = NmeaFramer(), EpochAssembler()
    counted = []
    for burst in bursts:
        fixes = sum(len(assembler.feed(s)) for s in framer.feed(burst.data))
        counted.append(replace(burst, fixes=fixes))
    return counted


def replay_plan(recording: Recording) -> list[Step]:
    """The recording as box exchanges and receiver bursts, in drive-time order, with the clock
    readings the agent must see: the fix a reading uses is held at the instant it arrived on the
    road, and the answer it is made from is read at the instant it was tagged."""
    bursts: list[GpsBurst] = []
    exchanges: list[tuple[float, bytes, list[SerialChunk]]] = []
    made: dict[int, RecordedReading] = {}  # exchange index -> the reading made from its answer
    for event in recording.events:
        if isinstance(event, RecordedReading):
            if exchanges:
                made[len(exchanges) - 1] = event
            continue
        if not isinstance(event, SerialChunk):
            continue
        if event.port == "gps" and event.direction == "rx":
            bursts.append(GpsBurst(event.t, event.data))
        elif event.port == "box" and event.direction == "tx":
            exchanges.append((event.t, event.data, []))
        elif event.port == "box" and event.direction == "rx" and exchanges:
            exchanges[-1][2].append(event)
    steps: list[Step] = list(_fixes_per_burst(bursts))
    for i, (t, request, answer) in enumerate(exchanges):
        key = answer[-1].t if answer else t
        steps.append(Exchange(key, request, b"".join(c.data for c in answer), t, i in made))
    # Stable sort: a burst recorded at the same instant as an answer came first.
    order = {id(s): i for i, s in enumerate(steps)}
    steps.sort(key=lambda s: (s.t, isinstance(s, Exchange), order[id(s)]))
    readings = iter(made[i] for i in sorted(made))
    return _with_clock(steps, readings, recording.clock_reading("origin"))


def _with_clock(
    steps: list[Step], readings: Iterator[RecordedReading], origin: float | None
) -> list[Step]:
    """Attach the agent's clock readings to the steps (see replay_plan)."""
    out: list[Step] = []
    for step in steps:
        if isinstance(step, GpsBurst) or not step.reading:
            out.append(step)
            continue
        recorded = next(readings)
        body = recorded.reading
        wall = _parse_time(body.get("time")) if body.get("time_source") == "host" else None
        # The burst whose fix the reading used: the last one before it that completes a fix.
        # Version 2 knows when that fix arrived; a burst recorded after that instant reached
        # the agent only after it had tagged the reading (it was still being read), so it goes
        # after the answer.
        later: list[int] = []
        used = None
        for j in range(len(out) - 1, -1, -1):
            prior = out[j]
            if isinstance(prior, Exchange):
                if prior.reading:
                    break
                continue
            if prior.fixes == 0:
                continue
            if (
                origin is not None
                and recorded.fix_received is not None
                and origin + prior.t > recorded.fix_received + 1e-6
            ):
                later.append(j)
                continue
            used = j
            break
        if recorded.tagged_at is not None:  # version 2: the exact readings
            hold, tagged_at = recorded.fix_received, recorded.tagged_at
        else:  # version 1: the burst's recorded time and the recorded fix age
            position = body.get("position")
            age = position.get("age_s") if isinstance(position, dict) else None
            hold = out[used].t if used is not None else None
            tagged_at = step.t
            if hold is not None and isinstance(age, int | float) and not isinstance(age, bool):
                tagged_at = hold + float(age)
        if used is not None and hold is not None:
            burst = out[used]
            if isinstance(burst, GpsBurst) and burst.hold is None:
                out[used] = replace(burst, hold=hold)
        moved = [out.pop(j) for j in later]  # `later` runs backwards: pop from the end first
        out.append(replace(step, tagged_at=tagged_at, wall=wall))
        out.extend(reversed(moved))
    return out


class ReplayClock:
    """The replaying agent's clock (edge.clock.Clock), set by the player from the recording.

    Between the instants the player sets, it stands still: the agent reads it only to tag a
    reading, to stamp a fix and for its health report."""

    def __init__(
        self,
        now: float,
        boottime: float | None,
        wall_origin: datetime,
        time_scale: float = 1.0,
    ) -> None:
        self._now = now
        self._start = now
        self._boottime = boottime
        self._wall_origin = wall_origin
        self._scale = time_scale
        self._wall: datetime | None = None

    def set(self, now: float, wall: datetime | None = None) -> None:
        self._wall = wall
        self._now = now

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> datetime:
        if self._wall is not None:
            return self._wall
        return self._wall_origin + timedelta(seconds=(self._now - self._start) / self._scale)

    def boottime(self) -> float | None:
        return self._boottime

    @classmethod
    def for_recording(cls, recording: Recording, agent_speed: float) -> ReplayClock:
        """Started where the recorded agent's clock started (version 2); a version 1 recording
        starts at drive time 0 with this host's boot time."""
        started = recording.clock_reading("started")
        wall_origin = _parse_time(recording.header.get("started")) or datetime.now(UTC)
        scale = float(recording.header.get("time_scale") or 1.0)
        if started is None:
            return cls(0.0, SystemClock(agent_speed).boottime(), wall_origin, scale)
        return cls(started, recording.clock_reading("powered_for"), wall_origin, scale)


@dataclass
class PlayerCounters:
    exchanges: int = 0
    gps_bursts: int = 0
    request_mismatches: int = 0
    gps_bytes_dropped: int = 0
    gps_sentences_lost: int = 0
    readings_missed: int = 0  # answers the agent was expected to make a reading from, in vain


@dataclass
class DrivePlayer:
    """Plays a recording's serial side on two pseudo-terminals (see the module docstring).

    `speed`: drive seconds per wall second for the receiver's timeline; None sends the receiver's
    bytes as soon as the previous exchange is done. `receiver` (the agent's GPS receiver, set
    before start) lets each step wait exactly until the agent has taken what was sent; `clock`
    is the agent's clock, which the player sets.
    """

    recording: Recording
    speed: float | None = 1.0
    agent_speed: float = 1.0  # the replaying agent's time_scale
    receiver: GpsReceiver | None = None
    idle_timeout_s: float = 30.0
    on_step: Callable[[int, float], None] | None = None
    counters: PlayerCounters = field(default_factory=PlayerCounters)

    def __post_init__(self) -> None:
        self.steps = replay_plan(self.recording)
        self.exchanges = sum(isinstance(s, Exchange) for s in self.steps)
        self.clock = ReplayClock.for_recording(self.recording, self.agent_speed)
        self.box = PseudoTerminal()
        self.gps = PseudoTerminal()
        self.done = threading.Event()
        self.error: str | None = None
        self._stop = threading.Event()
        self._rx = b""
        self._sentences_sent = 0
        self._fixes_sent = 0
        self._framer = NmeaFramer()
        self._took_reading = threading.Event()
        self._anchor_wall = 0.0
        self._anchor_t = 0.0
        self._thread = threading.Thread(target=self._run, name="replay-player", daemon=True)

    @property
    def box_path(self) -> str:
        return self.box.path

    @property
    def gps_path(self) -> str:
        return self.gps.path

    def start(self) -> None:
        if self.receiver is None:
            raise ReplayError("player", "needs the agent's GPS receiver")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.box.close()
        self.gps.close()

    def took_reading(self) -> None:
        """The agent made a reading (its on_reading hook)."""
        self._took_reading.set()

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

    def _taken(self) -> tuple[int, int]:
        receiver = self.receiver
        assert receiver is not None
        return receiver.sentences, receiver.fixes

    def _drain_gps(self) -> None:
        """Wait until the agent's receiver has taken every sentence sent and made every fix of
        them its latest (`fixes` counts a fix once it is published)."""
        deadline = time.monotonic() + TAKE_TIMEOUT_S
        while not self._stop.is_set():
            sentences, fixes = self._taken()
            if sentences >= self._sentences_sent and fixes >= self._fixes_sent:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.0001)
        sentences, fixes = self._taken()
        if sentences < self._sentences_sent:
            # Sentences were lost on the way (the agent reopened its port, which flushes it):
            # count them as gone, so later steps do not wait for them as well.
            self.counters.gps_sentences_lost += self._sentences_sent - sentences
        self._sentences_sent, self._fixes_sent = sentences, fixes

    def _run(self) -> None:
        try:
            self._play()
        except Exception as exc:  # reported to the caller, never lost
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("replay player failed")
        finally:
            self.done.set()

    def _await_gps_reader(self, timeout: float = 10.0) -> None:
        """Bytes written before the agent has opened the GPS port would be flushed by its open
        (pyserial flushes the input): wait until the receiver counts the port open."""
        receiver = self.receiver
        assert receiver is not None
        deadline = time.monotonic() + timeout
        while receiver.reopens == 0 and time.monotonic() < deadline and not self._stop.is_set():
            self._pump(0.01)

    def _settle(self, reading: bool) -> None:
        """Wait until the agent has made the reading it makes from this answer, so that
        neither receiver bytes sent after this exchange nor the clock moving on reach it."""
        if reading and not self._took_reading.wait(TAKE_TIMEOUT_S):
            self.counters.readings_missed += 1

    def _play(self) -> None:
        self._await_gps_reader()
        self._anchor_wall = time.monotonic()
        self._anchor_t = self.steps[0].t if self.steps else 0.0
        i = 0
        while i < len(self.steps) and not self._stop.is_set():
            step = self.steps[i]
            if isinstance(step, GpsBurst):
                if self._burst(step):
                    i += 1
                continue
            request = self._await_request()
            if request is None:
                return
            self._exchange(step, request)
            i += 1
            if self.on_step is not None:
                self.on_step(self.counters.exchanges, step.t)

    def _burst(self, step: GpsBurst) -> bool:
        """Send a receiver burst when it is due; False while it is not."""
        if self.speed is not None and not self._request_waiting():
            # Paced on the recorded timeline; as fast as possible: at once.
            due = self._anchor_wall + (step.t - self._anchor_t) / self.speed
            wait = due - time.monotonic()
            if wait > 0:
                self._pump(min(wait, 0.05))
                return False
        if step.hold is not None:
            self.clock.set(step.hold)
        self._send_gps(step)
        if step.hold is not None:
            self._drain_gps()
        return True

    def _exchange(self, step: Exchange, request: bytes) -> None:
        if request != step.request:
            self.counters.request_mismatches += 1
        if self.speed is not None:
            # The receiver's timeline follows the agent's poll grid: it is anchored at the
            # first request and moved on whenever the agent asks later than recorded (it
            # fell behind). An early request only flushes the bytes due before it.
            asked = time.monotonic()
            late = asked - (self._anchor_wall + (step.asked - self._anchor_t) / self.speed)
            if self.counters.exchanges == 0 or late > 0:
                self._anchor_wall, self._anchor_t = asked, step.asked
        self._drain_gps()
        if step.response:
            if step.tagged_at is not None:
                self.clock.set(step.tagged_at, step.wall)
            self._took_reading.clear()
            self.box.write(step.response)
            self._settle(step.reading)
        self.counters.exchanges += 1

    def _send_gps(self, burst: GpsBurst) -> None:
        self.counters.gps_bytes_dropped += self.gps.write(burst.data, timeout=0.5)
        self._sentences_sent += len(self._framer.feed(burst.data))
        self._fixes_sent += burst.fixes
        self.counters.gps_bursts += 1

    def _await_request(self) -> bytes | None:
        deadline = time.monotonic() + self.idle_timeout_s
        while not self._stop.is_set():
            request = self._take_request()
            if request is not None:
                return request
            if time.monotonic() > deadline:
                raise ReplayError("agent", f"no box request for {self.idle_timeout_s:.0f}s")
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
    readings_missed: int = 0  # answers the agent made no reading from within TAKE_TIMEOUT_S

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
            # Drives recorded before version 3 never asked the box who it is.
            identity=recording.version >= 3,
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

    def on_reading(_reading: Reading) -> None:
        player.took_reading()

    agent = Agent(settings, on_reading=on_reading, clock=player.clock)
    receiver = agent.gps
    if not isinstance(receiver, GpsReceiver):  # replay settings always name a serial GPS port
        raise TypeError("a serial replay needs the agent's serial GPS receiver")
    player.receiver = receiver
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
        raise ReplayError("player", player.error)
    return ReplayResult(
        expected,
        agent.readings,
        recording.duration_s,
        time.monotonic() - started,
        player.counters.exchanges,
        player.counters.request_mismatches,
        player.counters.gps_sentences_lost,
        player.counters.readings_missed,
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
