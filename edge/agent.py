"""The edge agent: poll the box on a fixed cadence, tag the reading with the fix, keep it, send it."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from edge import __version__
from edge.box import BoxClient, BoxError, Discard, SerialPort, open_serial
from edge.clock import Clock, ClockDiscipline, SystemClock
from edge.config import EdgeSettings
from edge.epoch import EpochSettings
from edge.gps import GpsReceiver, TimedFix
from edge.gpsd import GpsdClient
from edge.outbox import Outbox
from edge.profile import BoxProfile, LineSettings, load_profile
from edge.publisher import Publisher
from edge.quality import BoxPower, FixFilter, QualityTracker
from edge.wire import Position, Reading, format_time, reading_to_dict

log = logging.getLogger("envpatrol.edge")

OpenPort = Callable[[str, int, int, str, int], SerialPort]


def effective_profile(settings: EdgeSettings) -> BoxProfile:
    """The profile with the line settings and address the configuration overrides."""
    profile = load_profile(settings.box.profile)
    box = settings.box
    line = LineSettings(
        baudrate=box.baudrate or profile.line.baudrate,
        bytesize=box.bytesize or profile.line.bytesize,
        parity=box.parity or profile.line.parity,  # type: ignore[arg-type]
        stopbits=box.stopbits or profile.line.stopbits,
    )
    return replace(
        profile,
        line=line,
        address=box.address or profile.address,
        identity=profile.identity if box.identity else None,
    )


@dataclass(frozen=True, slots=True)
class Tagging:
    """How a reading's time and position are chosen from the newest fix.

    `time_scale` multiplies clock differences into drive seconds; the agent's clock already
    reads drive seconds (edge.clock), so the agent tags with 1.0.
    """

    max_fix_age_s: float = 5.0
    time_scale: float = 1.0


def tag_reading(
    vehicle: str,
    seq: int,
    profile: BoxProfile,
    registers: tuple[int, ...],
    timed_fix: TimedFix | None,
    now_mono: float,
    now_wall: datetime,
    tagging: Tagging,
    tracker: QualityTracker | None = None,
    uptime_s: float = float("inf"),
    discipline: ClockDiscipline | None = None,
) -> Reading:
    """Build a reading from a register block and the newest fix (no clocks read here).

    `tracker` carries the history the quality rules need (edge.quality); without one, only the
    rules that need no history apply. `uptime_s` is the time since the agent started, in the
    same (possibly simulated) seconds as the fix ages. `discipline` holds the agent's clock to
    GNSS time (edge.clock): it learns from the fix and dates the reading; without one, a reading
    without a GNSS time carries the host's time, unverified.
    """
    block = profile.decode(registers)
    flags: list[str] = []
    speed = None
    if timed_fix is not None and timed_fix.fix.valid:
        speed = timed_fix.fix.speed_mps
    history = tracker or QualityTracker()
    stationary, channel_flags = history.assess(
        block.values, frozenset(block.sentinel), now_mono * tagging.time_scale, uptime_s, speed
    )
    flags.extend(stationary)

    position: Position | None = None
    gnss_time: datetime | None = None
    dating = discipline or ClockDiscipline()
    if timed_fix is None:
        flags.append("no_fix")
    else:
        fix = timed_fix.fix
        age = max(0.0, (now_mono - timed_fix.received) * tagging.time_scale)
        has_coordinates = fix.valid or (fix.lat, fix.lon) != (0.0, 0.0)
        if has_coordinates:
            position = Position(
                lat=fix.lat,
                lon=fix.lon,
                valid=fix.valid,
                quality=fix.quality,
                satellites=fix.satellites,
                hdop=fix.hdop,
                speed_mps=fix.speed_mps,
                course_deg=fix.course_deg,
                age_s=age,
            )
        if not fix.valid:
            flags.append("no_fix")
        elif age > tagging.max_fix_age_s:
            flags.append("stale_fix")
        if fix.valid and fix.time is not None:
            dating.observe(fix.time, timed_fix.received * tagging.time_scale)
            gnss_time = fix.time + timedelta(seconds=age)
    dated = dating.date(gnss_time, now_mono * tagging.time_scale, now_wall)
    if dated.source == "host":
        flags.append("host_time")
    flags.extend(dated.flags)
    return Reading(
        vehicle=vehicle,
        seq=seq,
        time=dated.time,
        time_source=dated.source,
        position=position,
        values=block.values,
        profile=profile.name,
        flags=tuple(flags),
        channel_flags=channel_flags,
    )


def make_gps(
    settings: EdgeSettings, open_port: OpenPort, clock: Clock | None = None
) -> GpsReceiver | GpsdClient:
    """The configured GPS source, stamping fixes on `clock` (drive seconds)."""
    gps = settings.gps
    clock = clock or SystemClock(settings.time_scale)
    limits = FixFilter(gps.max_hdop, gps.min_satellites, gps.max_speed_mps)
    if gps.source == "gpsd":
        return GpsdClient(gps.gpsd, limits, clock=clock.monotonic, incomplete=gps.incomplete_fix)
    return GpsReceiver(
        gps.port,
        gps.baudrate,
        open_port=open_port,
        clock=clock.monotonic,
        wall=clock.wall,
        limits=limits,
        epoch=EpochSettings(gps.epoch_timeout_s),
        require_checksum=gps.require_checksum,
        incomplete=gps.incomplete_fix,
    )


class Agent:
    def __init__(
        self,
        settings: EdgeSettings,
        *,
        open_port: OpenPort = open_serial,
        on_reading: Callable[[Reading], None] | None = None,
        on_discard: Callable[[Discard], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.profile = effective_profile(settings)
        # Tagging reads this clock (drive seconds); scheduling stays on the host's real clock.
        self.clock: Clock = clock or SystemClock(settings.time_scale)
        self.started = self.clock.monotonic()
        self._started_real = time.monotonic()
        # Drive seconds since power-on when the agent started (see QualitySettings.warmup_from).
        self.powered_for = 0.0
        if settings.quality.warmup_from == "boot":
            self.powered_for = self.clock.boottime() or 0.0
        # Drive recording hook (edge/recording.py): wraps both ports and sees every reading.
        self.recorder = None
        box_open = open_port
        record_box: Callable[[SerialPort], SerialPort] | None = None
        if settings.record_path:
            from edge.recording import DriveRecorder, RecordingPort

            recorder = DriveRecorder.for_agent(
                settings.record_path, settings, self.clock, self.started, self.powered_for
            )
            self.recorder = recorder
            open_port = recorder.wrap(open_port, {settings.gps.port: "gps"})
            # The box client's exchanges only: the answers it reads off the line before a
            # request were given up already, and a replay must not send them as answers.
            record_box = partial(RecordingPort, name="box", recorder=recorder)
        self.box = BoxClient(
            self.profile,
            settings.box.port,
            timeout_s=settings.box.timeout_s,
            retries=settings.box.retries,
            open_port=box_open,
            on_discard=on_discard,
            wrap_port=record_box,
            expected_serial=settings.box.serial,
        )
        self.gps = make_gps(settings, open_port, self.clock)
        self.outbox = Outbox(
            settings.outbox_path,
            max_bytes=settings.outbox.max_bytes,
            max_age_s=settings.outbox.max_age_s / settings.time_scale,
        )
        self.last_error = ""
        publish = settings.publish
        self.publisher = Publisher(
            settings.mqtt,
            settings.vehicle,
            self.outbox,
            self.status,
            max_batch=publish.batch_readings,
            max_payload_bytes=publish.max_payload_bytes,
            reconnect_min_s=publish.reconnect_min_s,
            reconnect_max_s=publish.reconnect_max_s,
        )
        self.tagging = Tagging(settings.gps.max_fix_age_s, 1.0)
        self.tracker = QualityTracker(settings.quality)
        # When the box was switched on: at first as the start-up says, then restarted by every
        # answer after a silence (a box switched off and on while the agent kept running).
        self.power = BoxPower.at_start(settings.quality, self.started, self.powered_for)
        self.discipline = ClockDiscipline()
        self.on_reading = on_reading
        self.readings = 0
        self.flagged: Counter[str] = Counter()

    def _error(self) -> str | None:
        publisher = getattr(self, "publisher", None)  # status() also builds the last will
        published = publisher.last_error if publisher is not None else ""
        return self.last_error or published or self.gps.last_error or None

    def status(self, state: str) -> dict[str, Any]:
        """The retained status (and, with state "offline", the last will)."""
        stats = self.outbox.stats()
        refused = self.box.seen if self.box.seen != self.box.identity else None
        return {
            "schema_version": 1,
            "vehicle": self.settings.vehicle,
            "state": state,
            "time": format_time(datetime.now(UTC)),
            "software": f"envpatrol-edge {__version__}",
            "profile": self.profile.name,
            # The box readings are taken from; `box_refused` another box now on the port.
            "box": None if self.box.identity is None else self.box.identity.as_dict(),
            "box_refused": None if refused is None else refused.as_dict(),
            "outbox_depth": stats.depth,
            "outbox_evicted": stats.evicted,
            "outbox_rejected": stats.rejected,
            "last_error": self._error(),
        }

    def health(self) -> dict[str, Any]:
        timed = self.gps.latest()
        box = self.box.counters
        stats = self.outbox.stats()
        oldest_age = None if stats.oldest_created is None else time.time() - stats.oldest_created
        return {
            "schema_version": 1,
            "vehicle": self.settings.vehicle,
            "time": format_time(datetime.now(UTC)),
            "software": f"envpatrol-edge {__version__}",
            "uptime_s": round(time.monotonic() - self._started_real, 1),
            "readings": self.readings,
            "poll_success_rate": round(box.ok / box.polls, 4) if box.polls else None,
            "crc_errors": box.crc_errors,
            "box": {**box.as_dict(), "power_ons": self.power.power_ons},
            "gps": {
                **self.gps.counters(),
                "fix_valid": bool(timed and timed.fix.valid),
                "fix_quality": timed.fix.quality if timed else None,
                "satellites": timed.fix.satellites if timed else None,
                "hdop": timed.fix.hdop if timed else None,
                "fix_age_s": None
                if timed is None
                else round(self.clock.monotonic() - timed.received, 1),
            },
            "clock_skew_s": None
            if timed is None or timed.skew_s is None
            else round(timed.skew_s, 3),
            "clock": self._clock_health(),
            "outbox": {
                "depth": stats.depth,
                "bytes": stats.bytes,
                "evicted": stats.evicted,
                "rejected": stats.rejected,
                "oldest_age_s": None if oldest_age is None else round(oldest_age, 1),
            },
            "outbox_depth": stats.depth,
            "flags": dict(self.flagged),
            "mqtt": self.publisher.counters.as_dict(),
            "published_readings": self.publisher.counters.acked_readings,
            "rejected_messages": self.publisher.counters.rejected,
            "last_error": self._error(),
        }

    def _clock_health(self) -> dict[str, Any]:
        """The disciplined clock: how far it is from the host's calendar clock, from how many
        fixes it learned, and how many reading times it had to bound."""
        estimate = self.discipline.now(self.clock.monotonic())
        ahead = None if estimate is None else (estimate - self.clock.wall()).total_seconds()
        return {
            "disciplined": estimate is not None,
            "gnss_minus_host_s": None if ahead is None else round(ahead, 3),
            "samples": self.discipline.samples,
            "clamped": self.discipline.clamped,
        }

    def poll_once(self) -> Reading | None:
        try:
            registers = self.box.poll()
        except BoxError as exc:
            self.last_error = str(exc)
            self.power.no_answer()
            log.warning("%s", exc)
            return None
        self.last_error = ""
        now_mono = self.clock.monotonic()
        now_wall = self.clock.wall()
        timed_fix = self.gps.latest()
        power_ons = self.power.power_ons
        uptime_s = self.power.answered(now_mono)
        if self.power.power_ons != power_ons:
            log.info("box answers again after a silence: switched on, warming up again")
        holder: list[Reading] = []

        def build(seq: int) -> bytes:
            reading = tag_reading(
                self.settings.vehicle,
                seq,
                self.profile,
                registers,
                timed_fix,
                now_mono,
                now_wall,
                self.tagging,
                self.tracker,
                uptime_s,
                self.discipline,
            )
            holder.append(reading)
            return json.dumps(reading_to_dict(reading), separators=(",", ":")).encode()

        self.outbox.store(time.time(), build)
        reading = holder[-1]
        self.readings += 1
        self.flagged.update(reading.flags)
        for names in reading.channel_flags.values():
            self.flagged.update(names)
        if self.recorder is not None:
            # With the clock readings it was tagged with, so a replay can tag it alike.
            self.recorder.reading(
                reading, now_mono, None if timed_fix is None else timed_fix.received
            )
        self.publisher.wake()
        if self.on_reading is not None:
            self.on_reading(reading)
        return reading

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set, on a fixed grid that does not drift."""
        period = self.settings.poll_interval_s / self.settings.time_scale
        health_period = self.settings.health_interval_s / self.settings.time_scale
        self.gps.start()
        self.publisher.start()
        log.info(
            "vehicle %s polling %s every %.3fs (profile %s), GPS %s, broker %s",
            self.settings.vehicle,
            self.settings.box.port,
            period,
            self.profile.name,
            self.settings.gps.gpsd
            if self.settings.gps.source == "gpsd"
            else self.settings.gps.port,
            self.settings.mqtt.url,
        )
        start = time.monotonic()
        next_health = start + health_period
        tick = 0
        try:
            while not stop.is_set():
                try:
                    self.poll_once()
                except Exception as exc:  # the agent must outlive anything a poll meets
                    self.last_error = f"poll failed: {exc!r}"
                    log.exception("poll failed")
                now = time.monotonic()
                if now >= next_health:
                    self.publisher.publish_health(self.health())
                    self.publisher.publish_status()
                    next_health = now + health_period
                tick = max(tick + 1, int((now - start) / period) + 1)
                stop.wait(max(0.0, start + tick * period - time.monotonic()))
        finally:
            self.publisher.stop()
            self.gps.stop()
            self.box.close()
            self.outbox.close()
            if self.recorder is not None:
                self.recorder.close()
