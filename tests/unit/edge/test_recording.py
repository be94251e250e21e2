"""Drive recordings: what the recorder writes is what the reader returns, byte for byte; a
recording cut short by a crash keeps its complete lines; bad files say where they are bad."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.agent import Tagging, tag_reading
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.modbus import encode_read_response
from edge.mqtt import MqttSettings
from edge.nmea import format_gga, format_rmc
from edge.profile import load_profile
from edge.recording import (
    DriveRecorder,
    RecordedFix,
    RecordedReading,
    RecordingError,
    SerialChunk,
    load_recording,
)
from firmware_sim.replay import Exchange, GpsBurst, replay_plan, replay_settings

T0 = datetime(2026, 3, 2, 1, 0, 0, tzinfo=UTC)


class Clock:
    """A clock in drive seconds that moves only when told (edge.clock.Clock and a callable)."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return T0

    def boottime(self) -> float | None:
        return 5000.0


class MemoryPort:
    """A serial port whose device side is a queue of prepared answers."""

    def __init__(self, answers: list[bytes]) -> None:
        self.timeout: float | None = 0.05
        self.answers = list(answers)
        self.sent: list[bytes] = []

    def write(self, data: bytes, /) -> int | None:
        self.sent.append(bytes(data))
        return len(data)

    def read(self, _size: int = 1, /) -> bytes:
        return self.answers.pop(0) if self.answers else b""

    def reset_input_buffer(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def in_waiting(self) -> int:
        return len(self.answers[0]) if self.answers else 0


def edge_settings(tmp_path: Path) -> EdgeSettings:
    return EdgeSettings(
        vehicle="rec-1",
        mqtt=MqttSettings.from_url("mqtt://127.0.0.1:1883"),
        box=BoxSettings(port="/dev/box"),
        gps=GpsSettings(port="/dev/gps"),
        outbox_path=str(tmp_path / "o.sqlite3"),
        time_scale=10.0,
    )


def test_a_recorded_drive_reads_back_with_drive_time_fixes_and_readings(tmp_path: Path) -> None:
    clock = Clock(1000.0)  # the agent's clock, in drive seconds (time_scale 10 included)
    path = tmp_path / "drive.jsonl.gz"
    recorder = DriveRecorder.for_agent(path, edge_settings(tmp_path), clock, 999.5, 5000.0)
    profile = load_profile("default-multi")
    answer = encode_read_response(1, 3, list(range(16)))
    gps_bytes = (format_gga(T0, 39.89, 116.47) + format_rmc(T0, 39.89, 116.47)).encode()
    ports = {"/dev/box": MemoryPort([answer[:5], answer[5:]]), "/dev/gps": MemoryPort([gps_bytes])}
    opener = recorder.wrap(lambda url, *_: ports[url], {"/dev/box": "box", "/dev/gps": "gps"})
    box, gps = opener("/dev/box", 9600, 8, "N", 1), opener("/dev/gps", 9600, 8, "N", 1)
    clock.now = 1005.0
    assert gps.read(100) == gps_bytes
    clock.now = 1010.0
    box.write(profile.request.encode())
    assert box.read(5) + box.read(100) == answer
    reading = tag_reading("rec-1", 1, profile, tuple(range(16)), None, 0, T0, Tagging())
    recorder.reading(reading, 1010.125, 1005.0625)
    recorder.chain(None)(reading)  # a reading recorded without the agent's clock readings
    recorder.close()

    recording = load_recording(path)
    assert recording.complete
    assert recording.vehicle == "rec-1"
    assert recording.header["box"]["profile"] == "default-multi"
    assert recording.header["time_scale"] == 10.0
    assert recording.version == 3
    assert recording.header["clock"] == {"origin": 1000.0, "started": 999.5, "powered_for": 5000.0}
    assert recording.clock_reading("started") == 999.5
    serial = [e for e in recording.events if isinstance(e, SerialChunk)]
    assert [(e.port, e.direction, e.t) for e in serial] == [
        ("gps", "rx", 5.0),  # drive time: seconds since the recording began, on the agent's clock
        ("box", "tx", 10.0),
        ("box", "rx", 10.0),
        ("box", "rx", 10.0),
    ]
    assert b"".join(e.data for e in serial if e.port == "box" and e.direction == "rx") == answer
    fixes = [e for e in recording.events if isinstance(e, RecordedFix)]
    # The same fixes the agent's receiver assembles: one per epoch, GGA and RMC merged.
    assert [f.fix["time"] for f in fixes] == ["2026-03-02T01:00:00.000Z"]
    assert fixes[-1].fix["lat"] == pytest.approx(39.89)
    assert recording.readings[0].reading["values"]["temperature"] == pytest.approx(0.0)
    assert isinstance(recording.readings[0], RecordedReading)
    # The agent's clock readings come back exactly; a reading recorded without them has none.
    assert (recording.readings[0].tagged_at, recording.readings[0].fix_received) == (
        1010.125,
        1005.0625,
    )
    assert (recording.readings[1].tagged_at, recording.readings[1].fix_received) == (None, None)


@settings(max_examples=60)
@given(st.floats(0, 1e12), st.one_of(st.none(), st.floats(0, 1e12)))
def test_clock_readings_round_trip_bit_for_bit(now: float, fix: float | None) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "clock.jsonl.gz"
        recorder = DriveRecorder(path, {"vehicle": "v"})
        reading = tag_reading(
            "v", 1, load_profile("default-multi"), (0,) * 16, None, 0, T0, Tagging()
        )
        recorder.reading(reading, now, fix)
        recorder.close()
        (back,) = load_recording(path).readings
    assert back.tagged_at == now
    assert back.fix_received == fix


def test_a_version_1_recording_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "v1.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(
            '{"type":"header","format":"envpatrol-drive","version":1,"vehicle":"v"}\n'
            '{"type":"reading","t":1.5,"reading":{"seq":1}}\n'
            '{"type":"end","t":2.0,"lines":3}\n'
        )
    recording = load_recording(path)
    assert recording.version == 1
    assert recording.complete
    assert recording.clock_reading("origin") is None
    assert recording.readings == [RecordedReading(1.5, {"seq": 1})]


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.sampled_from(["box", "gps"]), st.booleans(), st.binary()), max_size=30)
)
def test_any_bytes_round_trip(tmp_path: Path, chunks: list[tuple[str, bool, bytes]]) -> None:
    path = tmp_path / "bytes.jsonl.gz"
    recorder = DriveRecorder(path, {"vehicle": "v"})
    for port, tx, data in chunks:
        recorder.serial(port, "tx" if tx else "rx", data)  # type: ignore[arg-type]
    recorder.close()
    events = [e for e in load_recording(path).events if isinstance(e, SerialChunk)]
    assert [(e.port, e.direction == "tx", e.data) for e in events] == chunks


