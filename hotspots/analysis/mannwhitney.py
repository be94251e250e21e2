"""The two-sided Mann-Whitney U test with the normal approximation: the before/after p-value.

Both samples are ranked together, tied values sharing the average of their ranks. U of the first
sample is the sum of its ranks less n1 (n1 + 1) / 2. With no difference between the samples, U
is close to normal with mean n1 n2 / 2 and variance

    n1 n2 / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1))),    n = n1 + n2,

the sum running over the groups of t tied values (the tie correction). With the continuity
correction, z = (max(U, n1 n2 - U) - n1 n2 / 2 - 1/2) / sd and the p-value is 2 P(Z > z),
capped at 1. These are the figures of `scipy.stats.mannwhitneyu(x, y, alternative="two-sided",
method="asymptotic")`, which the tests hold it to; numpy and the standard library compute it
here so that the web process, which runs the before/after test, does not load scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hotspots.analysis.grouping import FloatArray

__all__ = ["MannWhitney", "mann_whitney"]


@dataclass(frozen=True, slots=True)
class MannWhitney:
    u: float  # U of the first sample
    p_value: float  # two-sided


def mann_whitney(x: FloatArray, y: FloatArray) -> MannWhitney:
    """The test of whether `x` and `y` come from the same distribution, against either shifted.

    Both samples need at least one value and no NaN."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError(f"samples of {n1} and {n2} values: each needs at least one")
    pooled = np.concatenate((x, y)).astype(np.float64)
    if np.isnan(pooled).any():
        raise ValueError("samples with NaN cannot be ranked")
    n = n1 + n2
    order = np.argsort(pooled, kind="stable")
    ordered = pooled[order]
    first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ties = np.diff(np.r_[first, n]).astype(np.float64)
    # The t equal values from (zero-based) position s take ranks s + 1 .. s + t: their mean.
    ranks = np.empty(n)
    ranks[order] = np.repeat(first + (ties + 1.0) / 2.0, ties.astype(np.int64))
    u = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2
    tie_term = float((ties**3 - ties).sum())
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0.0:
        return MannWhitney(u, 1.0)  # every value the same: nothing tells the samples apart
    z = (max(u, n1 * n2 - u) - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    # 2 P(Z > z) for a standard normal Z.
    return MannWhitney(u, min(1.0, math.erfc(z * math.sqrt(0.5))))
