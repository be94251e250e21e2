"""Recording a drive: the raw serial exchanges with timestamps, plus decoded readings and fixes.

A recording is a gzip-compressed file of JSON lines (format `envpatrol-drive`, version 3,
documented in docs/recording.md; versions 1 and 2 still load). `t` is drive time: seconds since
the recording began, on the agent's clock (edge.clock: real seconds times its time_scale, so a
simulated drive at 400x records the simulated seconds, and a real vehicle records wall seconds).

    {"type":"header","format":"envpatrol-drive","version":3,"vehicle":...,"box":{...},
     "clock":{"origin":...,"started":...,"powered_for":...},...}
    {"type":"serial","t":12.5,"port":"box","dir":"tx","hex":"010300000010440b"}
    {"type":"serial","t":12.6,"port":"box","dir":"rx","hex":"010320..."}
    {"type":"fix","t":12.9,"fix":{"time":...,"lat":...,"lon":...,"valid":true,...}}
    {"type":"reading","t":13.0,"reading":{...the v1 reading object...},"clock":{"now":...,"fix":...}}
    {"type":"end","t":28800.0,"lines":...}

Version 2 adds the agent's own clock readings (header `clock`, reading `clock`), exact, so a
replay can hand the agent the same instants and get the same reading times. Version 3 records
the agent asking the box who it is (identity registers) among the box exchanges; a replay of an
older recording turns those requests off, since its box exchanges hold none.

The recorder wraps the serial ports the agent opens (box and GPS) and sees every reading the
agent makes; it needs nothing beyond the standard library and the edge's own codecs.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from edge import __version__
from edge.box import SerialPort
from edge.clock import Clock, SystemClock
from edge.epoch import EpochAssembler, Fix
from edge.errors import EnvpatrolError
from edge.nmea import NmeaFramer
from edge.wire import Reading, format_time, reading_to_dict

RECORDING_FORMAT = "envpatrol-drive"
RECORDING_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)

PortName = Literal["box", "gps"]
OpenPort = Callable[[str, int, int, str, int], SerialPort]


class RecordingError(EnvpatrolError, ValueError):
    """A recording that cannot be read: which file, which line, what is wrong."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(f"recording {path}, line {line}", problem)
        self.path = path
        self.line = line


def fix_to_dict(fix: Fix) -> dict[str, Any]:
    return {
        "time": None if fix.time is None else format_time(fix.time),
        "lat": round(fix.lat, 7),
        "lon": round(fix.lon, 7),
        "valid": fix.valid,
        "quality": fix.quality,
        "satellites": fix.satellites,
        "hdop": fix.hdop,
        "speed_mps": fix.speed_mps,
        "course_deg": fix.course_deg,
        "talker": fix.talker,
    }