def test_a_recording_cut_short_keeps_its_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    recorder = DriveRecorder(path, {"vehicle": "v"})
    for i in range(200):
        recorder.serial("box", "tx", bytes([i]) * 8)
    recorder.close()
    raw = path.read_bytes()
    cut = tmp_path / "crashed.jsonl.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    recording = load_recording(cut)
    assert not recording.complete
    assert 0 < len(recording.events) < 200
    assert all(isinstance(e, SerialChunk) and len(e.data) == 8 for e in recording.events)


@pytest.mark.parametrize(
    ("lines", "line", "problem"),
    [
        (['{"type":"header","format":"other","version":1,"vehicle":"v"}'], 1, "not an"),
        (['{"type":"header","format":"envpatrol-drive","version":9,"vehicle":"v"}'], 1, "version"),
        (
            [
                '{"type":"header","format":"envpatrol-drive","version":1,"vehicle":"v"}',
                '{"type":"serial","t":1,"port":"box","dir":"tx","hex":"zz"}',
            ],
            2,
            "hexadecimal",
        ),
        (
            [
                '{"type":"header","format":"envpatrol-drive","version":1,"vehicle":"v"}',
                '{"type":"serial","t":"soon","port":"box","dir":"tx","hex":"00"}',
            ],
            2,
            "t must be a number",
        ),
        (
            [
                '{"type":"header","format":"envpatrol-drive","version":1,"vehicle":"v"}',
                "not json",
            ],
            2,
            "not JSON",
        ),
        (
            [
                '{"type":"header","format":"envpatrol-drive","version":1,"vehicle":"v"}',
                '{"type":"photo","t":1}',
            ],
            2,
            "unknown record type",
        ),
        (
            [
                '{"type":"header","format":"envpatrol-drive","version":2,"vehicle":"v"}',
                '{"type":"reading","t":1,"reading":{},"clock":{"now":"soon","fix":null}}',
            ],
            2,
            "clock.now must be a number",
        ),
        (
            [
                '{"type":"header","format":"envpatrol-drive","version":2,"vehicle":"v"}',
                '{"type":"reading","t":1,"reading":{},"clock":{"now":1,"fix":true}}',
            ],
            2,
            "clock.fix must be",
        ),
    ],
)
def test_bad_recordings_name_the_line(
    tmp_path: Path, lines: list[str], line: int, problem: str
) -> None:
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    with pytest.raises(RecordingError) as info:
        load_recording(path)
    assert info.value.line == line
    assert problem in info.value.problem


def test_not_gzip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_text(json.dumps({"type": "header"}) + "\n")
    with pytest.raises(RecordingError, match="cannot read"):
        load_recording(path)


