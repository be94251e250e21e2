"""The box client asks the box who it is on every (re)open of its port and after a poll that got
no answer, and takes readings only from the right box: the configured serial, else the first box
seen. Against a port path that can lead to another box, as a re-enumerated adapter does."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import serial

from edge.agent import Agent
from edge.box import BoxClient, BoxError
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.modbus import ReadRequest
from edge.mqtt import MqttSettings
from edge.profile import BoxIdentity, load_profile
from tests.unit.edge.ports import AnsweringPort

PROFILE = load_profile("default-multi")
ONE = BoxIdentity("EP-SIM", "EP0000000001", "2.1")
TWO = BoxIdentity("EP-SIM", "EP0000000002", "2.1")


@dataclass
class Box:
    """A box on the far end of the path: who it is and the block it answers."""

    identity: BoxIdentity
    level: int
    silent: bool = False
    asked: list[str] = field(default_factory=list)  # what this box was asked


class PortPath:
    """A port path (like /dev/serial/by-id/...): each open reaches the box plugged in then; an
    opened port keeps its box until it fails."""

    def __init__(self, box: Box | None) -> None:
        self.box = box
        self.opens = 0
        self.requests: list[str] = []  # "identity" or "block", in order

    def open(self, *_: object) -> Port:
        if self.box is None:
            raise serial.SerialException("no such device")
        self.opens += 1
        return Port(self, self.box)


class Port(AnsweringPort):
    """A port opened on a path: it fails once the path reaches another box."""

    def __init__(self, path: PortPath, box: Box) -> None:
        super().__init__(self._reply, timeout=0.05)
        self._path = path
        self._box = box

    def _gone(self) -> bool:
        return self._path.box is not self._box

    def _reply(self, request: ReadRequest) -> list[int] | None:
        box = self._box
        if request == PROFILE.identity_request:
            kind = "identity"
            assert PROFILE.identity is not None
            registers = PROFILE.identity.encode(box.identity)
        else:
            assert request == PROFILE.request
            kind = "block"
            registers = [box.level] * PROFILE.count
        self._path.requests.append(kind)
        box.asked.append(kind)
        return None if box.silent else registers

    def write(self, data: bytes, /) -> int | None:
        if self._gone():
            raise serial.SerialException("write failed: device disconnected")
        return super().write(data)

    def read(self, size: int = 1, /) -> bytes:
        if self._gone():
            raise serial.SerialException("read failed: device disconnected")
        return super().read(size)


class TickClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.01
        return self.now


def client_for(path: PortPath, expected_serial: str | None = None) -> BoxClient:
    return BoxClient(
        PROFILE,
        "/dev/serial/by-id/box",
        open_port=path.open,
        clock=TickClock(),
        retries=0,
        expected_serial=expected_serial,
    )


def test_the_box_is_asked_who_it_is_once_per_open_and_the_first_seen_is_kept() -> None:
    path = PortPath(Box(ONE, 10))
    client = client_for(path)
    assert client.poll() == (10,) * PROFILE.count
    assert client.poll() == (10,) * PROFILE.count
    assert path.requests == ["identity", "block", "block"]
    assert client.identity == ONE
    assert client.counters.identity_reads == 1
    assert client.counters.identity_mismatches == 0


def test_another_box_on_the_same_path_is_refused_until_the_right_one_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = PortPath(Box(ONE, 10))
    client = client_for(path)
    assert client.poll() == (10,) * PROFILE.count
    other = Box(TWO, 99)
    path.box = other  # the adapter re-enumerated: the path leads to another box
    refusals = []
    for _ in range(3):
        with pytest.raises(BoxError) as caught:
            client.poll()
        refusals.append(caught.value.kind)
    # the port failing, then the other box refused at every poll, asked again on a new open
    assert refusals == ["port", "identity", "identity"]
    assert other.asked == ["identity", "identity"]  # never its readings
    assert client.counters.identity_mismatches == 2
    assert client.identity == ONE
    assert client.seen == TWO
    assert client.counters.ok == 1
    assert [r.message for r in caplog.records].count(
        f"box port /dev/serial/by-id/box: box is {TWO}, not {ONE} that readings were taken "
        "from; readings refused"
    ) == 1  # logged once per stretch, counted every time

    path.box = Box(replace(ONE, firmware="2.2"), 11)  # the right box, updated, is back
    assert client.poll() == (11,) * PROFILE.count
    assert client.identity == replace(ONE, firmware="2.2")
    assert client.seen == client.identity
    assert client.counters.ok == 2


def test_a_configured_serial_refuses_any_other_box_from_the_start() -> None:
    path = PortPath(Box(TWO, 99))
    client = client_for(path, expected_serial=ONE.serial)
    with pytest.raises(BoxError, match="not the configured serial 'EP0000000001'") as caught:
        client.poll()
    assert caught.value.kind == "identity"
    assert client.identity is None
    assert path.requests == ["identity"]
    path.box = Box(ONE, 10)
    assert client.poll() == (10,) * PROFILE.count
    assert client.identity == ONE


def test_after_a_poll_without_answer_the_box_is_asked_again() -> None:
    """A box swapped on its cable behind an adapter that stays plugged in goes silent first."""
    box = Box(ONE, 10)
    path = PortPath(box)
    client = client_for(path)
    client.poll()
    box.silent = True
    with pytest.raises(BoxError):
        client.poll()
    box.silent = False
    box.identity = TWO  # the same port, another box behind it
    with pytest.raises(BoxError) as caught:
        client.poll()
    assert caught.value.kind == "identity"
    assert path.requests == ["identity", "block", "block", "identity"]


def test_a_box_that_does_not_answer_who_it_is_gives_no_readings() -> None:
    path = PortPath(Box(ONE, 10, silent=True))
    client = client_for(path)
    with pytest.raises(BoxError) as caught:
        client.poll()
    assert caught.value.kind == "timeout"
    assert path.requests == ["identity"]
    assert client.counters.failed == 1


def test_a_profile_without_identity_registers_reads_at_once() -> None:
    path = PortPath(Box(ONE, 10))
    client = BoxClient(
        replace(PROFILE, identity=None), "line://", open_port=path.open, clock=TickClock()
    )
    assert client.poll() == (10,) * PROFILE.count
    assert path.requests == ["block"]
    assert client.identity is None


def test_the_agent_reports_its_box_and_a_refused_one(tmp_path: Path) -> None:
    path = PortPath(Box(ONE, 10))
    settings = EdgeSettings(
        vehicle="v",
        mqtt=MqttSettings.from_url("mqtt://127.0.0.1:1883"),
        box=BoxSettings(port="/dev/box", retries=0),
        gps=GpsSettings(port="/dev/gps"),
        outbox_path=str(tmp_path / "outbox.sqlite3"),
    )
    agent = Agent(settings, open_port=path.open)
    agent.box.clock = TickClock()
    try:
        assert agent.poll_once() is not None
        path.box = Box(TWO, 99)
        assert agent.poll_once() is None  # the port fails
        assert agent.poll_once() is None  # the other box is refused
        status = agent.status("online")
        assert status["box"] == ONE.as_dict()
        assert status["box_refused"] == TWO.as_dict()
        assert "not" in str(status["last_error"])  # the refusal, as the poll's error
        health = agent.health()
        assert health["box"]["identity_mismatches"] == 1
        assert agent.readings == 1
    finally:
        agent.outbox.close()


def test_the_configured_serial_reaches_the_box_client(tmp_path: Path) -> None:
    settings = EdgeSettings(
        vehicle="v",
        mqtt=MqttSettings.from_url("mqtt://127.0.0.1:1883"),
        box=BoxSettings(port="/dev/box", serial=ONE.serial),
        gps=GpsSettings(port="/dev/gps"),
        outbox_path=str(tmp_path / "outbox.sqlite3"),
    )
    agent = Agent(settings, open_port=PortPath(None).open)
    try:
        assert agent.box.expected_serial == ONE.serial
    finally:
        agent.outbox.close()