class DriveRecorder:
    """Writes one recording. Thread-safe: the poll loop and the GPS reader both write here."""

    def __init__(
        self,
        path: str | Path,
        header: dict[str, Any],
        *,
        time_scale: float = 1.0,
        clock: Callable[[], float] | None = None,
        clock_header: dict[str, float] | None = None,
    ) -> None:
        """`clock` reads drive seconds (edge.clock; the default scales the host's monotonic
        clock by `time_scale`); `clock_header` adds the agent's start readings of it."""
        clock = clock or SystemClock(time_scale).monotonic
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = gzip.open(self.path, "wt", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._lock = threading.Lock()
        self._clock = clock
        self._origin = clock()
        self._framer = NmeaFramer()
        self._assembler = EpochAssembler()
        self._closed = False
        self.lines = 0
        self._write(
            {
                "type": "header",
                "format": RECORDING_FORMAT,
                "version": RECORDING_VERSION,
                "started": format_time(datetime.now(UTC)),
                "software": f"envpatrol-edge {__version__}",
                "time_scale": time_scale,
                **header,
                "clock": {"origin": self._origin, **(clock_header or {})},
            }
        )

    @classmethod
    def for_agent(
        cls,
        path: str | Path,
        settings: Any,
        clock: Clock | None = None,
        started: float | None = None,
        powered_for: float | None = None,
    ) -> DriveRecorder:
        """A recorder whose header describes an agent's settings (edge.config.EdgeSettings)
        and the readings of its clock when it started (drive seconds)."""
        clock = clock or SystemClock(settings.time_scale)
        start: dict[str, float] = {}
        if started is not None:
            start["started"] = started
        if powered_for is not None:
            start["powered_for"] = powered_for
        box = settings.box
        return cls(
            path,
            {
                "vehicle": settings.vehicle,
                "poll_interval_s": settings.poll_interval_s,
                "box": {
                    "port": box.port,
                    "profile": box.profile,
                    "address": box.address,
                    "timeout_s": box.timeout_s,
                    "retries": box.retries,
                },
                "gps": {"port": settings.gps.port, "max_fix_age_s": settings.gps.max_fix_age_s},
            },
            time_scale=settings.time_scale,
            clock=clock.monotonic,
            clock_header=start,
        )

    def now(self) -> float:
        """Drive time: seconds since the recording began, in the agent's time scale."""
        return round(self._clock() - self._origin, 6)

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")
        self.lines += 1

    def serial(self, port: PortName, direction: Literal["tx", "rx"], data: bytes) -> None:
        with self._lock:
            if self._closed:
                return
            t = self.now()
            self._write(
                {"type": "serial", "t": t, "port": port, "dir": direction, "hex": data.hex()}
            )
            if port == "gps" and direction == "rx":
                for sentence in self._framer.feed(data):
                    fix = self._assembler.update(sentence)
                    if fix is not None:
                        self._write({"type": "fix", "t": t, "fix": fix_to_dict(fix)})

    def reading(
        self, reading: Reading, tagged_at: float | None = None, fix_received: float | None = None
    ) -> None:
        """Record a reading; with the agent's clock when it tagged it (`tagged_at`) and when
        the fix it used arrived (`fix_received`), both exact (TimedFix.received)."""
        with self._lock:
            if self._closed:
                return
            record: dict[str, Any] = {
                "type": "reading",
                "t": self.now(),
                "reading": reading_to_dict(reading),
            }
            if tagged_at is not None:
                record["clock"] = {"now": tagged_at, "fix": fix_received}
            self._write(record)
            # A reading is the natural checkpoint: what is flushed survives a crash of the agent.
            self._file.flush()

    def wrap(self, open_port: OpenPort, ports: dict[str, PortName]) -> OpenPort:
        """An `open_port` that records the traffic of the ports named in `ports` (url -> name)."""

        def opener(
            url: str, baudrate: int, bytesize: int, parity: str, stopbits: int
        ) -> SerialPort:
            port = open_port(url, baudrate, bytesize, parity, stopbits)
            name = ports.get(url)
            return port if name is None else RecordingPort(port, name, self)

        return opener

    def chain(self, on_reading: Callable[[Reading], None] | None) -> Callable[[Reading], None]:
        def both(reading: Reading) -> None:
            self.reading(reading)
            if on_reading is not None:
                on_reading(reading)

        return both

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._write({"type": "end", "t": self.now(), "lines": self.lines + 1})
            self._closed = True
            self._file.close()


class RecordingPort:
    """A serial port that reports every byte written and read to a DriveRecorder."""

    def __init__(self, port: SerialPort, name: PortName, recorder: DriveRecorder) -> None:
        self._port = port
        self._name: PortName = name
        self._recorder = recorder

    @property
    def timeout(self) -> float | None:
        return self._port.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._port.timeout = value

    @property
    def in_waiting(self) -> int:
        return self._port.in_waiting

    def write(self, data: bytes, /) -> int | None:
        self._recorder.serial(self._name, "tx", bytes(data))
        return self._port.write(data)

    def read(self, size: int = 1, /) -> bytes:
        data = self._port.read(size)
        if data:
            self._recorder.serial(self._name, "rx", bytes(data))
        return data

    def reset_input_buffer(self) -> None:
        self._port.reset_input_buffer()

    def close(self) -> None:
        self._port.close()


# ---------------------------------------------------------------------------------------------
# Reading a recording back


@dataclass(frozen=True, slots=True)
class SerialChunk:
    t: float
    port: PortName
    direction: Literal["tx", "rx"]
    data: bytes


@dataclass(frozen=True, slots=True)
class RecordedReading:
    t: float
    reading: dict[str, Any]  # the v1 reading object (edge.wire.reading_to_dict)
    # Version 2: the agent's clock (drive seconds) when it tagged the reading, and when the fix
    # it used arrived (None: no fix). None in version 1 recordings.
    tagged_at: float | None = None
    fix_received: float | None = None


@dataclass(frozen=True, slots=True)
class RecordedFix:
    t: float
    fix: dict[str, Any]


Event = SerialChunk | RecordedReading | RecordedFix


@dataclass(frozen=True, slots=True)
class Recording:
    header: dict[str, Any]
    events: tuple[Event, ...]
    complete: bool  # False when the file ends without its `end` line (the agent was killed)

    @property
    def vehicle(self) -> str:
        return str(self.header["vehicle"])

    @property
    def version(self) -> int:
        return int(self.header["version"])

    def clock_reading(self, name: str) -> float | None:
        """A reading of the agent's clock from the header (`origin`, `started`, `powered_for`;
        version 2), None when the recording lacks it."""
        clock = self.header.get("clock")
        value = clock.get(name) if isinstance(clock, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    @property
    def readings(self) -> list[RecordedReading]:
        return [e for e in self.events if isinstance(e, RecordedReading)]

    @property
    def duration_s(self) -> float:
        return self.events[-1].t if self.events else 0.0


def _number(record: dict[str, Any], path: str, line: int) -> float:
    t = record.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise RecordingError(path, line, "t must be a number")
    return float(t)


def iter_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every line; a truncated gzip tail ends the iteration quietly."""
    name = str(path)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.endswith("\n"):
                    return  # a line cut short by a crash
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise RecordingError(name, number, f"not JSON: {exc}") from exc
                if not isinstance(record, dict):
                    raise RecordingError(name, number, "not a JSON object")
                yield number, record
    except EOFError:
        return  # the compressed stream was cut short: keep what was complete
    except OSError as exc:
        raise RecordingError(name, 0, f"cannot read: {exc}") from exc


def _event(record: dict[str, Any], name: str, number: int) -> Event | None:
    """One event line; None for the `end` line."""
    kind = record.get("type")
    t = _number(record, name, number)
    if kind == "serial":
        port, direction = record.get("port"), record.get("dir")
        if port not in ("box", "gps") or direction not in ("tx", "rx"):
            raise RecordingError(name, number, "serial needs port box|gps and dir tx|rx")
        try:
            data = bytes.fromhex(str(record.get("hex")))
        except ValueError as exc:
            raise RecordingError(name, number, "hex is not hexadecimal") from exc
        return SerialChunk(t, port, direction, data)
    if kind in ("reading", "fix"):
        body = record.get(kind)
        if not isinstance(body, dict):
            raise RecordingError(name, number, f"{kind} must be an object")
        if kind == "fix":
            return RecordedFix(t, body)
        clock = record.get("clock")
        if clock is None:
            return RecordedReading(t, body)
        now = clock.get("now") if isinstance(clock, dict) else None
        fix = clock.get("fix") if isinstance(clock, dict) else None
        if not isinstance(now, int | float) or isinstance(now, bool):
            raise RecordingError(name, number, "clock.now must be a number")
        if fix is not None and (not isinstance(fix, int | float) or isinstance(fix, bool)):
            raise RecordingError(name, number, "clock.fix must be a number or null")
        return RecordedReading(t, body, float(now), None if fix is None else float(fix))
    if kind == "end":
        return None
    raise RecordingError(name, number, f"unknown record type {kind!r}")


def load_recording(path: str | Path) -> Recording:
    name = str(path)
    header: dict[str, Any] | None = None
    events: list[Event] = []
    complete = False
    for number, record in iter_records(path):
        if header is None:
            if record.get("type") != "header" or record.get("format") != RECORDING_FORMAT:
                raise RecordingError(name, number, f"not an {RECORDING_FORMAT} recording")
            version = record.get("version")
            if isinstance(version, bool) or version not in READABLE_VERSIONS:
                raise RecordingError(name, number, f"unsupported version {record.get('version')!r}")
            if not isinstance(record.get("vehicle"), str):
                raise RecordingError(name, number, "header.vehicle must be a string")
            header = record
            continue
        event = _event(record, name, number)
        if event is None:
            complete = True
        else:
            events.append(event)
    if header is None:
        raise RecordingError(name, 1, "empty file")
    return Recording(header, tuple(events), complete)
