"""Did a treatment work? A before/after test for a cell or hotspot and a treatment date.

The data are the per-pass enhancements E of the cell(s) (over each trip's own background, so a
cleaner regional air mass after the date does not pass for a local improvement). Passes before
the treatment time are compared with passes after it:
- effect: median(E after) - median(E before), in the pollutant's unit (negative: it went down);
- interval: percentile bootstrap of that difference, resampling passes on each side
  independently (`bootstrap_resamples`, `confidence`);
- p-value: two-sided Mann-Whitney U test (hotspots.analysis.mannwhitney: asymptotic, with tie
  and continuity corrections), which assumes passes are independent given the side: several
  passes of one drive through a cell are rare, since a pass ends when the vehicle leaves the cell;
- passes on each side; the test refuses to answer with fewer than `before_after_min_passes`
  passes on either side (`BeforeAfterError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import h3
import numpy as np

from edge.errors import EnvpatrolError
from hotspots.analysis.background import background, trips
from hotspots.analysis.enhancement import enhancement
from hotspots.analysis.grouping import FloatArray
from hotspots.analysis.mannwhitney import mann_whitney
from hotspots.analysis.passes import PassTable
from hotspots.analysis.settings import AnalysisSettings


class BeforeAfterError(EnvpatrolError, ValueError):
    """Too few passes on a side of the treatment to compare; the counts say how many."""

    def __init__(self, before: int, after: int, needed: int) -> None:
        super().__init__(
            "before/after test",
            f"{before} passes before and {after} after the treatment; {needed} needed on each side",
        )
        self.before = before
        self.after = after
        self.needed = needed


@dataclass(frozen=True, slots=True)
class BeforeAfter:
    effect: float  # median after - median before
    interval: tuple[float, float]
    confidence: float
    p_value: float  # two-sided Mann-Whitney U
    passes_before: int
    passes_after: int
    median_before: float
    median_after: float


def before_after_cells(
    table: PassTable,
    pollutant: str,
    cells: Sequence[str],
    treatment: datetime,
    settings: AnalysisSettings,
) -> BeforeAfter:
    """The before/after test for the passes through some cells (a cell or a hotspot's cells).

    Backgrounds come from each pass's whole trip, as in detection, not only from these cells.
    """
    if pollutant not in table.values:
        raise BeforeAfterError(0, 0, settings.before_after_min_passes)
    mid = table.mid
    values = table.values[pollutant]
    bg = background(trips(table.vehicle, mid, settings.trip_gap_s), mid, values, settings)
    wanted = np.isin(table.cell, [h3.str_to_int(c) for c in cells])
    return before_after(
        mid[wanted], enhancement(values, bg)[wanted], treatment.timestamp(), settings
    )


def before_after(
    times: FloatArray, enhancements: FloatArray, treatment: float, settings: AnalysisSettings
) -> BeforeAfter:
    """Compare passes before and after `treatment` (UTC epoch seconds)."""
    ok = ~np.isnan(enhancements)
    before = enhancements[ok & (times < treatment)]
    after = enhancements[ok & (times >= treatment)]
    needed = settings.before_after_min_passes
    if len(before) < needed or len(after) < needed:
        raise BeforeAfterError(len(before), len(after), needed)
    rng = np.random.default_rng(settings.seed)
    b = settings.bootstrap_resamples
    draws_before = np.median(before[rng.integers(0, len(before), (b, len(before)))], axis=1)
    draws_after = np.median(after[rng.integers(0, len(after), (b, len(after)))], axis=1)
    alpha = (1.0 - settings.confidence) / 2.0
    low, high = np.quantile(draws_after - draws_before, [alpha, 1.0 - alpha])
    if float(np.ptp(np.concatenate((before, after)))) == 0.0:
        p_value = 1.0  # every pass the same: no evidence of a change
    else:
        p_value = mann_whitney(after, before).p_value
    median_before = float(np.median(before))
    median_after = float(np.median(after))
    return BeforeAfter(
        effect=median_after - median_before,
        interval=(float(low), float(high)),
        confidence=settings.confidence,
        p_value=p_value,
        passes_before=len(before),
        passes_after=len(after),
        median_before=median_before,
        median_after=median_after,
    )
