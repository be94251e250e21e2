"""Labels of a cell: persistent, candidate or episodic, each with the reasons that made it.

hotspots.md, "Default method" step 7, with delta = max(2 x sensor noise, floor):
- persistent: confirmed (>= confirmed_min_passes passes on >= few_days days), the
  magnitude test significant after FDR, persistence f >= persistent_min_share, and a spatial
  signal: a significant Gi* hot cluster or a significant high-low outlier (local Moran's I);
- candidate: candidate eligibility (>= candidate_min_passes passes, or stratum_min_passes in a
  time stratum, on >= candidate_min_days days) and the magnitude test or the share test significant after FDR, but not (yet)
  persistent;
- episodic: a source that is on now and then (fumes, odor, a site that works some days), by any
  of three kinds of evidence, each on an eligible cell:
  - days: on (median excess of the day's passes above delta) on at least episodic_min_days days,
    significantly more (binomial test, FDR) than the area's rate of such days, and off (below
    episode_off_factor x delta) on others: episodic_min_days of them, or one holding
    stratum_min_passes passes; the off days' passes at least delta below its on days' and
    significantly so beyond the spread of the area and of its own on-day passes (Bonferroni
    over its days, BH over the cells with on and off days: a steady source near delta is above
    and below it by chance);
  - a time window: significant (magnitude or share test) within a time stratum (meals, lunch,
    dinner, night), or found anywhere and on in a window scanned from the data
    (hotspots.analysis.windows), while its passes outside that window are ordinary: their median
    excess is below episode_off_factor x delta and significantly below the window's (`Window`);
  - spikes: f < episodic_max_share, but at least episodic_min_spikes passes with an excess above
    episodic_factor x delta, significantly more (binomial test, FDR) than the area's own rate of
    such passes (only where the cell is not a candidate).
  Day and window evidence take precedence over persistent and candidate: such a place is there
  only at times, and an officer needs to know when.
A cell that is none of these has no label and is not reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from hotspots.analysis.grouping import BoolArray, FloatArray, IntArray
from hotspots.analysis.settings import AnalysisSettings

if TYPE_CHECKING:
    # Only a type here: the stored results read `Label` in the web process, which must not load
    # the statistics (scipy) that cellstats runs.
    from hotspots.analysis.cellstats import CellTable


class Label(StrEnum):
    PERSISTENT = "persistent"
    CANDIDATE = "candidate"
    EPISODIC = "episodic"


# Strength order, for a cluster that holds cells of several labels.
RANK: dict[Label, int] = {Label.PERSISTENT: 3, Label.CANDIDATE: 2, Label.EPISODIC: 1}


@dataclass(frozen=True, slots=True)
class Reason:
    """One condition a label rests on: a stable code and the figures behind it; `summary` says
    it for an officer, in Chinese ("zh") and English ("en"), with the main figure."""

    code: str
    detail: str
    summary: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evidence:
    """FDR-adjusted test results per row of a CellTable (NaN where not tested)."""

    magnitude_q: FloatArray
    gi_z: FloatArray
    gi_q: FloatArray
    moran_i: FloatArray
    high_low_q: FloatArray
    episodic_q: FloatArray
    share_q: FloatArray | None = None  # the share test (cellstats), where it ran
    days_q: FloatArray | None = None  # the days-on test (cellstats), BH-adjusted
    window: Window | None = None  # time-of-day evidence, where it was looked for


@dataclass(frozen=True, slots=True)
class Window:
    """Per row of a CellTable: the time stratum a cell is on in and ordinary outside of.

    stratum[row] is an index into settings.strata (-1: none); inside / outside are the median
    excesses (over the all-day reference) of the cell's passes in and out of that window, with
    their numbers of passes, and p the one-sided p-value that inside exceeds outside.
    """

    stratum: IntArray
    inside: FloatArray
    outside: FloatArray
    passes_inside: IntArray
    passes_outside: IntArray
    p: FloatArray
    # a window found from the data (hotspots.analysis.windows) where stratum is -1: [start, end)
    # local minutes, -1 where none
    start: IntArray | None = None
    end: IntArray | None = None


@dataclass(frozen=True, slots=True)
class LabelMasks:
    persistent: BoolArray
    candidate: BoolArray
    episodic: BoolArray
    intermittent: BoolArray | None = None  # episodic by day or time-window evidence

    def label(self, row: int) -> Label | None:
        if self.persistent[row]:
            return Label.PERSISTENT
        if self.candidate[row]:
            return Label.CANDIDATE
        if self.episodic[row]:
            return Label.EPISODIC
        return None

    def any(self) -> BoolArray:
        return self.persistent | self.candidate | self.episodic


def min_passes(table: CellTable, settings: AnalysisSettings) -> int:
    """Passes a candidate needs: candidate_min_passes all day, stratum_min_passes in a time
    stratum (which gathers only the passes of its hours)."""
    all_day = table.stratum == settings.strata[0].name
    return settings.candidate_min_passes if all_day else settings.stratum_min_passes


def eligible(table: CellTable, settings: AnalysisSettings) -> BoolArray:
    return (table.passes >= min_passes(table, settings)) & (
        table.days >= settings.candidate_min_days
    )


def confirmed(table: CellTable, settings: AnalysisSettings) -> BoolArray:
    """Eligible, with confirmed_min_passes passes on at least few_days days: a place seen on
    fewer days can be a candidate, not persistent."""
    return (
        eligible(table, settings)
        & (table.passes >= settings.confirmed_min_passes)
        & (table.days >= settings.few_days)
    )


def _significant(q: FloatArray, level: float) -> BoolArray:
    return np.nan_to_num(q, nan=np.inf) <= level


def label_masks(table: CellTable, tests: Evidence, settings: AnalysisSettings) -> LabelMasks:
    q = settings.fdr_q
    magnitude = _significant(tests.magnitude_q, q)
    share = (
        _significant(tests.share_q, q)
        if tests.share_q is not None
        else np.zeros(len(table), dtype=bool)
    )
    spatial = _significant(tests.gi_q, q) | _significant(tests.high_low_q, q)
    ok = eligible(table, settings)
    # A place that is there only on some days or at some hours is episodic, however strong.
    intermittent = ok & (on_days(table, tests, settings) | ((magnitude | share) & in_window(tests)))
    persistent = (
        confirmed(table, settings)
        & magnitude
        & (table.persistence >= settings.persistent_min_share)
        & spatial
        & ~intermittent
    )
    candidate = ok & (magnitude | share) & ~persistent & ~intermittent
    by_spikes = (
        ok
        & ~persistent
        & ~candidate
        & ~intermittent
        & (table.persistence < settings.episodic_max_share)
        & (table.spikes >= settings.episodic_min_spikes)
        & _significant(tests.episodic_q, q)
    )
    episodic = intermittent | by_spikes
    return LabelMasks(
        persistent=persistent, candidate=candidate, episodic=episodic, intermittent=intermittent
    )


def on_days(table: CellTable, tests: Evidence, settings: AnalysisSettings) -> BoolArray:
    """Cells on some days and off on others, with more on days than the area's rate explains."""
    n = len(table)
    if tests.days_q is None or table.days_on is None or table.days_off is None:
        return np.zeros(n, dtype=bool)
    off = table.off_excess if table.off_excess is not None else np.full(n, np.nan)
    on = table.on_excess if table.on_excess is not None else np.full(n, np.nan)
    off = np.nan_to_num(off, nan=np.inf)
    return (
        _significant(tests.days_q, settings.fdr_q)
        & (table.days_on >= settings.episodic_min_days)
        & (table.days_off >= 1)
        & (off < settings.episode_off_factor * table.delta)
        # A steady source near delta has days either side of it by chance; a source that
        # stops drops by more than delta from its on days, and by more than noise explains.
        & (np.nan_to_num(on, nan=-np.inf) - off >= table.delta)
        & _significant(_or_nan(table.q_off, n), settings.fdr_q)
    )


