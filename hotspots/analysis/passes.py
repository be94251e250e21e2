"""Passes: what the hotspot analysis consumes, and the rule that builds them from readings.

A pass is one contiguous visit of one vehicle to one cell. The ingest builds passes from the
stored readings; `segment_passes` below is the same rule as a pure function, for the evaluation
harness and for tests: per vehicle, in time order, over the readings that qualify (a cell and no
excluding reading flag), a pass ends when the vehicle leaves the cell or when two qualifying
readings are more than `pass_gap_s` apart. Per pass and pollutant it keeps the mean of the usable
values (energy mean for logarithmic channels such as noise), their median and their count; a value
that is missing or carries a channel flag is simply absent (NaN) and counts for nothing.

`AnalysisPass` is the readable record; `PassTable` is the same data in columns, which is what the
analysis works on (a month of a fleet is a few hundred thousand passes).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import h3
import numpy as np

from edge.errors import EnvpatrolError
from edge.units import CHANNELS
from hotspots.analysis.grouping import (
    BoolArray,
    FloatArray,
    IntArray,
    group_count,
    group_median,
    group_sum,
    run_starts,
)
from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.standards import energy_to_level_array, to_energy_array


class PassError(EnvpatrolError, ValueError):
    """Input that cannot be turned into passes; `subject` names what is wrong."""


@dataclass(frozen=True, slots=True)
class PassStats:
    """One pollutant over one pass: mean (energy mean for noise), median and sample count."""

    mean: float
    median: float
    n: int


@dataclass(frozen=True, slots=True)
class AnalysisPass:
    vehicle: str
    cell: str  # H3 index
    start: datetime  # UTC, first qualifying reading
    end: datetime  # UTC, last qualifying reading
    stats: Mapping[str, PassStats]
    excluded: int = 0  # readings in the visit kept out of the statistics by their flags


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise PassError("start", f"naive datetime {moment.isoformat()}: times must be aware")
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class PassTable:
    """Passes in columns. Times are UTC epoch seconds; cells are H3 integers.

    values[p][i] is pass i's value of pollutant p (mean, energy mean for noise), NaN when the
    pass has no usable value of p; counts[p][i] is the number of readings behind it.
    """

    vehicles: tuple[str, ...]
    vehicle: IntArray  # index into vehicles
    cell: IntArray  # H3 index as an integer
    start: FloatArray
    end: FloatArray
    values: Mapping[str, FloatArray] = field(default_factory=dict)
    counts: Mapping[str, IntArray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.cell)
        for name, column in (("vehicle", self.vehicle), ("start", self.start), ("end", self.end)):
            if len(column) != n:
                raise PassError(name, f"{len(column)} entries for {n} passes")
        for pollutant, column in self.values.items():
            if len(column) != n or len(self.counts.get(pollutant, ())) != n:
                raise PassError(f"values.{pollutant}", f"values or counts not of length {n}")
        if n and (self.vehicle.min() < 0 or self.vehicle.max() >= len(self.vehicles)):
            raise PassError("vehicle", "index outside vehicles")

    def __len__(self) -> int:
        return len(self.cell)

    @property
    def mid(self) -> FloatArray:
        return (self.start + self.end) / 2.0

    def subset(self, mask: BoolArray | IntArray) -> PassTable:
        return PassTable(
            vehicles=self.vehicles,
            vehicle=self.vehicle[mask],
            cell=self.cell[mask],
            start=self.start[mask],
            end=self.end[mask],
            values={p: v[mask] for p, v in self.values.items()},
            counts={p: c[mask] for p, c in self.counts.items()},
        )

    @classmethod
    def from_passes(cls, passes: Sequence[AnalysisPass]) -> PassTable:
        vehicles = tuple(sorted({p.vehicle for p in passes}))
        index = {v: i for i, v in enumerate(vehicles)}
        pollutants = sorted({name for p in passes for name in p.stats})
        values = {name: np.full(len(passes), np.nan) for name in pollutants}
        counts = {name: np.zeros(len(passes), dtype=np.int64) for name in pollutants}
        for i, p in enumerate(passes):
            for name, stats in p.stats.items():
                if stats.n > 0:
                    values[name][i] = stats.mean
                    counts[name][i] = stats.n
        return cls(
            vehicles=vehicles,
            vehicle=np.array([index[p.vehicle] for p in passes], dtype=np.int64),
            cell=np.array([h3.str_to_int(p.cell) for p in passes], dtype=np.int64),
            start=np.array([_epoch(p.start) for p in passes], dtype=np.float64),
            end=np.array([_epoch(p.end) for p in passes], dtype=np.float64),
            values=values,
            counts=counts,
        )


@dataclass(frozen=True, slots=True)
class ReadingSeries:
    """One vehicle's readings in time order, in columns (what the harness feeds the segmenter).

    times: UTC epoch seconds, non-decreasing. cells: H3 index per reading, None without a fix.
    values: per channel, NaN where the value is missing or carries a channel flag (lag-corrected
    already if wanted, see hotspots.analysis.lag). flags: the reading-level flags of each reading.
    """

    vehicle: str
    times: FloatArray
    cells: Sequence[str | None]
    values: Mapping[str, FloatArray]
    flags: Sequence[Collection[str]]

    def __post_init__(self) -> None:
        n = len(self.times)
        if len(self.cells) != n or len(self.flags) != n:
            raise PassError("cells", "cells, flags and times differ in length")
        for name, column in self.values.items():
            if len(column) != n:
                raise PassError(f"values.{name}", f"{len(column)} values for {n} readings")
        if n > 1 and bool(np.any(np.diff(self.times) < 0)):
            raise PassError("times", "readings must be in time order")


def segment_passes(series: ReadingSeries, settings: AnalysisSettings) -> list[AnalysisPass]:
    """The passes of one vehicle's readings, by the rule in the module docstring."""
    table, excluded = _segment(series, settings)
    passes: list[AnalysisPass] = []
    for i in range(len(table)):
        stats = {
            name: PassStats(
                mean=float(table.values[name][i]),
                median=float(excluded.medians[name][i]),
                n=int(table.counts[name][i]),
            )
            for name in table.values
            if table.counts[name][i] > 0
        }
        passes.append(
            AnalysisPass(
                vehicle=series.vehicle,
                cell=h3.int_to_str(int(table.cell[i])),
                start=datetime.fromtimestamp(float(table.start[i]), UTC),
                end=datetime.fromtimestamp(float(table.end[i]), UTC),
                stats=stats,
                excluded=int(excluded.counts[i]),
            )
        )
    return passes


