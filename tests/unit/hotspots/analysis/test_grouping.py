from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from hotspots.analysis.grouping import (
    group_median,
    group_nunique,
    group_quantile,
    group_sort,
    sorted_group_quantile,
)


def test_group_median_by_hand() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2], dtype=np.int64)
    values = np.array([3.0, 1.0, 2.0, 10.0, 20.0, np.nan])
    np.testing.assert_array_equal(group_median(labels, values, 4), [2.0, 15.0, np.nan, np.nan])


def test_group_nunique() -> None:
    labels = np.array([0, 0, 0, 1], dtype=np.int64)
    keys = np.array([5, 5, 6, 5], dtype=np.int64)
    np.testing.assert_array_equal(group_nunique(labels, keys, 2), [2, 1])


@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.floats(-1e6, 1e6, allow_nan=False)),
        min_size=1,
        max_size=60,
    ),
    st.floats(0.0, 1.0),
)
def test_group_quantile_matches_numpy(pairs: list[tuple[int, float]], q: float) -> None:
    labels = np.array([p[0] for p in pairs], dtype=np.int64)
    values = np.array([p[1] for p in pairs])
    got = group_quantile(labels, values, 5, q)
    for g in range(5):
        members = values[labels == g]
        if len(members):
            assert np.isclose(got[g], np.quantile(members, q), rtol=1e-9, atol=1e-6)
        else:
            assert np.isnan(got[g])


def test_sorted_group_quantile_of_a_presorted_subset_matches_group_quantile() -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 7, 500)
    values = rng.normal(size=500)
    order = group_sort(labels, values, 7)
    keep = rng.uniform(size=500) < 0.4  # a stratum's share, kept in the sorted order
    subset = order[keep[order]]
    counts = np.bincount(labels[keep], minlength=7)
    np.testing.assert_array_equal(
        sorted_group_quantile(values[subset], counts, 0.5),
        group_quantile(labels[keep], values[keep], 7, 0.5),
    )
