"""The magnitude test per cell and the Benjamini-Hochberg correction across cells.

Magnitude, two tests to choose from (`magnitude_test`):
- "median_z" (default): the cell's median excess against the standard error a median of n
  passes has, with the scale pooled over the area (1.4826 x MAD of all pass excesses). Robust to
  plumes (medians, MAD) and able to reach small p-values with 8 passes, which a rank test cannot:
  the smallest exact signed-rank p-value is 2^-n (1/256 with 8 passes), and Benjamini-Hochberg
  across hundreds of cells needs far smaller ones.
- "signed_rank": a one-sided Wilcoxon signed-rank test that a cell's pass excesses X (enhancement minus
the reference, see hotspots.analysis.enhancement) are centred above a margin (margin_factor x delta;
the caller subtracts it). It is computed for all cells
at once: ranks of |X| within each cell (ties get their average rank, zeros are dropped as in
Wilcoxon's original method), W+ = the sum of the ranks of positive X. Up to
`exact_wilcoxon_max_n` passes and without ties the p-value is exact (the null distribution of W+
by counting subsets of ranks); otherwise the normal approximation with tie and continuity
correction (as scipy.stats.wilcoxon(method="approx", correction=True)).

Episodes: a one-sided binomial test that a cell has more passes far above the reference than the
area's own rate of such passes (random plumes happen everywhere; a source that runs now and then
makes them happen more often in one place).

Thousands of cells are tested at once, so each test's p-values are corrected with the
Benjamini-Hochberg step-up procedure at false discovery rate q (`fdr_q`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.special import ndtr
from scipy.stats import binom

from hotspots.analysis.grouping import BoolArray, FloatArray, IntArray, run_starts


@lru_cache(maxsize=8)
def _signed_rank_upper_tail(max_n: int) -> tuple[FloatArray, ...]:
    """tails[n][w] = P(W+ >= w) for n untied non-zero differences under the null."""
    tails: list[FloatArray] = [np.ones(1)]
    counts = np.ones(1)  # subsets of {} by rank sum
    for n in range(1, max_n + 1):
        grown = np.zeros(len(counts) + n)
        grown[: len(counts)] += counts
        grown[n:] += counts  # subsets that include rank n
        counts = grown
        upper = np.cumsum(counts[::-1])[::-1] / 2.0**n
        tails.append(upper)
    return tuple(tails)


def signed_rank_greater(
    labels: IntArray, values: FloatArray, n_groups: int, exact_max_n: int = 25
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Per group: W+, the one-sided p-value that values are centred above 0, and n used.

    NaN values are ignored; zeros are dropped. A group with no non-zero value gets p = NaN.
    """
    keep = ~np.isnan(values) & (values != 0)
    labels = labels[keep]
    values = values[keep]
    magnitude = np.abs(values)
    order = np.lexsort((magnitude, labels))
    lab = labels[order]
    mag = magnitude[order]
    positive = values[order] > 0
    m = len(lab)
    n = np.bincount(lab, minlength=n_groups).astype(np.int64)
    if m == 0:
        return np.zeros(n_groups), np.full(n_groups, np.nan), n  # nothing to rank
    group_start = np.concatenate(([0], np.cumsum(n)[:-1]))
    position = np.arange(m) - group_start[lab] + 1.0  # 1-based rank before tie averaging
    tie_break = np.ones(m, dtype=bool)
    tie_break[1:] = (lab[1:] != lab[:-1]) | (mag[1:] != mag[:-1])
    tie = run_starts(tie_break)
    tie_size = np.bincount(tie).astype(np.float64)
    tie_rank = np.bincount(tie, weights=position) / tie_size
    rank = tie_rank[tie]
    w_plus = np.bincount(lab[positive], weights=rank[positive], minlength=n_groups).astype(
        np.float64
    )
    tie_group = lab[tie_break]
    tie_term = np.bincount(tie_group, weights=tie_size**3 - tie_size, minlength=n_groups)
    nf = n.astype(np.float64)
    mean = nf * (nf + 1) / 4.0
    var = nf * (nf + 1) * (2 * nf + 1) / 24.0 - tie_term / 48.0
    with np.errstate(invalid="ignore", divide="ignore"):
        d = 0.5 * np.sign(w_plus - mean)
        z = (w_plus - mean - d) / np.sqrt(var)
    p: FloatArray = np.asarray(1.0 - ndtr(z), dtype=np.float64)
    p[var <= 0] = np.nan
    p[n == 0] = np.nan
    exact = (n > 0) & (n <= exact_max_n) & (tie_term == 0)
    if exact.any():
        tails = _signed_rank_upper_tail(int(n[exact].max()))
        for g in np.flatnonzero(exact):
            p[g] = tails[n[g]][round(w_plus[g])]
    return w_plus, p, n


# 1.4826 x MAD estimates a normal standard deviation; the median of n normal values has a
# standard error of about sqrt(pi / 2) = 1.2533 standard deviations / sqrt(n).
MAD_TO_SIGMA = 1.4826
MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2.0)


def robust_sigma(values: FloatArray) -> float:
    """1.4826 x the median absolute deviation of the finite values (0 when there are none)."""
    finite = values[~np.isnan(values)]
    if len(finite) == 0:
        return 0.0
    return float(MAD_TO_SIGMA * np.median(np.abs(finite - np.median(finite))))


def median_z_greater(
    medians: FloatArray, counts: IntArray, sigma: float
) -> tuple[FloatArray, FloatArray]:
    """z-score and one-sided p-value that each group's median is above 0.

    The scale is pooled over the whole area (`sigma`, robust, from thousands of passes), so a
    cell with few passes is not judged on its own noisy spread: z = median / (1.2533 x sigma /
    sqrt(n)). With sigma = 0 a positive median is certain (p = 0), any other p = 1.
    """
    n = counts.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if sigma > 0:
            z = medians / (MEDIAN_SE_FACTOR * sigma / np.sqrt(n))
        else:
            z = np.where(medians > 0, np.inf, -np.inf)
    z = np.where(n > 0, z, np.nan)
    p = np.asarray(1.0 - ndtr(z), dtype=np.float64)
    return z, p


def binomial_greater(successes: IntArray, trials: IntArray, rate: float) -> FloatArray:
    """One-sided p-value that each group has more successes than `rate` explains.

    P(Binomial(trials, rate) >= successes). Used for episodes: does a cell have more passes far
    above the reference than the area's own rate of such passes? With rate 0 any success is
    certain evidence (p = 0).
    """
    k = successes.astype(np.float64)
    n = trials.astype(np.float64)
    if rate <= 0:
        return np.where(k > 0, 0.0, 1.0)
    return np.asarray(binom.sf(k - 1, n, min(rate, 1.0)), dtype=np.float64)


def benjamini_hochberg(p_values: FloatArray) -> FloatArray:
    """BH-adjusted p-values (q-values); NaN stays NaN and does not count among the tests.

    A test is rejected at false discovery rate q exactly when its adjusted value is <= q.
    """
    out = np.full(len(p_values), np.nan)
    finite = np.flatnonzero(~np.isnan(p_values))
    m = len(finite)
    if m == 0:
        return out
    p = p_values[finite]
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    out[finite] = result
    return out


def rejected(p_values: FloatArray, q: float) -> BoolArray:
    """Which tests BH rejects at false discovery rate q."""
    adjusted = benjamini_hochberg(p_values)
    return np.nan_to_num(adjusted, nan=math.inf) <= q
