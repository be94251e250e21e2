"""The edge agent: poll the box on a fixed cadence, tag the reading with the fix, keep it, send it."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from edge import __version__
from edge.box import BoxClient, BoxError, SerialPort, open_serial
from edge.config import EdgeSettings
from edge.gps import GpsReceiver, TimedFix
from edge.outbox import Outbox
from edge.profile import BoxProfile, LineSettings, load_profile
from edge.publisher import Publisher
from edge.units import CHANNELS
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
    return replace(profile, line=line, address=box.address or profile.address)


@dataclass(frozen=True, slots=True)
class Tagging:
    """How a reading's time and position are chosen from the newest fix."""

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
) -> Reading:
    """Build a reading from a register block and the newest fix (pure: no clocks read here)."""
    block = profile.decode(registers)
    flags: list[str] = []
    channel_flags: dict[str, tuple[str, ...]] = dict.fromkeys(block.sentinel, ("sentinel",))
    for name, value in block.values.items():
        spec = CHANNELS[name]
        if value is not None and not spec.low <= value <= spec.high:
            channel_flags[name] = ("out_of_range",)

    position: Position | None = None
    moment = now_wall
    source: str = "host"
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
            moment = fix.time + timedelta(seconds=age)
            source = "gnss"
    if source == "host":
        flags.append("host_time")
    return Reading(
        vehicle=vehicle,
        seq=seq,
        time=moment,
        time_source="gnss" if source == "gnss" else "host",
        position=position,
        values=block.values,
        profile=profile.name,
        flags=tuple(flags),
        channel_flags=channel_flags,
    )


class Agent:
    def __init__(
        self,
        settings: EdgeSettings,
        *,
        open_port: OpenPort = open_serial,
        on_reading: Callable[[Reading], None] | None = None,
    ) -> None:
        self.settings = settings
        self.profile = effective_profile(settings)
        # Drive recording hook (edge/recording.py): wraps both ports and sees every reading.
        self.recorder = None
        if settings.record_path:
            from edge.recording import DriveRecorder, PortName

            self.recorder = DriveRecorder.for_agent(settings.record_path, settings)
            ports: dict[str, PortName] = {settings.box.port: "box", settings.gps.port: "gps"}
            open_port = self.recorder.wrap(open_port, ports)
            on_reading = self.recorder.chain(on_reading)
        self.box = BoxClient(
            self.profile,
            settings.box.port,
            timeout_s=settings.box.timeout_s,
            retries=settings.box.retries,
            open_port=open_port,
        )
        self.gps = GpsReceiver(settings.gps.port, settings.gps.baudrate, open_port=open_port)
        self.outbox = Outbox(settings.outbox_path)
        self.last_error = ""
        self.publisher = Publisher(settings.mqtt, settings.vehicle, self.outbox, self.status)
        self.tagging = Tagging(settings.gps.max_fix_age_s, settings.time_scale)
        self.on_reading = on_reading
        self.readings = 0
        self.started = time.monotonic()

    def status(self, state: str) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "vehicle": self.settings.vehicle,
            "state": state,
            "time": format_time(datetime.now(UTC)),
            "software": f"envpatrol-edge {__version__}",
            "profile": self.profile.name,
            "outbox_depth": self.outbox.depth() if state == "online" else None,
            "last_error": self.last_error or None,
        }

    def health(self) -> dict[str, Any]:
        fix = self.gps.latest()
        return {
            "schema_version": 1,
            "vehicle": self.settings.vehicle,
            "time": format_time(datetime.now(UTC)),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "box": self.box.counters.as_dict(),
            "gps": {
                "sentences": self.gps.sentences,
                "bad_sentences": self.gps.bad_sentences,
                "garbage_bytes": self.gps.garbage_bytes,
                "fix_valid": bool(fix and fix.fix.valid),
                "fix_quality": fix.fix.quality if fix else None,
                "satellites": fix.fix.satellites if fix else None,
                "hdop": fix.fix.hdop if fix else None,
            },
            "outbox_depth": self.outbox.depth(),
            "published_readings": self.publisher.counters.acked_readings,
            "rejected_messages": self.publisher.counters.rejected,
            "last_error": self.last_error or None,
        }

    def poll_once(self) -> Reading | None:
        try:
            registers = self.box.poll()
        except BoxError as exc:
            self.last_error = str(exc)
            log.warning("%s", exc)
            return None
        now_mono = time.monotonic()
        now_wall = datetime.now(UTC)
        timed_fix = self.gps.latest()
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
            )
            holder.append(reading)
            return json.dumps(reading_to_dict(reading), separators=(",", ":")).encode()

        self.outbox.store(time.time(), build)
        self.readings += 1
        self.publisher.wake()
        if self.on_reading is not None:
            self.on_reading(holder[0])
        return holder[0]

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set, on a fixed grid that does not drift."""
        period = self.settings.poll_interval_s / self.settings.time_scale
        health_period = self.settings.health_interval_s / self.settings.time_scale
        self.gps.start()
        self.publisher.start()
        log.info(
            "vehicle %s polling %s every %.3fs (profile %s), GPS on %s, broker %s",
            self.settings.vehicle,
            self.settings.box.port,
            period,
            self.profile.name,
            self.settings.gps.port,
            self.settings.mqtt.url,
        )
        start = time.monotonic()
        next_health = start + health_period
        tick = 0
        try:
            while not stop.is_set():
                self.poll_once()
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
