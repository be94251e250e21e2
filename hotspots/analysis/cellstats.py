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
  leaves the cell's median near the area's but puts its on-passes in the area's top quarter;
- days on and off: a day is on when the median excess of the cell's passes that day is above
  delta, off when it is below episode_off_factor x delta; the binomial p-value that the cell
  has more on days than the area's rate of on (cell, day) groups explains, and the median
  excess of the passes of its on days and of its off days (a source that runs on some days),
  with the test that the off days lie below the on days beyond the spread of its on-day passes.

The tests count passes at their effective number: passes of one cell on one day share the
background error of their trips, so n passes on few days carry less evidence than n passes on
n days (hotspots.analysis.significance.design_effect, with the correlation estimated from the
stratum's own passes). A cell seen on fewer than `few_days` days must also pass the magnitude
and share tests without its strongest day: one unusual day does not make a place.

On a register grid (settings.quantum) the spread of pass excesses is never taken below what the
sensor noise and the rounding give a pass of the usual number of readings, and a median within
`lattice_steps` steps of the area's is also tested against the area's own distribution.
"""

from __future__ import annotations

import math
import zoneinfo
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy.special import ndtr
from scipy.stats import chi2

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
    MAD_TO_SIGMA,
    MEDIAN_SE_FACTOR,
    benjamini_hochberg,
    binomial_greater,
    design_effect,
    median_lattice_greater,
    median_z_greater,
    robust_sigma,
    signed_rank_greater,
    within_day_correlation,
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
    p_magnitude: FloatArray  # the magnitude test: p_median, or with mean_test the smaller of
    # p_median and p_mean, doubled (Bonferroni)
    delta: float
    reference: float
    margin: float  # the magnitude test's margin
    sigma: float  # robust spread of all pass excesses (1.4826 x MAD)
    p_episodic: FloatArray  # more spikes than the area's spike rate explains
    spike_rate: float  # share of all passes with a spike
    # the share test: more passes above the area's upper quantile (+ margin) than its share
    p_share: FloatArray | None = None
    share_threshold: float = float("nan")  # excess above which a pass counts, that quantile
    # days on (median excess of the day's passes > delta) and off (< off factor x delta), the
    # binomial p-value of the on days against the area's rate, the off days' median excess
    days_on: IntArray | None = None
    days_off: IntArray | None = None
    p_days: FloatArray | None = None
    off_excess: FloatArray | None = None
    on_excess: FloatArray | None = None
    q_off: FloatArray | None = None  # off days below on days beyond noise (see _Days.q_off)
    day_rate: float = float("nan")  # share of the stratum's (cell, day) groups that are on
    deff: FloatArray | None = None  # design effect of each cell's passes
    rho: float = 0.0  # estimated correlation of excesses within (cell, day)
    p_median: FloatArray | None = None  # the median's test (magnitude_test)
    p_mean: FloatArray | None = None  # the clipped mean's test, with mean_test

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
    readings: IntArray | None = None,
) -> CellTable:
    """Statistics per cell over the given passes (all with a finite enhancement).

    `index` = (sorted distinct cells, position of each pass's cell among them) when the caller
    has it already (detect computes it once for all pollutants and strata); cells without a
    pass among the given ones are left out of the table. `order`, when given, is the order
    that sorts the given passes by cell, then by enhancement (`group_sort`): detect sorts each
    pollutant's passes once and hands every stratum its share in that order. `readings`, when
    given, is the number of readings behind each pass (the floor of the spread).
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
    sigma = max(robust_sigma(excess), _spread_floor(pollutant, readings, settings))
    days = _Days.of(label, day, excess, k, delta, settings, median_excess)
    n_eff = passes / days.deff
    p, p_median, p_mean = _magnitude_p(
        label, excess, k, n_eff, median_excess, sigma, margin, days, pollutant, settings
    )
    share_threshold = (
        float(np.quantile(excess, settings.share_quantile)) + margin if len(excess) else np.nan
    )
    is_over = excess > share_threshold
    over = group_sum(label, is_over.astype(np.float64), k).astype(np.int64)
    share_rate = 1.0 - settings.share_quantile
    p_share = binomial_greater(over / days.deff, n_eff, share_rate)
    few = days.count < settings.few_days
    if few.any():
        # Without the day with the most passes in the area's top share.
        over_rest, n_rest = days.share_without_strongest(label, is_over, k)
        p_share_rest = binomial_greater(over_rest / days.deff, n_rest / days.deff, share_rate)
        p_share = np.where(few, np.fmax(p_share, p_share_rest), p_share)
    table = CellTable(
        pollutant=pollutant,
        stratum=stratum,
        cell=cells.astype(np.int64),
        passes=passes,
        days=days.count,
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
        p_median=p_median,
        p_mean=p_mean,
        delta=delta,
        reference=reference,
        margin=margin,
        sigma=sigma,
        p_episodic=binomial_greater(spikes / days.deff, n_eff, spike_rate),
        spike_rate=spike_rate,
        p_share=p_share,
        share_threshold=share_threshold,
        days_on=days.on,
        days_off=days.off,
        p_days=binomial_greater(days.on, days.count, days.rate),
        off_excess=days.off_excess,
        on_excess=days.on_excess,
        q_off=days.q_off(sigma, settings),
        day_rate=days.rate,
        deff=days.deff,
        rho=days.rho,
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
    optional: dict[str, Any] = {
        name: None if getattr(table, name) is None else getattr(table, name)[keep]
        for name in (
            "level_energy", "p_share", "days_on", "days_off", "p_days", "off_excess",
            "on_excess", "q_off", "deff", "p_median", "p_mean",
        )
    }  # fmt: skip
    return replace(table, **optional, **columns)


def _spread_floor(pollutant: str, readings: IntArray | None, settings: AnalysisSettings) -> float:
    """The spread of pass excesses that sensor noise and rounding alone give a pass of the
    usual number of readings: the pooled sigma is never taken below it (on a register grid the
    MAD of many tied values can be 0)."""
    typical = float(np.median(readings)) if readings is not None and len(readings) else 1.0
    return settings.noise_for(pollutant) / math.sqrt(max(typical, 1.0))


def _magnitude_p(
    label: IntArray,
    excess: FloatArray,
    k: int,
    n_eff: FloatArray,
    median_excess: FloatArray,
    sigma: float,
    margin: float,
    days: _Days,
    pollutant: str,
    settings: AnalysisSettings,
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """The magnitude test's p-value, the median's and the clipped mean's (None without
    `mean_test`). A cell seen on fewer than `few_days` days must pass each without its strongest
    day (the day with the highest median)."""
    area = np.sort(excess)
    step = settings.quantum.get(pollutant, 0.0)
    if settings.magnitude_test == "signed_rank":
        _, p_median, _ = signed_rank_greater(
            label, excess - margin, k, settings.exact_wilcoxon_max_n
        )
    else:
        p_median = _median_p(median_excess, n_eff, sigma, margin, area, step, settings)
    p_mean = (
        _winsorised_mean_p(label, excess, k, n_eff, sigma, margin, settings)
        if settings.mean_test
        else None
    )
    few = days.count < settings.few_days
    if few.any():
        rest = days.without_strongest(label, k)
        rest_n = group_count(label[rest], k) / days.deff
        rest_median = group_median(label[rest], excess[rest], k)
        p_rest = np.where(
            rest_n > 0, _median_p(rest_median, rest_n, sigma, margin, area, step, settings), 1.0
        )
        p_median = np.where(few, np.fmax(p_median, p_rest), p_median)
        if p_mean is not None:
            p_mean_rest = _winsorised_mean_p(
                label[rest], excess[rest], k, rest_n, sigma, margin, settings, excess
            )
            p_mean = np.where(few, np.fmax(p_mean, np.where(rest_n > 0, p_mean_rest, 1.0)), p_mean)
    if p_mean is None:
        return p_median, p_median, None
    return np.fmin(1.0, 2.0 * np.fmin(p_median, p_mean)), p_median, p_mean


def _winsorised_mean_p(
    label: IntArray,
    excess: FloatArray,
    k: int,
    n_eff: FloatArray,
    sigma: float,
    margin: float,
    settings: AnalysisSettings,
    area: FloatArray | None = None,
) -> FloatArray:
    """One-sided p-value that each cell's mean pass excess, every excess clipped to
    winsor_sigmas x sigma of the area's median, is above the area's clipped mean + margin, with the area's clipped
    spread as the scale: a source that is on in fewer than half of the passes moves a cell's
    mean but hardly its median; the clipping keeps one plume from making a cell."""
    whole = excess if area is None else area
    bound = settings.winsor_sigmas * sigma
    if len(whole) < 2 or bound <= 0:
        return np.ones(k)
    middle = float(np.median(whole))
    clipped_area = np.clip(whole, middle - bound, middle + bound)
    centre = float(clipped_area.mean())
    spread = float(clipped_area.std(ddof=1))
    if spread <= 0:
        return np.ones(k)
    clipped = np.clip(excess, middle - bound, middle + bound)
    passes = group_count(label, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = group_sum(label, clipped, k) / passes
        z = (mean - centre - margin) / (spread / np.sqrt(n_eff))
    z = np.where(passes > 0, z, -np.inf)
    return np.asarray(1.0 - ndtr(z), dtype=np.float64)


def _median_p(
    median_excess: FloatArray,
    n_eff: FloatArray,
    sigma: float,
    margin: float,
    area: FloatArray,
    step: float,
    settings: AnalysisSettings,
) -> FloatArray:
    """The magnitude test's p-value: the median's z against the margin and, within
    `lattice_steps` register steps of the area's median, the exact test against the area's own
    distribution of excesses, whichever is larger."""
    _, p = median_z_greater(median_excess - margin, n_eff, sigma)
    if step > 0 and len(area):
        near = median_excess <= settings.lattice_steps * step
        if near.any():
            exact = median_lattice_greater(median_excess[near], n_eff[near], area)
            p[near] = np.fmax(p[near], exact)
    return p


@dataclass(frozen=True, slots=True)
class _Days:
    """The cell's passes grouped by local day: counts, design effect and on/off days."""

    group: IntArray  # (cell, day) group of each pass
    cell_of_group: IntArray
    day_median: FloatArray  # median excess of each group
    count: IntArray  # distinct days per cell
    deff: FloatArray  # per cell
    rho: float
    on: IntArray
    off: IntArray
    off_excess: FloatArray  # median excess of the passes of each cell's off days
    on_excess: FloatArray  # ... and of its on days
    passes_on: IntArray  # passes on each cell's on days
    passes_off: IntArray  # ... and on its off days
    on_spread: FloatArray  # robust spread (1.4826 x MAD) of the passes of each cell's on days
    rate: float  # share of groups that are on
    group_passes: IntArray  # passes of each (cell, day) group

    @classmethod
    def of(
        cls,
        label: IntArray,
        day: IntArray,
        excess: FloatArray,
        k: int,
        delta: float,
        settings: AnalysisSettings,
        cell_median: FloatArray | None = None,
    ) -> _Days:
        low = int(day.min()) if len(day) else 0
        span = int(day.max()) - low + 1 if len(day) else 1
        keys, group = dense_labels(label * span + (day - low))
        g = len(keys)
        cell_of_group = (np.asarray(keys, dtype=np.int64) // span).astype(np.int64)
        day_median = group_median(group, excess, g)
        rho = (
            within_day_correlation(label, group, excess, k, g, cell_median)
            if settings.design_effect
            else 0.0
        )
        deff = design_effect(label, group, rho, k, g)
        is_on = day_median > delta
        is_off = day_median < settings.episode_off_factor * delta
        off_pass = is_off[group]
        on_pass = is_on[group]
        off_excess = group_median(label[off_pass], excess[off_pass], k)
        on_excess = group_median(label[on_pass], excess[on_pass], k)
        on_label = label[on_pass]
        on_spread = MAD_TO_SIGMA * group_median(
            on_label, np.abs(excess[on_pass] - on_excess[on_label]), k
        )
        return cls(
            group=group,
            cell_of_group=cell_of_group,
            day_median=day_median,
            count=group_count(cell_of_group, k),
            deff=deff,
            rho=rho,
            on=group_count(cell_of_group[is_on], k),
            off=group_count(cell_of_group[is_off], k),
            off_excess=off_excess,
            on_excess=on_excess,
            passes_on=group_count(label[on_pass], k),
            on_spread=on_spread,
            passes_off=group_count(label[off_pass], k),
            rate=float(is_on.mean()) if g else 0.0,
            group_passes=np.bincount(group, minlength=g).astype(np.int64),
        )

    def _p_heterogeneous(self, spread: FloatArray) -> FloatArray:
        """Per cell: the p-value that its day medians vary more than those of a steady cell
        (Cochran's Q against chi-square with days - 1 degrees of freedom). A day median of n
        passes varies by the passes' noise and by the day's share of the background error:
        (pi / 2) s^2 (rho + (1 - rho) / n), rho the area's within-day correlation."""
        cell = self.cell_of_group
        k = len(spread)
        rho = min(max(self.rho, 0.0), 1.0)
        n = np.maximum(self.group_passes, 1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = MEDIAN_SE_FACTOR**2 * spread[cell] ** 2 * (rho + (1.0 - rho) / n)
            w = np.where(var > 0, 1.0 / var, 0.0)
            mean = np.bincount(cell, weights=w * self.day_median, minlength=k) / np.bincount(
                cell, weights=w, minlength=k
            )
            q = np.bincount(cell, weights=w * (self.day_median - mean[cell]) ** 2, minlength=k)
            p = chi2.sf(q, self.count - 1)
        return np.where((self.count > 1) & np.isfinite(p), p, 1.0)

    def q_off(self, sigma: float, settings: AnalysisSettings) -> FloatArray:
        """Per cell with on and off days: the one-sided p-value that its off days' passes lie
        below its on days' by more than the noise of their medians explains, Bonferroni over
        its days (the off days were picked as its lowest), BH-adjusted over the cells with on
        and off days (a steady source has many cells that might show a chance lull). NaN for
        the other cells.

        The spread is the larger of the area's and that of the cell's own on-day passes: at a
        source, where in the cell a pass was and the plume's turns spread passes more than noise
        does, and an off day must be off beyond that, not just beyond sensor noise (a steady
        source's lone pass on a day can catch the cell's far end)."""
        s = np.fmax(sigma, np.nan_to_num(self.on_spread))
        with np.errstate(invalid="ignore", divide="ignore"):
            se = (
                MEDIAN_SE_FACTOR
                * s
                * np.sqrt(self.deff / self.passes_on + self.deff / self.passes_off)
            )
            z = (self.on_excess - self.off_excess) / se
        p = np.minimum(1.0, self.count * (1.0 - ndtr(z)))
        # Days picked as on or off by their own medians always differ; that they differ by
        # more than days of a steady cell do is the heterogeneity of the day medians.
        p = np.fmax(p, self._p_heterogeneous(s))
        # 'Off' rests on several days (one unusual day makes no pattern), or on one day with
        # as many passes as a time stratum's finding needs.
        pattern = (
            (self.on >= settings.episodic_min_days)
            & (
                (self.off >= settings.episodic_min_days)
                | ((self.off >= 1) & (self.passes_off >= settings.stratum_min_passes))
            )
            & np.isfinite(z)
        )
        return benjamini_hochberg(np.where(pattern, p, np.nan))

    def without_strongest(self, label: IntArray, k: int) -> BoolArray:
        """Which passes remain when each cell's day of highest median excess is left out."""
        strongest = _argmax_per_cell(self.cell_of_group, self.day_median, k)
        return np.asarray(self.group != strongest[label], dtype=bool)

    def share_without_strongest(
        self, label: IntArray, is_over: BoolArray, k: int
    ) -> tuple[FloatArray, FloatArray]:
        """Passes above the share threshold, and passes, without each cell's day of most such
        passes."""
        g = len(self.cell_of_group)
        over_g = group_sum(self.group, is_over.astype(np.float64), g)
        n_g = group_count(self.group, g).astype(np.float64)
        strongest = _argmax_per_cell(self.cell_of_group, over_g, k)
        over = group_sum(label, is_over.astype(np.float64), k)
        n = group_count(label, k).astype(np.float64)
        has = strongest >= 0
        over[has] -= over_g[strongest[has]]
        n[has] -= n_g[strongest[has]]
        return over, n


def _argmax_per_cell(cell_of_group: IntArray, score: FloatArray, k: int) -> IntArray:
    """Per cell, the group with the highest score (-1 for a cell without groups)."""
    order = np.lexsort((score, cell_of_group))
    cells = cell_of_group[order]
    last = np.ones(len(order), dtype=bool)  # the last group of each cell's run: its highest
    last[:-1] = cells[1:] != cells[:-1]
    out = np.full(k, -1, dtype=np.int64)
    out[cells[last]] = order[last]
    return out


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
