"""Faults a box shows on the road, injected deterministically from a seed.

Per request the box may: not answer (`drop`), answer too late (`late`), send a frame whose CRC
does not match (`crc`), or send garbage bytes before its answer (`garbage`). Per channel and
time window a module may be stuck (repeat the value it had when the window began) or report its
sentinel ("no value"). The frame manipulations are pure functions of bytes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Action = Literal["ok", "drop", "late", "crc", "garbage"]


@dataclass(frozen=True, slots=True)
class ChannelWindow:
    """A channel misbehaving from `start_h` to `end_h` hours after the scenario start."""

    channel: str
    start_h: float
    end_h: float

    def __post_init__(self) -> None:
        if self.end_h <= self.start_h:
            raise ValueError(f"{self.channel}: end_h must be after start_h")

    def covers(self, hours: float) -> bool:
        return self.start_h <= hours < self.end_h


@dataclass(frozen=True, slots=True)
class FaultSpec:
    drop: float = 0.0  # probability per request
    late: float = 0.0
    crc: float = 0.0
    garbage: float = 0.0
    late_s: float = 1.0  # wall seconds a late answer waits (longer than the agent's timeout)
    stuck: tuple[ChannelWindow, ...] = ()
    sentinel: tuple[ChannelWindow, ...] = ()

    def __post_init__(self) -> None:
        total = self.drop + self.late + self.crc + self.garbage
        if min(self.drop, self.late, self.crc, self.garbage) < 0 or total > 1:
            raise ValueError("fault probabilities must be >= 0 and sum to at most 1")


def corrupt_crc(frame: bytes, rng: random.Random) -> bytes:
    """The frame with one byte after the address changed: its CRC no longer matches."""
    i = rng.randrange(1, len(frame))
    return frame[:i] + bytes([frame[i] ^ rng.randrange(1, 256)]) + frame[i + 1 :]


def garbage(rng: random.Random, low: int = 1, high: int = 16) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(low, high)))


class FaultPlan:
    """Draws one action per request and applies the channel windows to served values."""

    def __init__(self, spec: FaultSpec, seed: int) -> None:
        self.spec = spec
        self.rng = random.Random(f"faults:{seed}")
        self._stuck_at: dict[tuple[str, float], float | None] = {}
        self.counts: dict[str, int] = {}

    def next_action(self) -> Action:
        s = self.spec
        x = self.rng.random()
        action: Action = "ok"
        for name, p in (("drop", s.drop), ("late", s.late), ("crc", s.crc), ("garbage", s.garbage)):
            if x < p:
                action = name  # type: ignore[assignment]
                break
            x -= p
        self.counts[action] = self.counts.get(action, 0) + 1
        return action

    def shape(self, action: Action, frame: bytes) -> bytes:
        if action == "crc":
            return corrupt_crc(frame, self.rng)
        if action == "garbage":
            return garbage(self.rng) + frame
        return frame

    def channels(
        self, hours: float, values: dict[str, float | None]
    ) -> tuple[dict[str, float | None], list[str]]:
        """Apply stuck and sentinel windows; return the values and what was applied."""
        out = dict(values)
        applied: list[str] = []
        for w in self.spec.stuck:
            key = (w.channel, w.start_h)
            if w.covers(hours) and w.channel in out:
                if key not in self._stuck_at:
                    self._stuck_at[key] = out[w.channel]
                out[w.channel] = self._stuck_at[key]
                applied.append(f"stuck:{w.channel}")
        for w in self.spec.sentinel:
            if w.covers(hours) and w.channel in out:
                out[w.channel] = None
                applied.append(f"sentinel:{w.channel}")
        return out, applied