def _or_nan(values: FloatArray | None, n: int) -> FloatArray:
    return values if values is not None else np.full(n, np.nan)


def in_window(tests: Evidence) -> BoolArray:
    """Cells with time-of-day evidence: on in a time stratum, ordinary outside it."""
    if tests.window is None:
        return np.zeros(len(tests.magnitude_q), dtype=bool)
    found = tests.window.stratum >= 0
    if tests.window.start is not None:
        found = found | (tests.window.start >= 0)
    return np.asarray(found, dtype=bool)


def _magnitude_p(table: CellTable, row: int, settings: AnalysisSettings) -> str:
    if table.p_mean is None or table.p_median is None:
        return f"{settings.magnitude_test} p = {table.p_magnitude[row]:.2g}"
    return (
        f"p = {table.p_magnitude[row]:.2g} (twice the smaller of {settings.magnitude_test} "
        f"p = {table.p_median[row]:.2g} and the mean clipped at "
        f"{settings.winsor_sigmas:g} sigma p = {table.p_mean[row]:.2g})"
    )


def reasons(
    table: CellTable, tests: Evidence, row: int, label: Label, settings: AnalysisSettings
) -> tuple[Reason, ...]:
    """The conditions that made `label` for one cell, with their figures."""
    out = [
        Reason(
            "passes",
            f"{table.passes[row]} passes on {table.days[row]} days by {table.vehicles[row]} "
            f"vehicles (candidate needs {min_passes(table, settings)} on "
            f"{settings.candidate_min_days} days, confirmed {settings.confirmed_min_passes})",
            _say(
                f"{table.passes[row]} 次经过，{table.days[row]} 天，{table.vehicles[row]} 辆车",
                f"{table.passes[row]} passes on {table.days[row]} days by "
                f"{table.vehicles[row]} vehicles",
            ),
        )
    ]
    excess = f"median excess {table.median_excess[row]:.3g} over the area reference " + (
        f"{table.reference:.3g}"
    )
    magnitude = _significant(tests.magnitude_q[row : row + 1], settings.fdr_q)[0]
    if label is Label.PERSISTENT or (label is Label.CANDIDATE and magnitude):
        out.append(
            Reason(
                "magnitude",
                f"{excess}; {_magnitude_p(table, row, settings)} that it exceeds "
                f"{table.margin:.3g}, BH-adjusted "
                f"{tests.magnitude_q[row]:.2g} <= q = {settings.fdr_q}",
                _say(
                    f"中位值高出周边 {table.median_excess[row]:.3g}，统计显著",
                    f"median {table.median_excess[row]:.3g} above its surroundings, significant",
                ),
            )
        )
    share_q = float("nan") if tests.share_q is None else float(tests.share_q[row])
    if label is Label.CANDIDATE and share_q <= settings.fdr_q and table.p_share is not None:
        out.append(
            Reason(
                "share",
                f"passes above the area's {settings.share_quantile:.0%} quantile of excess + "
                f"margin ({table.share_threshold:.3g}): binomial p = {table.p_share[row]:.2g} "
                f"against {1 - settings.share_quantile:.0%}, BH-adjusted {share_q:.2g} <= "
                f"q = {settings.fdr_q}",
                _say(
                    "常居区域最高四分之一，统计显著", "often in the area's top quarter, significant"
                ),
            )
        )
    if label is Label.PERSISTENT:
        out.append(
            Reason(
                "persistence",
                f"{table.persistence[row]:.0%} of passes above delta = {table.delta:.3g} "
                f"(>= {settings.persistent_min_share:.0%})",
                _say(
                    f"{table.persistence[row]:.0%} 的经过偏高",
                    f"raised on {table.persistence[row]:.0%} of passes",
                ),
            )
        )
        if _significant(tests.gi_q[row : row + 1], settings.fdr_q)[0]:
            out.append(
                Reason(
                    "gi_star",
                    f"Getis-Ord Gi* z = {tests.gi_z[row]:.2f}, BH-adjusted p = "
                    f"{tests.gi_q[row]:.2g}: part of a hot cluster",
                    _say("周边单元同样偏高（热点簇）", "part of a cluster of raised cells"),
                )
            )
        if _significant(tests.high_low_q[row : row + 1], settings.fdr_q)[0]:
            out.append(
                Reason(
                    "high_low_outlier",
                    f"local Moran's I = {tests.moran_i[row]:.2f}, high among low neighbours, "
                    f"BH-adjusted p = {tests.high_low_q[row]:.2g}",
                    _say("周边偏低而此处偏高", "high among low neighbours"),
                )
            )
    if label is Label.EPISODIC:
        out.extend(_episode_reasons(table, tests, row, settings))
    return tuple(out)


