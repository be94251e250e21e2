"""Reductions over groups of a flat array (per pass, per cell, per trip), vectorised with numpy.

Groups are given by an integer label per element. Each function sorts once and works on the
sorted layout, so a month of passes reduces in milliseconds instead of a Python loop per group.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def dense_labels(keys: npt.NDArray[np.generic]) -> tuple[npt.NDArray[np.generic], IntArray]:
    """Unique keys (sorted) and, per element, the index of its key: labels 0..k-1."""
    unique, inverse = np.unique(keys, return_inverse=True)
    return unique, inverse.astype(np.int64).reshape(-1)


def group_count(labels: IntArray, n_groups: int) -> IntArray:
    return np.bincount(labels, minlength=n_groups).astype(np.int64)


def group_sum(labels: IntArray, values: FloatArray, n_groups: int) -> FloatArray:
    return np.bincount(labels, weights=values, minlength=n_groups).astype(np.float64)


def group_quantile(labels: IntArray, values: FloatArray, n_groups: int, q: float) -> FloatArray:
    """Quantile q of each group (linear interpolation, numpy's default); NaN for empty groups.

    NaN values are ignored.
    """
    keep = ~np.isnan(values)
    labels = labels[keep]
    values = values[keep]
    sorted_values = values[group_sort(labels, values, n_groups)]
    return sorted_group_quantile(sorted_values, np.bincount(labels, minlength=n_groups), q)


def sorted_group_quantile(sorted_values: FloatArray, counts: IntArray, q: float) -> FloatArray:
    """Quantile q of each group from values already laid out by group, ascending within each
    (the `group_sort` order, no NaN), with `counts` values per group; NaN for empty groups.

    A caller that reduces several subsets of the same values sorts once and keeps each subset's
    elements in that order instead of sorting every subset again.
    """
    n_groups = len(counts)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out = np.full(n_groups, np.nan)
    has = counts > 0
    pos = (counts[has] - 1) * q
    low = np.floor(pos).astype(np.int64)
    high = np.minimum(low + 1, counts[has] - 1)
    frac = pos - low
    base = starts[has]
    lo_v = sorted_values[base + low]
    hi_v = sorted_values[base + high]
    out[has] = lo_v + (hi_v - lo_v) * frac
    return out


def group_sort(labels: IntArray, values: FloatArray, n_groups: int) -> IntArray:
    """The order that sorts by label, then by value within a label (like np.lexsort).

    Sorting the values first and then the labels with a stable sort is faster than lexsort
    (docs/performance.md): with fewer than 65,536 groups the second sort is numpy's radix sort.
    """
    by_value = np.argsort(values, kind="quicksort")
    narrow = labels[by_value]
    if n_groups <= np.iinfo(np.uint16).max:
        narrow = narrow.astype(np.uint16)
    return by_value[np.argsort(narrow, kind="stable")]


def group_median(labels: IntArray, values: FloatArray, n_groups: int) -> FloatArray:
    return group_quantile(labels, values, n_groups, 0.5)


def group_nunique(labels: IntArray, keys: IntArray, n_groups: int) -> IntArray:
    """Number of distinct keys per group."""
    if len(keys) == 0:
        return np.zeros(n_groups, dtype=np.int64)
    low = int(keys.min())
    span = int(keys.max()) - low + 1
    if n_groups * span <= 50_000_000:  # a presence table: no sort at all
        present = np.zeros(n_groups * span, dtype=bool)
        present[labels * span + (keys - low)] = True
        return np.asarray(present.reshape(n_groups, span).sum(axis=1), dtype=np.int64)
    pairs = np.unique(labels * span + (keys - low))
    return np.bincount(pairs // span, minlength=n_groups).astype(np.int64)


def run_starts(breaks: BoolArray) -> IntArray:
    """Run numbers from a 'starts a new run' mask: cumulative count of breaks, from 0."""
    return (np.cumsum(breaks) - 1).astype(np.int64)
