"""Passes: a vehicle's contiguous visits to one grid cell, and their per-channel statistics.

A vehicle's track is its readings with a valid, fresh fix, in (time, seq) order. A pass is a run
of consecutive track points in the same cell; it ends when the vehicle leaves the cell or when two
consecutive points are more than `gap` apart (the vehicle was parked, switched off or offline).

Pure functions of data: the writer feeds them readings from the database, the rebuild command
feeds them the whole table, and tests feed them made-up tracks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from edge.units import CHANNELS, energy_mean, energy_sum_mean, to_energy

DEFAULT_PASS_GAP = timedelta(seconds=120)


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """One positioned reading. `values` holds only values that may count: a value flagged for its
    channel, or every value of a reading with an excluded reading flag, is left out."""

    time: datetime
    seq: int
    cell: int
    values: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class ChannelStats:
    n: int
    mean: float
    min: float
    max: float
    energy_mean: float | None  # edge.units.energy_mean, for logarithmic channels (noise)


@dataclass(frozen=True, slots=True)
class TrackPass:
    vehicle: str
    cell: int
    start: datetime
    end: datetime
    first_seq: int
    last_seq: int
    readings: int  # track points in the pass, counted or not
    stats: Mapping[str, ChannelStats]


def ordered(points: Iterable[TrackPoint]) -> list[TrackPoint]:
    return sorted(points, key=lambda p: (p.time, p.seq))


def segment(points: Iterable[TrackPoint], gap: timedelta) -> Iterator[list[TrackPoint]]:
    """Split one vehicle's track, already in (time, seq) order, into passes.

    A point starts a new pass when its cell differs from the previous point's or when it comes
    more than `gap` after it; a gap of exactly `gap` keeps the pass going.
    """
    if gap <= timedelta(0):
        raise ValueError(f"the pass gap must be positive, got {gap}")
    current: list[TrackPoint] = []
    for point in points:
        if current:
            last = current[-1]
            if point.cell != last.cell or point.time - last.time > gap:
                yield current
                current = []
        current.append(point)
    if current:
        yield current


def channel_stats(channel: str, values: Sequence[float]) -> ChannelStats:
    """Statistics of one channel's values in a pass (at least one value)."""
    if not values:
        raise ValueError("no values")
    n = len(values)
    energy = None
    spec = CHANNELS.get(channel)
    if spec is not None and spec.energy_mean:
        energy = energy_mean(values)
    return ChannelStats(n, math.fsum(values) / n, min(values), max(values), energy)


def summarize(vehicle: str, points: Sequence[TrackPoint]) -> TrackPass:
    """A pass of `points` (one cell, in order, at least one point)."""
    if not points:
        raise ValueError("a pass has at least one point")
    by_channel: dict[str, list[float]] = {}
    for point in points:
        for channel, value in point.values.items():
            by_channel.setdefault(channel, []).append(value)
    return TrackPass(
        vehicle=vehicle,
        cell=points[0].cell,
        start=points[0].time,
        end=points[-1].time,
        first_seq=points[0].seq,
        last_seq=points[-1].seq,
        readings=len(points),
        stats={c: channel_stats(c, v) for c, v in sorted(by_channel.items())},
    )


def passes_of(vehicle: str, points: Sequence[TrackPoint], gap: timedelta) -> list[TrackPass]:
    """Every pass of one vehicle's track (points in any order)."""
    return [summarize(vehicle, run) for run in segment(ordered(points), gap)]


def extend(existing: TrackPass, points: Sequence[TrackPoint]) -> TrackPass:
    """`existing` continued by `points`, which come after it, in its cell, the first within the
    gap of its end: what `summarize` would give for all the points, from the pass's statistics
    (so a pass growing by a few readings per batch is not read back whole)."""
    if not points:
        return existing
    addition = summarize(existing.vehicle, points)
    stats = dict(existing.stats)
    for channel, more in addition.stats.items():
        old = stats.get(channel)
        stats[channel] = more if old is None else _merge(old, more)
    return TrackPass(
        vehicle=existing.vehicle,
        cell=existing.cell,
        start=existing.start,
        end=addition.end,
        first_seq=existing.first_seq,
        last_seq=addition.last_seq,
        readings=existing.readings + addition.readings,
        stats={c: stats[c] for c in sorted(stats)},
    )


def _merge(a: ChannelStats, b: ChannelStats) -> ChannelStats:
    n = a.n + b.n
    energy = None
    if a.energy_mean is not None and b.energy_mean is not None:
        power = a.n * to_energy(a.energy_mean) + b.n * to_energy(b.energy_mean)
        energy = energy_sum_mean(power, n)
    return ChannelStats(
        n, (a.n * a.mean + b.n * b.mean) / n, min(a.min, b.min), max(a.max, b.max), energy
    )
