from __future__ import annotations

import numpy as np
import pytest

from hotspots.analysis.lag import (
    LagError,
    Profile,
    correct_lag,
    correct_series,
    estimate_lag,
    lag_from_peaks,
    shift_passes,
)
from hotspots.analysis.passes import ReadingSeries
from hotspots.analysis.settings import AnalysisSettings


def test_correct_lag_moves_values_back_in_time() -> None:
    times = np.arange(0.0, 100.0, 10.0)
    values = np.arange(10.0)
    out = correct_lag(times, values, 30.0)
    np.testing.assert_array_equal(out[:7], values[3:])
    assert np.isnan(out[7:]).all()
    half = correct_lag(times, values, 15.0)
    assert half[0] == 1.5


def test_correct_lag_does_not_bridge_gaps() -> None:
    times = np.array([0.0, 10, 20, 200, 210])
    values = np.array([1.0, 2, 3, 4, 5])
    out = correct_lag(times, values, 10.0)
    assert out[0] == 2.0
    assert np.isnan(out[2])  # 30 s lies in the gap


def test_lag_from_peaks() -> None:
    # 40 s at 5 m/s: each peak 200 m downstream, 400 m apart.
    assert lag_from_peaks(700.0, 300.0, 5.0) == 40.0
    with pytest.raises(LagError):
        lag_from_peaks(1.0, 2.0, 0.0)


def _drive(direction: int, delay: float, speed: float = 5.0) -> Profile:
    """A first-order-free sensor with pure delay past a Gaussian source at 500 m."""
    times = np.arange(0.0, 200.0, 2.0)
    start = 0.0 if direction > 0 else 1000.0
    positions = start + direction * speed * times
    breathed = start + direction * speed * (times - delay)
    values = 5.0 + 50.0 * np.exp(-(((breathed - 500.0) / 40.0) ** 2))
    return Profile(times=times, positions=positions, values=values)


def test_estimate_lag_from_opposite_passes() -> None:
    pairs = [(_drive(+1, 40.0), _drive(-1, 40.0))]
    estimate = estimate_lag(pairs, np.arange(0.0, 121.0, 2.0))
    assert estimate.lag_s == pytest.approx(40.0, abs=2.0)
    assert estimate.score > 0.95


def test_estimate_lag_needs_overlapping_pairs() -> None:
    with pytest.raises(LagError):
        estimate_lag([], np.arange(3.0))


def test_correct_series_uses_each_channels_lag() -> None:
    times = np.arange(0.0, 60.0, 10.0)
    series = ReadingSeries(
        vehicle="car-01",
        times=times,
        cells=[None] * 6,
        values={"pm25": np.arange(6.0), "noise": np.arange(6.0) + 50},
        flags=[()] * 6,
    )
    out = correct_series(series, AnalysisSettings(lags_s={"pm25": 20.0, "noise": 0.0}))
    np.testing.assert_array_equal(out.values["pm25"][:4], [2.0, 3.0, 4.0, 5.0])
    assert np.isnan(out.values["pm25"][4:]).all()
    np.testing.assert_array_equal(out.values["noise"], series.values["noise"])
    assert out.times is series.times


def test_shift_passes_moves_each_vehicles_pass_values_back() -> None:
    # Vehicle 0: passes at 0, 20, 40, 100 s; vehicle 1: passes at 10, 30 s (rows interleaved).
    vehicle = np.array([0, 1, 0, 1, 0, 0], dtype=np.int64)
    mid = np.array([0.0, 10.0, 20.0, 30.0, 40.0, 100.0])
    values = np.array([1.0, 50.0, 3.0, 70.0, 9.0, 4.0])
    out = shift_passes(vehicle, mid, values, 10.0, 30.0)
    # v0 at 0 -> its series at 10 s: halfway 1 -> 3 = 2; at 20 -> 30 s: 6; at 40 -> 50 s: the
    # next pass is 60 s away from 40 (> 30): NaN; at 100 -> 110 s: past the end: NaN.
    # v1 at 10 -> 20 s: halfway 50 -> 70 = 60; at 30 -> 40 s: past its end: NaN.
    assert out[[0, 2]] == pytest.approx([2.0, 6.0])
    assert np.isnan(out[[4, 5]]).all()
    assert out[1] == pytest.approx(60.0)
    assert np.isnan(out[3])
    assert shift_passes(vehicle, mid, values, 0.0, 30.0) == pytest.approx(values)
