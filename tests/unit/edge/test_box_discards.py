"""The box client accounts for every byte it reads: each belongs to an answer it accepted or is
reported as a discard, in the order read. Against a line whose device answers late, garbled,
cut short or not at all, on a clock of the test's own."""

from __future__ import annotations

import contextlib
import heapq
import random
from dataclasses import replace
from itertools import count, pairwise
from pathlib import Path

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st

from edge.agent import Agent
from edge.box import BoxClient, BoxError, Discard
from edge.config import BoxSettings, EdgeSettings, GpsSettings
from edge.modbus import encode_exception_response, encode_read_response
from edge.mqtt import MqttSettings
from edge.profile import BoxIdentity, load_profile
from edge.recording import SerialChunk, load_recording
from firmware_sim.faults import corrupt_crc
from firmware_sim.truth import account

# Readings only: the identity exchange is tested in test_box_identity.py.
BOXED = load_profile("default-multi")
PROFILE = replace(BOXED, identity=None)

# What the device does with one request: (delay after the request, bytes) pieces, in order.
Plan = list[tuple[float, bytes]]


class Line:
    """The agent's end of a serial line. The device answers each request as planned, one answer
    after another as a real box does; its bytes arrive when the line's clock reaches them, and
    the clock moves on while the agent waits on an empty line. Every byte read is kept."""

    def __init__(self, plans: list[Plan]) -> None:
        self.timeout: float | None = 0.05
        self.now = 0.0
        self.read_bytes = bytearray()
        self.fail_after: int | None = None  # reads before the adapter is pulled out
        self._plans = list(plans)
        self._due: list[tuple[float, int, bytes]] = []
        self._order = count()
        self._busy_until = 0.0
        self._pending = bytearray()
        self._reads = 0

    def clock(self) -> float:
        return self.now

    def _arrive(self) -> None:
        while self._due and self._due[0][0] <= self.now:
            self._pending += heapq.heappop(self._due)[2]

    def write(self, data: bytes, /) -> int | None:
        plan = self._plans.pop(0) if self._plans else []
        for delay, piece in plan:
            # the device answers in order: a piece never overtakes an earlier answer's
            self._busy_until = max(self.now + delay, self._busy_until)
            heapq.heappush(self._due, (self._busy_until, next(self._order), piece))
        return len(data)

    def read(self, size: int = 1, /) -> bytes:
        self._reads += 1
        if self.fail_after is not None and self._reads > self.fail_after:
            raise serial.SerialException("device disconnected")
        self._arrive()
        if not self._pending:
            self.now += 0.01
            self._arrive()
        out = bytes(self._pending[:size])
        del self._pending[:size]
        self.read_bytes += out
        return out

    def reset_input_buffer(self) -> None:
        self._pending.clear()

    def close(self) -> None:
        pass

    @property
    def in_waiting(self) -> int:
        self._arrive()
        return len(self._pending)


def frame(registers: tuple[int, ...]) -> bytes:
    return encode_read_response(PROFILE.address, PROFILE.function, registers)


def block(seed: int) -> tuple[int, ...]:
    rng = random.Random(seed)
    return tuple(rng.randrange(0x10000) for _ in range(PROFILE.count))


def client_on(line: Line, discards: list[Discard]) -> BoxClient:
    return BoxClient(
        PROFILE, "line://", open_port=lambda *_: line, clock=line.clock, on_discard=discards.append
    )


def as_read(accepted: list[tuple[int, ...]], discards: list[Discard]) -> bytes:
    """The line as the client read it, rebuilt from its record: the discards after each
    accepted answer, in order, around the accepted frames."""
    out = bytearray()
    for after in range(len(accepted) + 1):
        out += b"".join(d.data for d in discards if d.after == after)
        if after < len(accepted):
            out += frame(accepted[after])
    return bytes(out)


def test_an_answer_after_the_timeout_is_taken_by_the_retry_and_the_retry_s_own_is_stale() -> None:
    first, second, third = block(1), block(2), block(3)
    line = Line([[(0.6, frame(first))], [(0.2, frame(second))], [(0.01, frame(third))]])
    discards: list[Discard] = []
    client = client_on(line, discards)
    # The first answer comes after the first attempt gave up: the retry reads it (Modbus RTU
    # cannot tell it from its own), and the retry's own answer arrives after the poll ended.
    assert client.poll() == first
    assert client.counters.timeouts == 1
    line.now += 10.0  # the poll interval
    assert client.poll() == third
    assert discards == [Discard("stale", frame(second), 1)]
    assert client.counters.discarded_bytes == len(frame(second))
    assert client.counters.requests == 3
    assert as_read([first, third], discards) == bytes(line.read_bytes)


def test_bytes_around_the_frame_taken_are_discarded_before_and_after_it() -> None:
    answer = block(4)
    noise, tail = b"\x07\x55\x00", frame(block(5))[:9]
    line = Line([[(0.01, noise + frame(answer) + tail)]])
    discards: list[Discard] = []
    assert client_on(line, discards).poll() == answer
    assert discards == [Discard("skipped", noise, 0), Discard("surplus", tail, 1)]


