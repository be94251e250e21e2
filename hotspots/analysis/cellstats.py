"""Statistics per cell of one pollutant: level, persistence, passes, days, magnitude test.

For each cell with passes (hotspots.md, "Default method" step 5):
- M: the median over passes of the enhancement E (Apte et al.: the long-term value of a place is
  the median of its pass means, robust to the occasional plume); its bootstrap interval over
  passes is computed for the cells that are reported (`bootstrap_median_ci`);
- X: the median excess over the area reference (see hotspots.analysis.enhancement);
- persistence f: the share of passes whose excess is above delta = max(2 x noise, floor);
- spikes: passes whose excess is above episodic_factor x delta (episodic sources), and the
  binomial p-value that the cell has more of them than the area's spike rate explains;
- passes, distinct local days, vehicles, first and last pass;
- level: the median pass value in the channel's unit, and for logarithmic channels (noise) the
  energy mean over passes (edge.units.energy_mean);
- the one-sided p-value (hotspots.analysis.significance) that the excesses are above a margin of
  margin_factor x delta: a difference too small to matter in the field is not a finding, however
  many passes make it significant;
- the share test: the one-sided binomial p-value that more of the cell's passes have an excess
  above the area's `share_quantile` (0.75) plus the margin than the 1 - share_quantile a cell of
  an ordinary street has. A source that runs on part of the passes (a restaurant at meal times)
  leaves the cell's median near the area's but puts its on-passes in the area's top quarter.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from hotspots.analysis.grouping import (
    BoolArray,
    FloatArray,
    IntArray,
    dense_labels,
    group_count,
    group_median,
    group_nunique,
    group_sum,
    sorted_group_quantile,
)
from hotspots.analysis.settings import AnalysisSettings, Stratum
from hotspots.analysis.significance import (
    binomial_greater,
    median_z_greater,
    robust_sigma,
    signed_rank_greater,
)
from hotspots.analysis.standards import energy_to_level_array, to_energy_array


@dataclass(frozen=True, slots=True)
class CellTable:
    """Per-cell statistics in columns, one row per cell (sorted by H3 index)."""

    pollutant: str
    stratum: str
    cell: IntArray
    passes: IntArray
    days: IntArray
    vehicles: IntArray
    median_enhancement: FloatArray  # M
    median_excess: FloatArray
    level: FloatArray  # median pass value; NaN when not asked for (see cell_table)
    level_energy: FloatArray | None  # energy mean of pass values, for logarithmic channels
    persistence: FloatArray  # f
    spikes: IntArray
    first: FloatArray  # epoch s
    last: FloatArray
    p_magnitude: FloatArray
    delta: float
    reference: float
    margin: float  # the magnitude test's margin
    sigma: float  # robust spread of all pass excesses (1.4826 x MAD)
    p_episodic: FloatArray  # more spikes than the area's spike rate explains
    spike_rate: float  # share of all passes with a spike
    # the share test: more passes above the area's upper quantile (+ margin) than its share
    p_share: FloatArray | None = None
    share_threshold: float = float("nan")  # excess above which a pass counts, that quantile

    def __len__(self) -> int:
        return len(self.cell)


def local_clock(times: FloatArray, timezone: str) -> tuple[IntArray, IntArray]:
    """Local calendar day number and minute of day of each UTC epoch time.

    The zone's offset is looked up once per distinct UTC hour (offsets change on the hour).
    """
    if len(times) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    zone = zoneinfo.ZoneInfo(timezone)
    hours = np.floor(times / 3600.0).astype(np.int64)
    unique, inverse = np.unique(hours, return_inverse=True)
    offsets = np.array([_offset_s(int(h), zone) for h in unique], dtype=np.float64)
    local = times + offsets[inverse.reshape(-1)]
    day = np.floor(local / 86400.0).astype(np.int64)
    minute = np.floor((local - day * 86400.0) / 60.0).astype(np.int64)
    return day, minute


def _offset_s(hour: int, zone: zoneinfo.ZoneInfo) -> float:
    offset = datetime.fromtimestamp(hour * 3600, UTC).astimezone(zone).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def in_stratum(minute: IntArray, stratum: Stratum) -> BoolArray:
    """Whether each local minute of day falls in any window of the stratum."""
    out = np.zeros(len(minute), dtype=bool)
    for start, end in stratum.windows():
        if start <= end:
            out |= (minute >= start) & (minute < end)
        else:
            out |= (minute >= start) | (minute < end)
    return out


def cell_table(
    pollutant: str,
    stratum: str,
    cell: IntArray,
    vehicle: IntArray,
    day: IntArray,
    start: FloatArray,
    end: FloatArray,
    value: FloatArray,
    enhancement: FloatArray,
    reference: float,
    energy: bool,
    settings: AnalysisSettings,
    index: tuple[IntArray, IntArray] | None = None,
    levels: bool = True,
    order: IntArray | None = None,
) -> CellTable:
    """Statistics per cell over the given passes (all with a finite enhancement).

    `index` = (sorted distinct cells, position of each pass's cell among them) when the caller
    has it already (detect computes it once for all pollutants and strata); cells without a
    pass among the given ones are left out of the table. `order`, when given, is the order
    that sorts the given passes by cell, then by enhancement (`group_sort`): detect sorts each
    pollutant's passes once and hands every stratum its share in that order.
    """
    cells, label = dense_labels(cell) if index is None else index
    k = len(cells)
    delta = settings.delta_for(pollutant)
    excess = enhancement - reference
    passes = group_count(label, k)
    with np.errstate(invalid="ignore"):  # cells without passes get NaN, dropped below
        persistence = group_sum(label, (excess > delta).astype(np.float64), k) / passes
    spiked = excess > settings.episodic_factor * delta
    spikes = group_sum(label, spiked.astype(np.float64), k)
    spike_rate = float(spiked.mean()) if len(spiked) else 0.0
    first = np.full(k, np.inf)
    last = np.full(k, -np.inf)
    np.minimum.at(first, label, start)
    np.maximum.at(last, label, end)
    level_energy = None
    if energy:
        with np.errstate(divide="ignore", invalid="ignore"):  # cells without passes: NaN
            level_energy = energy_to_level_array(
                group_sum(label, to_energy_array(value), k) / passes
            )
    margin = settings.margin_factor * delta
    median_enhancement = (
        group_median(label, enhancement, k)
        if order is None
        else sorted_group_quantile(enhancement[order], passes, 0.5)
    )
    median_excess = median_enhancement - reference  # a median moves with a shift
    sigma = robust_sigma(excess)
    if settings.magnitude_test == "signed_rank":
        _, p, _ = signed_rank_greater(label, excess - margin, k, settings.exact_wilcoxon_max_n)
    else:
        _, p = median_z_greater(median_excess - margin, passes, sigma)
    share_threshold = (
        float(np.quantile(excess, settings.share_quantile)) + margin if len(excess) else np.nan
    )
    over = group_sum(label, (excess > share_threshold).astype(np.float64), k).astype(np.int64)
    p_share = binomial_greater(over, passes, 1.0 - settings.share_quantile)
    table = CellTable(
        pollutant=pollutant,
        stratum=stratum,
        cell=cells.astype(np.int64),
        passes=passes,
        days=group_nunique(label, day, k),
        vehicles=group_nunique(label, vehicle, k),
        median_enhancement=median_enhancement,
        median_excess=median_excess,
        level=group_median(label, value, k) if levels else np.full(k, np.nan),
        level_energy=level_energy,
        persistence=persistence,
        spikes=spikes.astype(np.int64),
        first=first,
        last=last,
        p_magnitude=p,
        delta=delta,
        reference=reference,
        margin=margin,
        sigma=sigma,
        p_episodic=binomial_greater(spikes.astype(np.int64), passes, spike_rate),
        spike_rate=spike_rate,
        p_share=p_share,
        share_threshold=share_threshold,
    )
    if index is not None and bool((passes == 0).any()):
        return _rows(table, passes > 0)
    return table


def _rows(table: CellTable, keep: BoolArray) -> CellTable:
    """The table restricted to some rows."""
    columns = {
        name: getattr(table, name)[keep]
        for name in (
            "cell", "passes", "days", "vehicles", "median_enhancement", "median_excess",
            "level", "persistence", "spikes", "first", "last", "p_magnitude", "p_episodic",
        )
    }  # fmt: skip
    energy = table.level_energy[keep] if table.level_energy is not None else None
    share = table.p_share[keep] if table.p_share is not None else None
    return replace(table, level_energy=energy, p_share=share, **columns)


def bootstrap_median_ci(
    values: FloatArray, resamples: int, confidence: float, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile bootstrap interval of the median, resampling passes with replacement."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return (float("nan"), float("nan"))
    draws = rng.integers(0, len(values), size=(resamples, len(values)))
    medians = np.median(values[draws], axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(medians, [alpha, 1.0 - alpha])
    return float(low), float(high)
