"""Quality flags: what the agent knows about a reading, attached to it, never a reason to drop it.

The rules are pure functions of values, times and thresholds; `QualityTracker` only keeps the
little history they need (previous value per channel, how long a value has been unchanged, how
long the vehicle has stood still). Times are seconds on the agent's own clock (simulated seconds
in a time-scaled drive), passed in by the caller: nothing here reads a clock.
The rules, their defaults and their settings are documented in docs/quality-flags.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from edge.nmea import Fix
from edge.units import CHANNELS, ChannelSpec

EARTH_RADIUS_M = 6371008.8

# Readings with these flags are not where the statistics come from (passes, rollups, hotspots):
# no usable position (no_fix, stale_fix), a time known to be wrong (clock_clamped), standing
# still (stationary: a parked vehicle's exhaust is not the street's), or sensors still warming
# up. They stay stored and readable.
STATS_EXCLUDED_FLAGS: tuple[str, ...] = (
    "no_fix",
    "stale_fix",
    "clock_clamped",
    "stationary",
    "warmup",
)
# Readings with these flags are not even on a vehicle's track: their position cannot be trusted,
# or their time cannot, which would put the position at the wrong place in the track.
TRACK_EXCLUDED_FLAGS: tuple[str, ...] = ("no_fix", "stale_fix", "clock_clamped")


@dataclass(frozen=True, slots=True)
class QualitySettings:
    """Thresholds of the quality rules (the `[quality]` table of the edge configuration)."""

    # Sensors settle after power-on (electrochemical gas cells take minutes): every value read
    # within this many seconds of power-on is flagged `warmup`.
    warmup_s: float = 180.0
    # What "power-on" is: "boot", the gateway's boot (box and gateway share the vehicle's
    # switched power, so an agent restart does not restart the warm-up), or "start", the
    # agent's start (for a box powered together with the agent's own start-up).
    warmup_from: str = "boot"
    # A box that answers again after whole polls failed and it was silent for longer than this
    # was switched off meanwhile (a box on its own switch, the gateway on constant power): its
    # first answer is a power-on and the warm-up starts again. 0 disables the rule.
    box_off_s: float = 60.0
    # A channel whose value has not changed at all for this long is flagged `stuck`.
    stuck_s: float = 900.0
    # A change between two consecutive values larger than this fraction of the channel's
    # plausible span (units.CHANNELS low..high) is flagged `spike`.
    spike_step_fraction: float = 0.5
    # After this many consecutive spikes the new level is taken as real, not as a glitch.
    spike_accept_after: int = 3
    # The vehicle is `stationary` when its GNSS speed stayed below this ...
    stationary_speed_mps: float = 0.5
    # ... for at least this long.
    stationary_s: float = 60.0

    def check(self) -> None:
        """Raise ValueError naming the first threshold that cannot work."""
        if self.warmup_from not in ("boot", "start"):
            raise ValueError("warmup_from must be 'boot' or 'start'")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                continue
            if value < 0 or (isinstance(value, float) and not math.isfinite(value)):
                raise ValueError(f"{f.name} must be a non-negative number, got {value}")
        if not 0 < self.spike_step_fraction <= 1:
            raise ValueError("spike_step_fraction must be in (0, 1]")
        if self.spike_accept_after < 1:
            raise ValueError("spike_accept_after must be >= 1")


# -- pure rules ----------------------------------------------------------------------------------


def out_of_range(spec: ChannelSpec, value: float) -> bool:
    """Outside what the channel can physically measure (units.CHANNELS low..high)."""
    return not spec.low <= value <= spec.high


def in_warmup(uptime_s: float, settings: QualitySettings) -> bool:
    return uptime_s < settings.warmup_s


def box_was_off(silent_for_s: float, failed_polls: int, settings: QualitySettings) -> bool:
    """An answer after `silent_for_s` without one, `failed_polls` of them asked in vain: the box
    was switched off meanwhile. Failed polls are needed: a gap in the polling alone (the agent
    itself stalled) says nothing about the box."""
    return settings.box_off_s > 0 and failed_polls > 0 and silent_for_s > settings.box_off_s


def is_spike(spec: ChannelSpec, value: float, reference: float, settings: QualitySettings) -> bool:
    """A step from the last accepted value larger than the allowed fraction of the span."""
    return abs(value - reference) > settings.spike_step_fraction * (spec.high - spec.low)


def is_stuck(unchanged_for_s: float, settings: QualitySettings) -> bool:
    return settings.stuck_s > 0 and unchanged_for_s >= settings.stuck_s


def is_stationary(still_for_s: float | None, settings: QualitySettings) -> bool:
    return still_for_s is not None and still_for_s >= settings.stationary_s


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance on the mean Earth sphere (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def segment_distance_m(
    a: tuple[float, float], b: tuple[float, float], p: tuple[float, float]
) -> float:
    """Distance from p to the segment a-b (each (lat, lon)), on the plane tangent at a: exact
    enough over the few hundred metres of a street."""
    k = math.radians(1.0) * EARTH_RADIUS_M
    c = math.cos(math.radians(a[0]))
    bx, by = (b[1] - a[1]) * k * c, (b[0] - a[0]) * k
    px, py = (p[1] - a[1]) * k * c, (p[0] - a[0]) * k
    length2 = bx * bx + by * by
    f = 0.0 if length2 == 0 else min(1.0, max(0.0, (px * bx + py * by) / length2))
    return math.hypot(px - f * bx, py - f * by)


@dataclass(frozen=True, slots=True)
class FixFilter:
    """Which fixes are good enough to place a reading (the `[gps]` thresholds)."""

    max_hdop: float = 10.0
    min_satellites: int = 4
    max_speed_mps: float = 70.0


def fix_problem(fix: Fix, previous: Fix | None, limits: FixFilter) -> str | None:
    """Why a fix must not place a reading, or None when it may.

    `previous` is the last accepted fix: a fix implying a move faster than `max_speed_mps` since
    then is a jump (multipath under overpasses, a receiver's reset to a stale almanac position).
    """
    if not fix.valid:
        return "status"
    if fix.quality is not None and fix.quality <= 0:
        return "quality"
    if fix.hdop is not None and fix.hdop > limits.max_hdop:
        return "hdop"
    if fix.satellites is not None and fix.satellites < limits.min_satellites:
        return "satellites"
    if (
        previous is not None
        and previous.time is not None
        and fix.time is not None
        and previous.valid
    ):
        elapsed = (fix.time - previous.time).total_seconds()
        moved = distance_m(previous.lat, previous.lon, fix.lat, fix.lon)
        if elapsed > 0 and moved / elapsed > limits.max_speed_mps:
            return "jump"
    return None


# -- history --------------------------------------------------------------------------------------


@dataclass(slots=True)
class BoxPower:
    """When the box was last switched on, as its answers tell, on the agent's clock (seconds).

    It starts as the agent's start-up says (`warmup_from`: the gateway's boot or the agent's
    start); a box answering after a silence (`box_was_off`) was switched on at that answer.
    """

    settings: QualitySettings
    switched_on_s: float  # when the box was (taken as) switched on
    heard_s: float  # its last answer; the agent's start before the first
    failed_polls: int = 0  # polls that got no answer since then
    power_ons: int = 0  # switch-ons seen by a silence

    @classmethod
    def at_start(
        cls, settings: QualitySettings, started_s: float, powered_for_s: float
    ) -> BoxPower:
        """At the agent's start, the box powered for `powered_for_s` already."""
        return cls(settings, started_s - powered_for_s, started_s)

    def no_answer(self) -> None:
        self.failed_polls += 1

    def answered(self, now_s: float) -> float:
        """The box answered at `now_s`: its uptime then."""
        if box_was_off(now_s - self.heard_s, self.failed_polls, self.settings):
            self.switched_on_s = now_s
            self.power_ons += 1
        self.heard_s = now_s
        self.failed_polls = 0
        return now_s - self.switched_on_s