def _episode_reasons(
    table: CellTable, tests: Evidence, row: int, settings: AnalysisSettings
) -> list[Reason]:
    out: list[Reason] = []
    one = slice(row, row + 1)
    off = settings.episode_off_factor
    days_on, days_off, p_days = table.days_on, table.days_off, table.p_days
    off_excess, days_q = table.off_excess, tests.days_q
    if (
        days_on is not None
        and days_off is not None
        and p_days is not None
        and off_excess is not None
        and days_q is not None
        and on_days(table, tests, settings)[row]
    ):
        out.append(
            Reason(
                "episode_days",
                f"on {days_on[row]} of {table.days[row]} days (median excess of the day's "
                f"passes above delta = {table.delta:.3g}), off on {days_off[row]} (below "
                f"{off:g} x delta; their passes' median excess {off_excess[row]:.3g}); the "
                f"area's rate of on days is {table.day_rate:.1%}: binomial p = "
                f"{p_days[row]:.2g}, BH-adjusted {days_q[row]:.2g} <= q = {settings.fdr_q}",
                _say(
                    f"{table.days[row]} 天中 {days_on[row]} 天出现",
                    f"on {days_on[row]} of {table.days[row]} days",
                ),
            )
        )
    window = tests.window
    start = window.start if window is not None else None
    end = window.end if window is not None else None
    if window is not None and start is not None and end is not None and start[row] >= 0:
        name = "scanned"  # a window found from the data (hotspots.analysis.windows)
        hours = f"{_clock(int(start[row]))}-{_clock(int(end[row]))}"
        tried = ", Bonferroni over the windows tried"
    elif window is not None and window.stratum[row] >= 0:
        stratum = settings.strata[int(window.stratum[row])]
        name = stratum.name
        hours = ", ".join(f"{_clock(a)}-{_clock(b)}" for a, b in stratum.windows())
        tried = ""
    else:
        window = None
    if window is not None:
        out.append(
            Reason(
                "episode_window",
                f"on in the {name} window ({hours} local): median excess "
                f"{window.inside[row]:.3g} over {window.passes_inside[row]} passes in it, "
                f"{window.outside[row]:.3g} over {window.passes_outside[row]} passes outside "
                f"(below {off:g} x delta = {off * table.delta:.3g}); one-sided p = "
                f"{window.p[row]:.2g} <= {settings.fdr_q} that it is higher in the window"
                f"{tried}",
                _say(f"{hours} 时段偏高", f"raised at {hours}"),
            )
        )
    spikes = (
        _significant(tests.episodic_q[one], settings.fdr_q)[0]
        and table.spikes[row] >= settings.episodic_min_spikes
        and table.persistence[row] < settings.episodic_max_share
    )
    if spikes or not out:
        out.append(
            Reason(
                "episodes",
                f"{table.spikes[row]} passes above {settings.episodic_factor:g} x delta = "
                f"{settings.episodic_factor * table.delta:.3g} while only "
                f"{table.persistence[row]:.0%} of passes exceed delta "
                f"(< {settings.episodic_max_share:.0%}); the area's rate of such passes is "
                f"{table.spike_rate:.1%}: binomial p = {table.p_episodic[row]:.2g}, "
                f"BH-adjusted {tests.episodic_q[row]:.2g} <= q = {settings.fdr_q}",
                _say(f"{table.spikes[row]} 次突发高值", f"{table.spikes[row]} bursts"),
            )
        )
    return out


def _say(zh: str, en: str) -> Mapping[str, str]:
    return MappingProxyType({"zh": zh, "en": en})


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