def segment_table(series: ReadingSeries, settings: AnalysisSettings) -> PassTable:
    """Like `segment_passes`, straight to columns."""
    return _segment(series, settings)[0]


@dataclass(frozen=True, slots=True)
class _Extra:
    medians: Mapping[str, FloatArray]
    counts: IntArray  # excluded readings per pass


def _segment(series: ReadingSeries, settings: AnalysisSettings) -> tuple[PassTable, _Extra]:
    n = len(series.times)
    excluded_flags = frozenset(settings.excluded_flags)
    has_cell = np.array([c is not None for c in series.cells], dtype=bool)
    flagged = np.array([bool(excluded_flags.intersection(f)) for f in series.flags], dtype=bool)
    qualifying = has_cell & ~flagged if n else np.zeros(0, dtype=bool)
    idx = np.flatnonzero(qualifying)
    cells = np.array(
        [h3.str_to_int(str(series.cells[int(i)])) for i in idx], dtype=np.int64
    )  # qualifying cells are never None
    times = series.times[idx]
    if len(idx) == 0:
        empty = np.zeros(0)
        table = PassTable(
            vehicles=(series.vehicle,),
            vehicle=np.zeros(0, dtype=np.int64),
            cell=np.zeros(0, dtype=np.int64),
            start=empty,
            end=empty,
            values=dict.fromkeys(series.values, empty),
            counts={k: np.zeros(0, dtype=np.int64) for k in series.values},
        )
        return table, _Extra(dict.fromkeys(series.values, empty), np.zeros(0, dtype=np.int64))
    breaks = np.ones(len(idx), dtype=bool)
    breaks[1:] = (cells[1:] != cells[:-1]) | (np.diff(times) > settings.pass_gap_s)
    label = run_starts(breaks)
    k = int(label[-1]) + 1
    starts = np.flatnonzero(breaks)
    ends = np.concatenate((starts[1:], [len(idx)])) - 1
    values: dict[str, FloatArray] = {}
    counts: dict[str, IntArray] = {}
    medians: dict[str, FloatArray] = {}
    for name, column in series.values.items():
        v = np.asarray(column, dtype=np.float64)[idx]
        ok = ~np.isnan(v)
        c = group_count(label[ok], k)
        energy = CHANNELS[name].energy_mean if name in CHANNELS else False
        summed = group_sum(label[ok], to_energy_array(v[ok]) if energy else v[ok], k)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = summed / c
            if energy:
                mean = energy_to_level_array(mean)
        mean[c == 0] = np.nan
        values[name] = mean
        counts[name] = c
        medians[name] = group_median(label, v, k)
    # Readings of the visit kept out by their flags: those between the pass's first and last
    # qualifying reading (in the original order) that did not qualify.
    first = idx[starts]
    last = idx[ends]
    cum_flagged = np.concatenate(([0], np.cumsum(has_cell & flagged)))
    excluded = (cum_flagged[last + 1] - cum_flagged[first]).astype(np.int64)
    table = PassTable(
        vehicles=(series.vehicle,),
        vehicle=np.zeros(k, dtype=np.int64),
        cell=cells[starts],
        start=times[starts],
        end=times[ends],
        values=values,
        counts=counts,
    )
    return table, _Extra(medians, excluded)