def test_the_replay_plan_pairs_requests_with_answers_and_keeps_the_receiver_between(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plan.jsonl.gz"
    clock = Clock()
    recorder = DriveRecorder(path, {"vehicle": "v"}, clock=clock)

    def at(t: float) -> DriveRecorder:
        clock.now = 100.0 + t
        return recorder

    at(0.5).serial("gps", "rx", b"$A")
    at(1.0).serial("box", "tx", b"req1")
    at(1.2).serial("gps", "rx", b"$B")  # arrived while the box was answering
    at(1.3).serial("box", "rx", b"ans")
    at(1.4).serial("box", "rx", b"wer1")
    at(2.0).serial("box", "tx", b"req2")  # no answer: a timeout
    at(2.5).serial("box", "tx", b"req3")
    at(2.6).serial("box", "rx", b"answer3")
    at(3.0).serial("gps", "rx", b"$C")
    recorder.close()
    plan = replay_plan(load_recording(path))
    assert plan == [
        GpsBurst(0.5, b"$A"),
        GpsBurst(1.2, b"$B"),
        Exchange(1.4, b"req1", b"answer1", 1.0),
        Exchange(2.0, b"req2", b"", 2.0),
        Exchange(2.6, b"req3", b"answer3", 2.5),
        GpsBurst(3.0, b"$C"),
    ]


def _epoch(second: int) -> bytes:
    moment = T0.replace(second=second)
    return (format_gga(moment, 39.89, 116.47) + format_rmc(moment, 39.89, 116.47)).encode()


def _drive(path: Path, version: int, lines: list[dict[str, object]]) -> None:
    header: dict[str, object] = {
        "type": "header",
        "format": "envpatrol-drive",
        "version": version,
        "vehicle": "v",
        "started": "2026-03-02T01:00:00.000Z",
    }
    if version >= 2:
        header["clock"] = {"origin": 100.0, "started": 99.0, "powered_for": 5000.0}
    with gzip.open(path, "wt") as handle:
        for line in [header, *lines]:
            handle.write(json.dumps(line) + "\n")


def _serial(t: float, port: str, direction: str, data: bytes) -> dict[str, object]:
    return {"type": "serial", "t": t, "port": port, "dir": direction, "hex": data.hex()}


def _reading(t: float, age: float | None, source: str = "gnss") -> dict[str, object]:
    position = None if age is None else {"lat": 39.89, "lon": 116.47, "age_s": age}
    body = {"seq": 1, "time": "2026-03-02T01:00:03.250Z", "time_source": source}
    return {"type": "reading", "t": t, "reading": {**body, "position": position}}


def test_the_replay_plan_holds_the_clock_where_the_agent_read_it(tmp_path: Path) -> None:
    """Version 2: the fix a reading used arrives at its recorded clock reading and the answer
    at the reading's; an epoch recorded before the answer but stamped after the reading (the
    receiver was still at it) reaches the replaying agent after the answer."""
    e1, e2, e3 = _epoch(1), _epoch(2), _epoch(3)
    path = tmp_path / "v2.jsonl.gz"
    _drive(
        path,
        2,
        [
            _serial(0.5, "gps", "rx", e1),
            _serial(1.0, "box", "tx", b"req1"),
            _serial(1.2, "gps", "rx", e2),  # read, but its fix was not the latest yet
            _serial(1.3, "box", "rx", b"answer1"),
            {**_reading(1.31, 0.8), "clock": {"now": 101.3000042, "fix": 100.5000017}},
            _serial(2.0, "gps", "rx", e3),
            _serial(2.5, "box", "tx", b"req2"),
            _serial(2.6, "box", "rx", b"answer2"),
            {**_reading(2.61, None, "host"), "clock": {"now": 102.6000001, "fix": None}},
        ],
    )
    plan = replay_plan(load_recording(path))
    assert plan == [
        GpsBurst(0.5, e1, 1, hold=100.5000017),
        Exchange(1.3, b"req1", b"answer1", 1.0, True, 101.3000042),
        GpsBurst(1.2, e2, 1),
        GpsBurst(2.0, e3, 1),
        Exchange(
            2.6,
            b"req2",
            b"answer2",
            2.5,
            True,
            102.6000001,
            T0.replace(second=3, microsecond=250000),
        ),
    ]


def test_a_version_1_plan_ages_the_fix_by_the_recorded_age(tmp_path: Path) -> None:
    e1 = _epoch(1)
    path = tmp_path / "v1.jsonl.gz"
    _drive(
        path,
        1,
        [
            _serial(0.5, "gps", "rx", e1),
            _serial(1.0, "box", "tx", b"req1"),
            _serial(1.3, "box", "rx", b"answer1"),
            _reading(1.31, 0.85),
        ],
    )
    plan = replay_plan(load_recording(path))
    assert plan == [
        GpsBurst(0.5, e1, 1, hold=0.5),
        Exchange(1.3, b"req1", b"answer1", 1.0, True, 0.5 + 0.85),
    ]


@pytest.mark.parametrize(("version", "asks"), [(1, False), (2, False), (3, True)])
def test_a_replay_asks_the_box_who_it_is_only_where_the_drive_recorded_it(
    tmp_path: Path, version: int, asks: bool
) -> None:
    path = tmp_path / f"v{version}.jsonl.gz"
    _drive(path, version, [{"type": "end", "t": 1.0, "lines": 1}])
    recording = load_recording(path)
    player: Any = SimpleNamespace(box_path="/dev/null", gps_path="/dev/null")
    mqtt = MqttSettings.from_url("mqtt://127.0.0.1:1")
    settings = replay_settings(recording, mqtt, player, 1.0, tmp_path)
    assert settings.box.identity is asks
