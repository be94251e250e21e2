from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hotspots.analysis.background import background, rolling_quantile, trips
from hotspots.analysis.settings import AnalysisSettings


def test_trips_split_on_vehicle_and_gap() -> None:
    vehicle = np.array([0, 0, 0, 1, 1, 0], dtype=np.int64)
    times = np.array([0.0, 100.0, 5000.0, 0.0, 50.0, 5100.0])
    assert list(trips(vehicle, times, 1800.0)) == [0, 0, 1, 2, 2, 1]


def test_rolling_quantile_by_hand() -> None:
    keys = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    values = np.array([5.0, 1.0, 4.0, np.nan, 2.0])
    centres = np.array([0.0, 20.0, 100.0])
    out = rolling_quantile(keys, values, centres, 10.0, 0.5)
    # windows: {5, 1} -> 3; {1, 4, nan} -> 2.5; none -> nan
    np.testing.assert_array_equal(out, [3.0, 2.5, np.nan])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=50),
    st.floats(0.5, 30.0),
    st.floats(0.0, 1.0),
)
def test_rolling_quantile_matches_brute_force(values: list[float], half: float, q: float) -> None:
    keys = np.arange(0.0, 3.0 * len(values), 3.0)[: len(values)]
    v = np.array(values)
    centres = np.linspace(-5, keys[-1] + 5, 17)
    got = rolling_quantile(keys, v, centres, half, q)
    for c, g in zip(centres, got, strict=True):
        inside = v[np.abs(keys - c) <= half]
        if len(inside):
            assert np.isclose(g, np.quantile(inside, q))
        else:
            assert np.isnan(g)


def _trip(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(5, 30, n))
    values = 30 + 5 * np.sin(times / 3000) + rng.normal(0, 2, n)
    return np.zeros(n, dtype=np.int64), times, values


def test_constant_series_has_its_own_background() -> None:
    trip, times, _ = _trip(200, 1)
    out = background(trip, times, np.full(200, 42.0), AnalysisSettings())
    np.testing.assert_allclose(out, 42.0)


def test_background_is_a_low_value_that_follows_drift() -> None:
    rng = np.random.default_rng(2)
    times = np.arange(0.0, 4 * 3600, 15.0)
    drift = 20 + 10 * times / times[-1]
    values = drift + np.abs(rng.normal(0, 3, len(times)))
    values[::40] += 80  # plumes
    out = background(np.zeros(len(times), dtype=np.int64), times, values, AnalysisSettings())
    middle = slice(100, -100)
    assert np.all(np.abs(out[middle] - drift[middle]) < 2.0)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 1000), st.floats(-500, 500))
def test_background_shifts_with_the_values(seed: int, shift: float) -> None:
    trip, times, values = _trip(150, seed)
    s = AnalysisSettings()
    np.testing.assert_allclose(
        background(trip, times, values + shift, s),
        background(trip, times, values, s) + shift,
        atol=1e-9,
    )


def test_trips_do_not_share_background() -> None:
    times = np.concatenate((np.arange(0, 600, 10.0), np.arange(0, 600, 10.0)))
    trip = np.repeat([0, 1], 60).astype(np.int64)
    values = np.concatenate((np.full(60, 10.0), np.full(60, 50.0)))
    out = background(trip, times, values, AnalysisSettings())
    np.testing.assert_allclose(out[:60], 10.0)
    np.testing.assert_allclose(out[60:], 50.0)