@dataclass(slots=True)
class _Channel:
    reference: float  # last value not flagged as a spike
    spikes: int = 0  # consecutive spikes against the reference
    value: float = math.nan  # last value seen
    unchanged_since: float = 0.0


@dataclass(slots=True)
class QualityTracker:
    """Applies the rules reading after reading; `assess` is deterministic in its arguments."""

    settings: QualitySettings = field(default_factory=QualitySettings)
    _channels: dict[str, _Channel] = field(default_factory=dict)
    _still_since: float | None = None

    def assess(
        self,
        values: Mapping[str, float | None],
        sentinel: frozenset[str] | set[str] | tuple[str, ...],
        now_s: float,
        uptime_s: float,
        speed_mps: float | None,
    ) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        """Reading flags (only `stationary` here; the fix flags come from tagging) and channel
        flags for one reading taken at `now_s`, `uptime_s` after the agent started."""
        s = self.settings
        channel_flags: dict[str, tuple[str, ...]] = {}
        warm = in_warmup(uptime_s, s)
        for name, value in values.items():
            flags: list[str] = []
            if name in sentinel:
                flags.append("sentinel")
            if value is not None:
                spec = CHANNELS[name]
                if out_of_range(spec, value):
                    flags.append("out_of_range")
                flags.extend(self._history(name, spec, value, now_s))
                if warm:
                    flags.append("warmup")
            if flags:
                channel_flags[name] = tuple(flags)
        reading_flags: tuple[str, ...] = ()
        if speed_mps is None:
            self._still_since = None
        elif speed_mps < s.stationary_speed_mps:
            if self._still_since is None:
                self._still_since = now_s
            if is_stationary(now_s - self._still_since, s):
                reading_flags = ("stationary",)
        else:
            self._still_since = None
        return reading_flags, channel_flags

    def _history(self, name: str, spec: ChannelSpec, value: float, now_s: float) -> list[str]:
        s = self.settings
        channel = self._channels.get(name)
        if channel is None:
            self._channels[name] = _Channel(reference=value, value=value, unchanged_since=now_s)
            return []
        flags: list[str] = []
        if value != channel.value:
            channel.value = value
            channel.unchanged_since = now_s
        elif is_stuck(now_s - channel.unchanged_since, s):
            flags.append("stuck")
        if is_spike(spec, value, channel.reference, s):
            channel.spikes += 1
            if channel.spikes >= s.spike_accept_after:
                channel.reference = value
                channel.spikes = 0
            else:
                flags.append("spike")
        else:
            channel.reference = value
            channel.spikes = 0
        return flags
