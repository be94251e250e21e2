"""Sensor lag: a per-channel time shift, and its estimation from opposite-direction passes.

A channel with delay D reports at time t what the vehicle breathed at t - D: a point source
appears displaced downstream by speed x D (hotspots.md, "Sensor lag"). The correction moves each
value back in time: the corrected value of the reading at time t is the measured series at
t + D, linearly interpolated (`correct_lag`). Readings keep their time and position; only the
channel's values move, so cells and passes are built as before.

Estimating D: drive past a source in both directions. Downstream displacement has opposite signs,
so the two apparent peaks lie about 2 x v x D apart and the source sits at their midpoint
(`lag_from_peaks`). With whole profiles rather than two peak positions, `estimate_lag` tries each
candidate delay, places every value at the route position the vehicle had D seconds before it was
reported, and keeps the delay at which the forward and backward profiles agree best (highest
correlation on a common grid of route positions, summed over pairs of passes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge.errors import EnvpatrolError
from hotspots.analysis.grouping import FloatArray, IntArray
from hotspots.analysis.passes import ReadingSeries
from hotspots.analysis.settings import AnalysisSettings


class LagError(EnvpatrolError, ValueError):
    """Passes or a speed from which no lag can be estimated; `subject` names the input."""


def correct_lag(
    times: FloatArray, values: FloatArray, lag_s: float, max_gap_s: float = 20.0
) -> FloatArray:
    """The series moved back by lag_s: out[i] = values at times[i] + lag_s (interpolated).

    NaN where no measured value lies within max_gap_s of times[i] + lag_s on both sides or the
    shifted time falls outside the series.
    """
    out = np.full(len(times), np.nan)
    ok = ~np.isnan(values)
    if ok.sum() == 0:
        return out
    t = times[ok]
    v = values[ok]
    target = times + lag_s
    inside = (target >= t[0]) & (target <= t[-1])
    right = np.clip(np.searchsorted(t, target, side="left"), 0, len(t) - 1)
    left = np.clip(right - 1, 0, len(t) - 1)
    exact = t[right] == target
    near = exact | ((target - t[left] <= max_gap_s) & (t[right] - target <= max_gap_s))
    usable = inside & near
    out[usable] = np.interp(target[usable], t, v)
    return out


def shift_passes(
    vehicle: IntArray, mid: FloatArray, values: FloatArray, lag_s: float, max_gap_s: float
) -> FloatArray:
    """Pass values moved back by lag_s along each vehicle's own passes (`correct_lag` per vehicle).

    The ingest stores passes of uncorrected values: a pass's value is what the box reported
    while in the cell, i.e. what it breathed lag_s earlier. The value that belongs to the pass
    at time t is the vehicle's pass series at t + lag_s, interpolated between the passes on
    either side when both lie within max_gap_s of it; NaN otherwise.
    """
    if lag_s == 0:
        return values.copy()
    return shift_channels(vehicle, mid, {"": values}, {"": lag_s}, max_gap_s)[""]


def shift_channels(
    vehicle: IntArray,
    mid: FloatArray,
    values: Mapping[str, FloatArray],
    lags_s: Mapping[str, float],
    max_gap_s: float,
) -> dict[str, FloatArray]:
    """`shift_passes` for several channels of the same passes: the passes are put in vehicle
    and time order once for all channels. A channel without a lag (or a lag of 0) is left as
    it is."""
    shifted = {name: lags_s.get(name, 0.0) != 0 for name in values}
    out = {
        name: np.full(len(column), np.nan) if shifted[name] else column
        for name, column in values.items()
    }
    if not any(shifted.values()):
        return out
    order = np.lexsort((mid, vehicle))
    bounds = np.flatnonzero(np.diff(vehicle[order])) + 1
    for rows in np.split(order, bounds):
        times = mid[rows]
        for name, column in values.items():
            if shifted[name]:
                out[name][rows] = correct_lag(times, column[rows], lags_s[name], max_gap_s)
    return out


def correct_series(series: ReadingSeries, settings: AnalysisSettings) -> ReadingSeries:
    """A vehicle's readings with every channel moved back by its lag (settings.lags_s).

    Channels without a lag (or a lag of 0) are left as they are. Times, cells and flags do not
    change, so passes are then built from the corrected values as usual.
    """
    values = {
        name: (
            correct_lag(series.times, column, lag, settings.lag_max_gap_s)
            if (lag := settings.lags_s.get(name, 0.0)) > 0
            else column
        )
        for name, column in series.values.items()
    }
    return replace(series, values=values)


def lag_from_peaks(peak_forward_m: float, peak_backward_m: float, speed_mps: float) -> float:
    """Delay from the apparent peak positions of a source passed both ways at speed_mps."""
    if speed_mps <= 0:
        raise LagError("speed", f"must be positive, got {speed_mps}")
    return abs(peak_forward_m - peak_backward_m) / (2.0 * speed_mps)


@dataclass(frozen=True, slots=True)
class Profile:
    """One pass along the route: reading times, route positions (m) and one channel's values."""

    times: FloatArray
    positions: FloatArray
    values: FloatArray


@dataclass(frozen=True, slots=True)
class LagEstimate:
    lag_s: float
    score: float  # mean correlation of the pairs at that lag
    scores: FloatArray  # per candidate


def _placed(profile: Profile, lag_s: float, grid: FloatArray) -> FloatArray:
    """The profile's values on the route grid, each at the position it was breathed."""
    breathed = np.interp(profile.times - lag_s, profile.times, profile.positions)
    ok = ~np.isnan(profile.values)
    order = np.argsort(breathed[ok])
    x = breathed[ok][order]
    y = profile.values[ok][order]
    return np.interp(grid, x, y, left=np.nan, right=np.nan)


def estimate_lag(
    pairs: Sequence[tuple[Profile, Profile]],
    candidates_s: FloatArray,
    grid_step_m: float = 5.0,
) -> LagEstimate:
    """The delay that best aligns forward and backward passes over the same stretch."""
    if not pairs:
        raise LagError("pairs", "no opposite-direction passes to compare")
    scores = np.zeros(len(candidates_s))
    for forward, backward in pairs:
        low = max(forward.positions.min(), backward.positions.min())
        high = min(forward.positions.max(), backward.positions.max())
        if high - low < 2 * grid_step_m:
            raise LagError("pairs", "the passes of a pair do not overlap along the route")
        grid = np.arange(low, high, grid_step_m)
        for k, lag in enumerate(candidates_s):
            a = _placed(forward, float(lag), grid)
            b = _placed(backward, float(lag), grid)
            both = ~np.isnan(a) & ~np.isnan(b)
            if both.sum() < 3 or np.std(a[both]) == 0 or np.std(b[both]) == 0:
                continue
            scores[k] += float(np.corrcoef(a[both], b[both])[0, 1])
    scores /= len(pairs)
    best = int(np.argmax(scores))
    return LagEstimate(lag_s=float(candidates_s[best]), score=float(scores[best]), scores=scores)