def test_failed_attempts_report_what_they_read() -> None:
    good = block(6)
    bad = corrupt_crc(frame(good), random.Random(6))
    cut = frame(good)[:11]
    refusal = encode_exception_response(PROFILE.address, PROFILE.function, 4)
    line = Line([[(0.01, bad)], [(0.01, cut)], [(0.01, refusal)]])
    discards: list[Discard] = []
    client = client_on(line, discards)
    with pytest.raises(BoxError) as caught:
        client.poll()
    assert caught.value.kind == "exception"
    assert [(d.reason, d.data) for d in discards] == [
        ("crc", bad),
        ("short", cut),
        ("exception", refusal),
    ]
    assert client.counters.discarded_bytes == len(bad) + len(cut) + len(refusal)


def test_bytes_read_before_the_port_fails_are_reported() -> None:
    answer = frame(block(7))
    line = Line([[(0.01, answer[:6]), (0.2, answer[6:])]])
    line.fail_after = 3
    discards: list[Discard] = []
    client = client_on(line, discards)
    with pytest.raises(BoxError) as caught:
        client.poll()
    assert caught.value.kind == "port"
    assert discards == [Discard("port", answer[:6], 0)]


def test_a_drive_recording_holds_the_exchanges_not_the_stale_answers_read_before_them(
    tmp_path: Path,
) -> None:
    first, second, third = block(1), block(2), block(3)
    assert BOXED.identity is not None
    who = encode_read_response(
        BOXED.address, 3, BOXED.identity.encode(BoxIdentity("EP-SIM", "EP0001", "1.0"))
    )
    line = Line(
        [[(0.01, who)], [(0.6, frame(first))], [(0.2, frame(second))], [(0.01, frame(third))]]
    )
    settings = EdgeSettings(
        vehicle="v",
        mqtt=MqttSettings.from_url("mqtt://127.0.0.1:1883"),
        box=BoxSettings(port="/dev/box"),
        gps=GpsSettings(port="/dev/gps"),
        outbox_path=str(tmp_path / "outbox.sqlite3"),
        record_path=str(tmp_path / "drive.jsonl.gz"),
    )
    discards: list[Discard] = []
    agent = Agent(settings, open_port=lambda *_: line, on_discard=discards.append)
    agent.box.clock = line.clock
    assert agent.poll_once() is not None
    line.now += 10.0
    assert agent.poll_once() is not None
    agent.outbox.close()
    assert agent.recorder is not None
    agent.recorder.close()

    assert discards == [Discard("stale", frame(second), 1)]
    # A replay answers each recorded request with what was read after it: the stale answer
    # was never an answer to a request, as when it was flushed unread.
    events = load_recording(tmp_path / "drive.jsonl.gz").events
    box = [e for e in events if isinstance(e, SerialChunk) and e.port == "box"]
    # The identity exchange is recorded like the others, so a replay answers it too.
    assert sum(e.direction == "tx" for e in box) == 4
    assert box[0].data == BOXED.identity_request.encode()  # type: ignore[union-attr]
    assert b"".join(e.data for e in box if e.direction == "rx") == who + frame(first) + frame(third)


def answer_plans() -> st.SearchStrategy[list[tuple[str, Plan]]]:
    """Per request: what the device sends (None: nothing), and how it arrives."""

    @st.composite
    def one(draw: st.DrawFn, seed: int) -> tuple[str, Plan]:
        good = frame(block(seed))
        kind = draw(st.sampled_from(["good", "late", "crc", "noise", "cut", "refusal", "silent"]))
        sent = {
            "good": good,
            "late": good,
            "crc": corrupt_crc(good, random.Random(seed)),
            "noise": draw(st.binary(min_size=1, max_size=20)) + good,
            "cut": good[: draw(st.integers(1, len(good) - 1))],
            "refusal": encode_exception_response(PROFILE.address, PROFILE.function, 6),
            "silent": b"",
        }[kind]
        delay = draw(st.floats(0.5, 1.6)) if kind == "late" else draw(st.floats(0.0, 0.05))
        cuts = sorted(draw(st.lists(st.integers(1, max(1, len(sent) - 1)), max_size=3)))
        points = [0, *(c for c in cuts if c < len(sent)), len(sent)]
        pieces = [sent[a:b] for a, b in pairwise(points) if b > a]
        gap = draw(st.floats(0.0, 0.2))
        return sent.hex(), [(delay + i * gap, p) for i, p in enumerate(pieces)]

    return st.integers(0, 10**6).flatmap(
        lambda base: st.lists(st.integers(0, 10**6), min_size=1, max_size=12).flatmap(
            lambda seeds: st.tuples(*(one(base + s) for s in seeds)).map(list)
        )
    )


@given(plans=answer_plans(), polls=st.integers(1, 8))
def test_every_byte_read_is_an_accepted_answer_or_a_discard(
    plans: list[tuple[str, Plan]], polls: int
) -> None:
    line = Line([plan for _, plan in plans])
    discards: list[Discard] = []
    client = client_on(line, discards)
    accepted: list[tuple[int, ...]] = []
    for _ in range(polls):
        with contextlib.suppress(BoxError):
            accepted.append(client.poll())
    assert as_read(accepted, discards) == bytes(line.read_bytes)
    assert client.counters.discarded_bytes == sum(len(d.data) for d in discards)
    assert all(d.data and 0 <= d.after <= len(accepted) for d in discards)

    # The same record laid over what the device sent: every accepted answer is one it sent,
    # the discards are the rest of what was read, and only a tail was never read.
    served = [bytes.fromhex(sent) for sent, _ in plans[: client.counters.requests] if sent]
    accounting = account(served, discards, len(accepted))
    for index, registers in zip(accounting.taken, accepted, strict=True):
        assert served[index].endswith(frame(registers))
