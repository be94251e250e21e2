"""Background per trip: a rolling low percentile of the trip's own values, smoothed.

Regional levels drift by tens of ug/m3 within hours (hotspots.md, "Background drift"), so a pass
is only ever compared with the background of its own trip at its own time. The background at a
time t is the `background_quantile` (10th percentile) of the trip's values within a centred
window of `background_window_s` (20 min), evaluated on a grid every `background_step_s` and
smoothed with a running median over `background_smooth_s` (10 min), then interpolated linearly
to each pass's midpoint. Van Poppel et al. and Brantley et al. found such a time-series
background close to a location-based one.

A trip is one vehicle's run of passes with no gap longer than `trip_gap_s`.
"""

from __future__ import annotations

import numpy as np

from hotspots.analysis.grouping import FloatArray, IntArray, run_starts
from hotspots.analysis.settings import AnalysisSettings

# Rows of a window matrix are gathered in chunks of at most this many cells (memory bound).
_CHUNK_CELLS = 4_000_000
# Per trip, times are laid on one axis as trip * _TRIP_SPAN + (t - trip start): no trip lasts
# this long (115 days), so windows never reach into another trip.
_TRIP_SPAN = 1.0e7


def trips(vehicle: IntArray, times: FloatArray, trip_gap_s: float) -> IntArray:
    """A trip number per element: a vehicle's run with no gap over trip_gap_s between elements."""
    n = len(times)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((times, vehicle))
    v = vehicle[order]
    t = times[order]
    breaks = np.ones(n, dtype=bool)
    breaks[1:] = (v[1:] != v[:-1]) | (np.diff(t) > trip_gap_s)
    out = np.empty(n, dtype=np.int64)
    out[order] = run_starts(breaks)
    return out


def rolling_quantile(
    keys: FloatArray, values: FloatArray, centres: FloatArray, half_window: float, q: float
) -> FloatArray:
    """Quantile q of the values whose key lies within half_window of each centre.

    keys must be sorted ascending; NaN values are ignored; a centre with no values gets NaN.
    Linear interpolation between order statistics, as numpy.quantile.
    """
    keep = ~np.isnan(values)
    keys = keys[keep]
    values = values[keep]
    left = np.searchsorted(keys, centres - half_window, side="left")
    right = np.searchsorted(keys, centres + half_window, side="right")
    counts = right - left
    out = np.full(len(centres), np.nan)
    if len(centres) == 0 or counts.max(initial=0) == 0:
        return out
    width = int(counts.max())
    rows = max(1, _CHUNK_CELLS // width)
    padded = np.concatenate((values, [np.inf]))
    span = np.arange(width)
    for lo in range(0, len(centres), rows):
        hi = min(lo + rows, len(centres))
        c = counts[lo:hi]
        index = left[lo:hi, None] + span[None, :]
        index = np.where(span[None, :] < c[:, None], index, len(values))
        window = np.sort(padded[index], axis=1)
        has = c > 0
        pos = (c[has] - 1) * q
        low = np.floor(pos).astype(np.int64)
        high = np.minimum(low + 1, c[has] - 1)
        rows_idx = np.flatnonzero(has)
        lo_v = window[rows_idx, low]
        hi_v = window[rows_idx, high]
        part = out[lo:hi]
        part[has] = lo_v + (hi_v - lo_v) * (pos - low)
    return out


def background(
    trip: IntArray, times: FloatArray, values: FloatArray, settings: AnalysisSettings
) -> FloatArray:
    """The background at each element's time, from the other values of its trip."""
    n = len(times)
    out = np.full(n, np.nan)
    usable = ~np.isnan(values)
    if not usable.any():
        return out
    k = int(trip.max()) + 1
    t_first = np.full(k, np.inf)
    t_last = np.full(k, -np.inf)
    np.minimum.at(t_first, trip[usable], times[usable])
    np.maximum.at(t_last, trip[usable], times[usable])
    present = np.isfinite(t_first)
    step = settings.background_step_s
    steps = np.zeros(k, dtype=np.int64)
    steps[present] = np.ceil((t_last[present] - t_first[present]) / step).astype(np.int64) + 1
    grid_trip = np.repeat(np.arange(k), steps)
    offsets = np.arange(len(grid_trip)) - np.repeat(np.cumsum(steps) - steps, steps)
    grid_key = grid_trip * _TRIP_SPAN + offsets * step
    key = trip * _TRIP_SPAN + (times - np.where(present, t_first, 0.0)[trip])
    order = np.argsort(key, kind="stable")
    low = rolling_quantile(
        key[order],
        values[order],
        grid_key,
        settings.background_window_s / 2.0,
        settings.background_quantile,
    )
    has = ~np.isnan(low)
    smooth = rolling_quantile(
        grid_key[has], low[has], grid_key[has], settings.background_smooth_s / 2.0, 0.5
    )
    out[usable] = np.interp(key[usable], grid_key[has], smooth)
    return out
