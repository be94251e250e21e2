from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import h3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotspots.analysis.passes import (
    AnalysisPass,
    PassError,
    PassStats,
    PassTable,
    ReadingSeries,
    concat,
    segment_fleet,
    segment_passes,
    segment_table,
    stationary_mask,
)
from hotspots.analysis.settings import AnalysisSettings

A = h3.latlng_to_cell(39.893, 116.462, 11)
B = h3.grid_ring(A, 1)[0]
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC).timestamp()


def _series(
    times: list[float],
    cells: list[str | None],
    pm25: list[float],
    flags: list[tuple[str, ...]] | None = None,
    noise: list[float] | None = None,
) -> ReadingSeries:
    values = {"pm25": np.array(pm25)}
    if noise is not None:
        values["noise"] = np.array(noise)
    return ReadingSeries(
        vehicle="car-01",
        times=T0 + np.array(times, dtype=float),
        cells=cells,
        values=values,
        flags=flags or [() for _ in times],
    )


def test_leaving_the_cell_or_a_long_gap_ends_a_pass() -> None:
    series = _series(
        [0, 10, 20, 30, 200, 210],
        [A, A, B, B, B, A],
        [10, 20, 30, 50, 70, 5],
    )
    passes = segment_passes(series, AnalysisSettings())
    assert [(p.cell, p.stats["pm25"].n) for p in passes] == [(A, 2), (B, 2), (B, 1), (A, 1)]
    assert passes[0].stats["pm25"] == PassStats(mean=15.0, median=15.0, n=2)
    assert passes[1].start == datetime.fromtimestamp(T0 + 20, UTC)
    assert passes[1].end == datetime.fromtimestamp(T0 + 30, UTC)


def test_flagged_readings_stay_out_and_are_counted() -> None:
    series = _series(
        [0, 10, 20, 30],
        [A, A, A, None],
        [10, 1000, 30, 99],
        flags=[(), ("stationary",), ("host_time",), ("no_fix",)],
    )
    (only,) = segment_passes(series, AnalysisSettings())
    assert only.stats["pm25"].mean == 20.0
    assert only.excluded == 1  # the stationary reading inside the visit


def test_a_flagged_reading_does_not_split_a_pass() -> None:
    series = _series([0, 10, 20], [A, A, A], [1, 2, 3], flags=[(), ("warmup",), ()])
    assert len(segment_passes(series, AnalysisSettings())) == 1


def test_channel_values_missing_count_for_nothing() -> None:
    series = _series([0, 10, 20], [A, A, A], [np.nan, 4.0, 6.0])
    (only,) = segment_passes(series, AnalysisSettings())
    assert only.stats["pm25"] == PassStats(mean=5.0, median=5.0, n=2)


def test_noise_is_an_energy_mean() -> None:
    series = _series([0, 10], [A, A], [1, 1], noise=[60.0, 70.0])
    (only,) = segment_passes(series, AnalysisSettings())
    assert only.stats["noise"].mean == pytest.approx(10 * np.log10((1e6 + 1e7) / 2))
    assert only.stats["noise"].median == 65.0


def test_out_of_order_readings_are_refused() -> None:
    with pytest.raises(PassError):
        _series([10, 0], [A, A], [1, 2])


def test_table_round_trip_and_concat() -> None:
    passes = [
        AnalysisPass("b", A, datetime.fromtimestamp(T0, UTC),
                     datetime.fromtimestamp(T0 + 10, UTC), {"pm25": PassStats(12.0, 12.0, 2)}),
        AnalysisPass("a", B, datetime.fromtimestamp(T0 + 20, UTC),
                     datetime.fromtimestamp(T0 + 30, UTC), {"no2": PassStats(40.0, 40.0, 1)}),
    ]  # fmt: skip
    table = PassTable.from_passes(passes)
    assert table.vehicles == ("a", "b")
    assert list(table.vehicle) == [1, 0]
    assert table.values["pm25"][0] == 12.0
    assert np.isnan(table.values["pm25"][1])
    both = concat([table, table.subset(np.array([True, False]))])
    assert len(both) == 3
    assert list(both.counts["no2"]) == [0, 1, 0]


def test_stationary_needs_a_long_enough_stop() -> None:
    times = np.arange(0.0, 120.0, 10.0)
    speeds = np.array([5, 0.5, 0.5, 0.5, 5, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2])
    mask = stationary_mask(times, speeds, AnalysisSettings())
    # First stop lasts 20 s; the second from t=50 to t=110, 60 s: not more than 60 s.
    assert not mask.any()
    mask = stationary_mask(times, speeds, AnalysisSettings(stationary_min_s=30.0))
    assert list(np.flatnonzero(mask)) == [5, 6, 7, 8, 9, 10, 11]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 200),
            st.sampled_from([A, B, None]),
            st.floats(0, 500, allow_nan=False) | st.just(float("nan")),
            st.sampled_from([(), ("stationary",), ("host_time",)]),
        ),
        max_size=40,
    )
)
def test_every_usable_value_lands_in_exactly_one_pass(
    rows: list[tuple[int, str | None, float, tuple[str, ...]]],
) -> None:
    times = np.cumsum([r[0] for r in rows]).astype(float)
    series = _series(
        list(times), [r[1] for r in rows], [r[2] for r in rows], flags=[r[3] for r in rows]
    )
    table = segment_table(series, AnalysisSettings())
    usable = sum(
        1 for r in rows if r[1] is not None and "stationary" not in r[3] and not np.isnan(r[2])
    )
    assert int(table.counts["pm25"].sum()) == usable
    assert np.all(table.end >= table.start)
    assert np.all(np.diff(table.start) > 0)


def test_a_fleet_in_one_table() -> None:
    one = _series([0, 10, 20], [A, A, B], [1.0, 2.0, 3.0])
    two = replace(one, vehicle="car-02")
    table = segment_fleet([two, one], AnalysisSettings())
    assert table.vehicles == ("car-01", "car-02")
    assert len(table) == 4
    assert sorted(table.vehicle.tolist()) == [0, 0, 1, 1]