def segment_fleet(fleet: Sequence[ReadingSeries], settings: AnalysisSettings) -> PassTable:
    """The passes of several vehicles (one series each) in one table."""
    return concat([segment_table(series, settings) for series in fleet])


def concat(tables: Sequence[PassTable]) -> PassTable:
    """One table of several (e.g. one per vehicle), vehicle indices remapped."""
    vehicles = tuple(sorted({v for t in tables for v in t.vehicles}))
    index = {v: i for i, v in enumerate(vehicles)}
    pollutants = sorted({p for t in tables for p in t.values})
    parts_vehicle = [
        np.array([index[v] for v in t.vehicles], dtype=np.int64)[t.vehicle] for t in tables
    ]

    def column(t: PassTable, p: str) -> FloatArray:
        return t.values[p] if p in t.values else np.full(len(t), np.nan)

    def count(t: PassTable, p: str) -> IntArray:
        return t.counts[p] if p in t.counts else np.zeros(len(t), dtype=np.int64)

    return PassTable(
        vehicles=vehicles,
        vehicle=np.concatenate(parts_vehicle) if tables else np.zeros(0, dtype=np.int64),
        cell=np.concatenate([t.cell for t in tables]) if tables else np.zeros(0, dtype=np.int64),
        start=np.concatenate([t.start for t in tables]) if tables else np.zeros(0),
        end=np.concatenate([t.end for t in tables]) if tables else np.zeros(0),
        values={p: np.concatenate([column(t, p) for t in tables]) for p in pollutants},
        counts={p: np.concatenate([count(t, p) for t in tables]) for p in pollutants},
    )


def stationary_mask(times: FloatArray, speeds: FloatArray, settings: AnalysisSettings) -> BoolArray:
    """Readings of stops: speed under stationary_speed_mps for longer than stationary_min_s.

    A reading without a speed (NaN) neither starts nor breaks a stop. The whole stop is marked,
    from its first slow reading, once the stop has lasted long enough.
    """
    slow = np.nan_to_num(speeds, nan=np.inf) < settings.stationary_speed_mps
    out = np.zeros(len(times), dtype=bool)
    if not slow.any():
        return out
    edges = np.diff(np.concatenate(([0], slow.astype(np.int8), [0])))
    run_first = np.flatnonzero(edges == 1)
    run_last = np.flatnonzero(edges == -1) - 1
    long_enough = times[run_last] - times[run_first] > settings.stationary_min_s
    for first, last in zip(run_first[long_enough], run_last[long_enough], strict=True):
        out[first : last + 1] = True
    return out
