from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotspots.analysis.standards import REALTIME_BASIS, iaqi
from hotspots.severity import order_key, severity

IAQI_POLLUTANTS = sorted(REALTIME_BASIS)
levels = st.floats(0.0, 5000.0, allow_nan=False)


def test_by_hand() -> None:
    # PM2.5 120 ug/m3 is IAQI 158; without its 40 ug/m3 excess, 80 is IAQI 107.
    high, low = iaqi("pm25", 120.0), iaqi("pm25", 80.0)
    assert (high, low) == (158, 107)
    assert severity("pm25", 120.0, 40.0) == 51.0
    # 68 dB(A) against class 2's 60 dB day limit, 6 dB of it the place's: 60 points.
    assert severity("noise", 68.0, 6.0) == 60.0
    assert severity("noise", 68.0, 6.0, period="night") == 60.0  # 18 dB over 50, 6 the place's
    assert severity("noise", 58.0, 6.0) == 0.0  # under the limit
    assert severity("odor", 3.0, 1.0) is None
    assert severity("pm25", math.nan, 1.0) is None


@given(st.sampled_from(IAQI_POLLUTANTS), levels, st.floats(0.0, 5000.0), st.floats(0.0, 5000.0))
def test_more_excess_is_never_less_severe(
    pollutant: str, level: float, small: float, extra: float
) -> None:
    low = severity(pollutant, level, small)
    high = severity(pollutant, level, small + extra)
    assert low is not None
    assert high is not None
    assert 0.0 <= low <= high <= 500.0


@given(st.sampled_from(IAQI_POLLUTANTS), levels)
def test_no_excess_no_severity(pollutant: str, level: float) -> None:
    assert severity(pollutant, level, 0.0) == 0.0
    assert severity(pollutant, level, -5.0) == 0.0


@given(st.floats(20.0, 120.0), st.floats(-20.0, 40.0))
def test_noise_points_are_ten_per_db_the_place_adds_over_the_limit(
    level: float, excess: float
) -> None:
    points = severity("noise", level, excess)
    assert points == pytest.approx(10.0 * max(0.0, min(excess, level - 60.0)))


def test_order_puts_the_most_severe_first_and_channels_without_a_standard_last() -> None:
    keys = {
        "co small": order_key(3.0, 0.3, 0.1),
        "pm25 big": order_key(52.0, 40.0, 4.0),
        "odor strong": order_key(None, 10.0, 0.5),
        "odor weak": order_key(None, 1.0, 0.5),
    }
    assert sorted(keys, key=keys.__getitem__) == [
        "pm25 big",
        "co small",
        "odor strong",
        "odor weak",
    ]
