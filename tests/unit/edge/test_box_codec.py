"""The box codec end to end, for every built-in profile: values -> registers -> frame -> bytes
split, garbled or corrupted on the line -> the agent's BoxClient -> values. A poll either yields
exactly the registers the box sent or fails; it never yields anything else."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.box import BoxClient, BoxError
from edge.modbus import decode_response, encode_read_response
from edge.profile import BoxProfile, builtin_profiles, load_profile
from edge.units import CHANNELS
from firmware_sim.faults import corrupt_crc

# The readings' block alone: asking the box who it is comes first on a new port and is tested
# in test_box_identity.py.
PROFILES = [replace(load_profile(name), identity=None) for name in builtin_profiles()]


def values_for(profile: BoxProfile) -> st.SearchStrategy[dict[str, float | None]]:
    return st.fixed_dictionaries(
        {
            c.channel: st.one_of(
                st.none(),
                st.floats(
                    max(CHANNELS[c.channel].low, -40.0),
                    min(CHANNELS[c.channel].high, 5000.0),
                    allow_nan=False,
                ),
            )
            for c in profile.channels
        }
    )


class LinePort:
    """The agent's side of a serial line to a box that answers with prepared bytes, delivered
    in the chunks given. A fake device speaking the real protocol, not a mock."""

    def __init__(self, answers: list[list[bytes]]) -> None:
        self.timeout: float | None = 0.05
        self._answers = answers
        self._chunks: list[bytes] = []
        self.requests: list[bytes] = []

    def write(self, data: bytes, /) -> int | None:
        self.requests.append(bytes(data))
        self._chunks = list(self._answers.pop(0)) if self._answers else []
        return len(data)

    def read(self, _size: int = 1, /) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    def reset_input_buffer(self) -> None:
        self._chunks = []

    def close(self) -> None:
        pass

    @property
    def in_waiting(self) -> int:
        return len(self._chunks[0]) if self._chunks else 0


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


class TickClock:
    """Advances a little on every look, so a poll's timeout comes after a bounded number of reads."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.01
        return self.now


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_profile_round_trips_through_the_line_split_anywhere(
    profile: BoxProfile, data: st.DataObject
) -> None:
    values = data.draw(values_for(profile))
    registers = tuple(profile.encode(values))
    frame = encode_read_response(profile.address, profile.function, registers)
    cuts = data.draw(st.lists(st.integers(0, len(frame)), max_size=6))
    port = LinePort([split(frame, cuts)])
    client = BoxClient(profile, "line://", open_port=lambda *_: port, clock=TickClock())
    assert client.poll() == registers
    assert port.requests == [profile.request.encode()]
    decoded = profile.decode(registers).values
    for channel, value in values.items():
        if value is None:
            assert decoded[channel] is None
        else:
            assert decoded[channel] is not None


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_garbled_answers_are_rejected_or_resynchronised_never_misdecoded(
    profile: BoxProfile, data: st.DataObject
) -> None:
    values = data.draw(values_for(profile))
    registers = tuple(profile.encode(values))
    frame = encode_read_response(profile.address, profile.function, registers)
    answers: list[list[bytes]] = []
    for _ in range(3):  # one answer per attempt (the client retries twice)
        kind = data.draw(st.sampled_from(["good", "crc", "garbage", "truncated", "silent"]))
        rng = random.Random(data.draw(st.integers(0, 2**32)))
        if kind == "good":
            answer = frame
        elif kind == "crc":
            answer = corrupt_crc(frame, rng)
        elif kind == "garbage":
            answer = data.draw(st.binary(max_size=40)) + frame
        elif kind == "truncated":
            answer = frame[: data.draw(st.integers(0, len(frame) - 1))]
        else:
            answer = b""
        cuts = data.draw(st.lists(st.integers(0, len(answer) + 1), max_size=4))
        answers.append(split(answer, cuts) if answer else [])
    port = LinePort(answers)
    client = BoxClient(profile, "line://", open_port=lambda *_: port, clock=TickClock())
    try:
        got = client.poll()
    except BoxError as exc:
        failure = exc.kind
    else:
        assert got == registers
        return
    assert failure in ("timeout", "crc", "short")


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@given(data=st.data())
def test_a_corrupted_frame_never_decodes_and_the_next_good_one_does(
    profile: BoxProfile, data: st.DataObject
) -> None:
    registers = tuple(profile.encode(data.draw(values_for(profile))))
    frame = encode_read_response(profile.address, profile.function, registers)
    bad = corrupt_crc(frame, random.Random(data.draw(st.integers(0, 2**32))))
    assert decode_response(bad, profile.request).frame is None
    again = decode_response(bad + frame, profile.request).frame
    assert again is not None
    assert getattr(again, "registers", None) == registers


def test_a_corrupted_answer_fails_fast_instead_of_waiting_out_the_timeout() -> None:
    profile = replace(load_profile("default-multi"), identity=None)
    registers = tuple(profile.encode({}))
    frame = encode_read_response(profile.address, profile.function, registers)
    port = LinePort([[corrupt_crc(frame, random.Random(1))]])
    clock = TickClock()
    client = BoxClient(
        profile, "line://", timeout_s=5.0, retries=0, open_port=lambda *_: port, clock=clock
    )
    with pytest.raises(BoxError) as caught:
        client.poll()
    assert caught.value.kind == "crc"
    assert clock.now < 0.5  # the quiet gap after the bad frame, not the 5 s timeout
    assert client.counters.crc_errors == 1
