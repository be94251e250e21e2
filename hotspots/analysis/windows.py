"""Time-of-day windows found from the data: a scan over windows of a few widths per found cell.

The fixed strata (meals, lunch, dinner, night) catch a source that keeps their hours. A workshop
on 8:30-17:30, a restaurant that opens an hour late, a site on 13:00-17:00 overlap them only in
part: the part of their on-hours outside the stratum makes the passes 'outside' not ordinary,
and the stratum's own passes are fewer than the source's on-passes. So, for each cell that some
test already found and no stratum explains, every window of `WIDTHS_MIN` starting on a
`STEP_MIN` grid of local time is tried as the inside of a contrast: the median excess of the
cell's passes in it against the median of its passes outside, with the standard error of the
pooled spread and the cell's design effect, as for the fixed strata.

Trying many windows is paid for with Bonferroni over the distinct splits of the cell's passes
the windows make (windows holding the same passes are one test). The number of splits depends
only on when the passes were made, not on their values, so the correction holds its level. A
window counts when its contrast survives that correction at `fdr_q`, both sides hold a time
stratum's passes (`stratum_min_passes`) on at least `candidate_min_days` days, and the passes
outside are ordinary (median below episode_off_factor x delta).

A patrol that meets a cell at the same hour every day leaves no outside to compare with: no
window can be found there, whatever the source does, and none is claimed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from hotspots.analysis.grouping import FloatArray, IntArray
from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.significance import MEDIAN_SE_FACTOR

__all__ = ["STEP_MIN", "WIDTHS_MIN", "ScannedWindows", "grid", "scan_windows"]

# Windows start every half hour and last 1 to 16 hours: a meal, a shift, a working day.
STEP_MIN = 30
WIDTHS_MIN = (60, 120, 180, 240, 360, 540, 720, 960)


def grid() -> tuple[IntArray, IntArray]:
    """Start and width (local minutes) of every window tried, narrowest first."""
    starts = np.arange(0, 1440, STEP_MIN, dtype=np.int64)
    start = np.tile(starts, len(WIDTHS_MIN))
    width = np.repeat(np.asarray(WIDTHS_MIN, dtype=np.int64), len(starts))
    return start, width


@dataclass(frozen=True, slots=True)
class ScannedWindows:
    """Per cell: the window found ([start, end) local minutes, end may wrap past midnight;
    -1 where none), medians inside and outside, their passes, and the corrected p-value."""

    start: IntArray
    end: IntArray
    inside: FloatArray
    outside: FloatArray
    passes_inside: IntArray
    passes_outside: IntArray
    p: FloatArray


def scan_windows(
    cell: IntArray,
    minute: IntArray,
    day: IntArray,
    excess: FloatArray,
    candidates: IntArray,
    deff: FloatArray,
    sigma: float,
    delta: float,
    settings: AnalysisSettings,
    k: int,
) -> ScannedWindows:
    """The best window of each candidate cell (positions 0..k-1) over the given passes (each
    with its cell position, local minute and day, and excess; no NaN)."""
    start = np.full(k, -1, dtype=np.int64)
    end = np.full(k, -1, dtype=np.int64)
    inside = np.full(k, np.nan)
    outside = np.full(k, np.nan)
    n_in_best = np.zeros(k, dtype=np.int64)
    n_out_best = np.zeros(k, dtype=np.int64)
    p_best = np.full(k, np.inf)
    found = ScannedWindows(start, end, inside, outside, n_in_best, n_out_best, p_best)
    if len(candidates) == 0 or sigma <= 0:
        return found
    g_start, g_width = grid()
    order = np.argsort(cell, kind="stable")
    sorted_cell = cell[order]
    least = settings.stratum_min_passes
    for c in candidates.tolist():
        lo, hi = np.searchsorted(sorted_cell, [c, c + 1])
        if hi - lo < 2 * least:
            continue
        rows = order[lo:hi]
        t, x, d = minute[rows], excess[rows], day[rows]
        is_in = ((t[None, :] - g_start[:, None]) % 1440) < g_width[:, None]
        # Windows holding the same passes are one test: keep the first (narrowest) of each.
        _, first = np.unique(np.packbits(is_in, axis=1), axis=0, return_index=True)
        first = np.sort(first)
        is_in = is_in[first]
        n_in = is_in.sum(axis=1)
        n_out = len(rows) - n_in
        # Only splits with enough passes on both sides are tested; which ones those are
        # depends on the times alone.
        usable = (n_in >= least) & (n_out >= least)
        splits = int(usable.sum())
        if not splits:
            continue
        is_in, n_i, n_o, window = is_in[usable], n_in[usable], n_out[usable], first[usable]
        values = np.broadcast_to(x, is_in.shape)
        med_in = np.nanmedian(np.where(is_in, values, np.nan), axis=1)
        med_out = np.nanmedian(np.where(is_in, np.nan, values), axis=1)
        se = MEDIAN_SE_FACTOR * sigma * np.sqrt(deff[c] / n_i + deff[c] / n_o)
        p = np.minimum(1.0, splits * (1.0 - ndtr((med_in - med_out) / se)))
        ok = (
            (med_out < settings.episode_off_factor * delta)
            & (p <= settings.fdr_q)
            & (_days(is_in, d) >= settings.candidate_min_days)
            & (_days(~is_in, d) >= settings.candidate_min_days)
        )
        if not ok.any():
            continue
        j = int(np.flatnonzero(ok)[np.argmin(p[ok])])  # the strongest contrast
        w = int(window[j])
        start[c] = int(g_start[w])
        end[c] = int((g_start[w] + g_width[w]) % 1440)
        inside[c], outside[c] = float(med_in[j]), float(med_out[j])
        n_in_best[c], n_out_best[c] = int(n_i[j]), int(n_o[j])
        p_best[c] = float(p[j])
    return found


def _days(mask: npt.NDArray[np.bool_], day: IntArray) -> IntArray:
    """Distinct days among the passes each row of `mask` selects."""
    codes = day - int(day.min())
    present = np.zeros((len(mask), int(codes.max()) + 1), dtype=bool)
    r, col = np.nonzero(mask)
    present[r, codes[col]] = True
    return np.asarray(present.sum(axis=1), dtype=np.int64)
