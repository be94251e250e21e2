"""Pass segmentation and pass statistics: pure functions, examples and properties."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.passes import (
    TrackPoint,
    channel_stats,
    extend,
    ordered,
    passes_of,
    segment,
    summarize,
)

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
GAP = timedelta(seconds=120)


def point(seconds: float, cell: int, seq: int | None = None, **values: float) -> TrackPoint:
    return TrackPoint(
        T0 + timedelta(seconds=seconds), int(seconds) if seq is None else seq, cell, values
    )


def test_leaving_the_cell_ends_a_pass() -> None:
    track = [point(0, 1), point(10, 1), point(20, 2), point(30, 1)]
    runs = list(segment(track, GAP))
    assert [[p.seq for p in run] for run in runs] == [[0, 10], [20], [30]]


def test_a_gap_over_the_limit_ends_a_pass_and_one_of_exactly_the_limit_does_not() -> None:
    track = [point(0, 1), point(120, 1), point(241, 1)]
    runs = list(segment(track, GAP))
    assert [[p.seq for p in run] for run in runs] == [[0, 120], [241]]


def test_readings_at_the_same_instant_order_by_seq() -> None:
    track = [point(0, 2, seq=6), point(0, 1, seq=5), point(10, 2, seq=7)]
    got = passes_of("car", track, GAP)
    assert [(p.cell, p.first_seq, p.last_seq) for p in got] == [(1, 5, 5), (2, 6, 7)]


def test_statistics_per_channel_with_an_energy_mean_for_noise() -> None:
    track = [
        point(0, 1, pm25=10.0, noise=60.0),
        point(10, 1, pm25=30.0, noise=70.0),
        point(20, 1, noise=80.0),  # pm25 flagged or missing: left out of pm25 only
    ]
    (p,) = passes_of("car", track, GAP)
    assert p.readings == 3
    assert p.start == T0
    assert p.end == T0 + timedelta(seconds=20)
    assert p.stats["pm25"].n == 2
    assert p.stats["pm25"].mean == 20.0
    assert p.stats["pm25"].energy_mean is None
    noise = p.stats["noise"]
    assert noise.n == 3
    assert noise.mean == 70.0
    expected = 10 * math.log10((10**6 + 10**7 + 10**8) / 3)
    assert noise.energy_mean == pytest.approx(expected)
    assert noise.energy_mean == pytest.approx(75.68, abs=0.01)


def test_a_pass_without_countable_values_has_no_statistics() -> None:
    (p,) = passes_of("car", [point(0, 1), point(5, 1)], GAP)
    assert p.readings == 2
    assert p.stats == {}


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        list(segment([point(0, 1)], timedelta(0)))
    with pytest.raises(ValueError, match="at least one"):
        summarize("car", [])
    with pytest.raises(ValueError, match="no values"):
        channel_stats("noise", [])


# --- properties ----------------------------------------------------------------------------------

tracks = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3_600),  # seconds after T0
        st.integers(min_value=1, max_value=3),  # cell
        st.floats(min_value=30.0, max_value=120.0),  # a noise level
    ),
    max_size=60,
    unique_by=lambda t: t[0],
).map(lambda items: [point(s, c, seq=i, noise=v) for i, (s, c, v) in enumerate(items)])
gaps = st.integers(min_value=1, max_value=600).map(lambda s: timedelta(seconds=s))


@given(tracks, gaps)
def test_every_point_is_in_exactly_one_pass_in_order(
    track: list[TrackPoint], gap: timedelta
) -> None:
    runs = list(segment(ordered(track), gap))
    assert [p for run in runs for p in run] == ordered(track)
    assert all(run for run in runs)


@given(tracks, gaps)
def test_passes_are_one_cell_without_inner_gaps_and_as_long_as_possible(
    track: list[TrackPoint], gap: timedelta
) -> None:
    runs = list(segment(ordered(track), gap))
    for run in runs:
        assert len({p.cell for p in run}) == 1
        assert all(b.time - a.time <= gap for a, b in itertools.pairwise(run))
    for before, after in itertools.pairwise(runs):
        left, right = before[-1], after[0]
        assert left.cell != right.cell or right.time - left.time > gap


@given(tracks, gaps, st.randoms(use_true_random=False))
def test_the_order_readings_arrive_in_does_not_matter(
    track: list[TrackPoint], gap: timedelta, rnd: object
) -> None:
    shuffled = list(track)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert passes_of("car", shuffled, gap) == passes_of("car", track, gap)


@given(st.lists(st.floats(min_value=20.0, max_value=140.0), min_size=1, max_size=50))
def test_the_energy_mean_lies_between_the_mean_and_the_maximum(levels: list[float]) -> None:
    stats = channel_stats("noise", levels)
    assert stats.energy_mean is not None
    assert stats.mean - 1e-9 <= stats.energy_mean <= stats.max + 1e-9
    assert stats.min <= stats.mean + 1e-9


@given(tracks, st.integers(min_value=1, max_value=59))
def test_extending_a_pass_equals_summarizing_it_whole(track: list[TrackPoint], cut: int) -> None:
    one_cell = [TrackPoint(p.time, p.seq, 1, p.values) for p in ordered(track)]
    if len(one_cell) < 2:
        return
    cut = min(cut, len(one_cell) - 1)
    whole = summarize("car", one_cell)
    grown = extend(summarize("car", one_cell[:cut]), one_cell[cut:])
    assert (grown.start, grown.end, grown.first_seq, grown.last_seq, grown.readings) == (
        whole.start, whole.end, whole.first_seq, whole.last_seq, whole.readings,
    )  # fmt: skip
    for channel, s in whole.stats.items():
        g = grown.stats[channel]
        assert (g.n, g.min, g.max) == (s.n, s.min, s.max)
        assert g.mean == pytest.approx(s.mean, rel=1e-12)
        assert g.energy_mean == pytest.approx(s.energy_mean, rel=1e-12)
