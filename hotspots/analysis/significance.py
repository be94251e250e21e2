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

Beside the median, `mean_test` adds the cell's mean of excesses clipped around the area's median
(hotspots.analysis.cellstats): a source on in fewer than half of the passes moves a mean, not a
median.

Episodes: a one-sided binomial test that a cell has more passes far above the reference than the
area's own rate of such passes (random plumes happen everywhere; a source that runs now and then
makes them happen more often in one place).

Dependence within a day: passes of one cell on one day share the background error of the trips
that made them. `within_day_correlation` estimates the intraclass correlation rho of pass
excesses within (cell, day) groups from the data (one-way nested ANOVA, after each cell's own
median is removed, with plumes winsorised), and `design_effect` turns it into a cell's design
effect 1 + (m - 1) rho, m the mean size of its day groups weighted by passes (Kish). The tests
count a cell's n passes as n / deff independent ones; `binomial_greater` takes such
non-integer counts through the regularised incomplete beta function.

Register grids: a cell's median near the area's is also judged against the area's own
distribution of excesses (`median_lattice_greater`), exact for values that tie on a grid, where
the normal approximation of the median is not.

Thousands of cells are tested at once, so each test's p-values are corrected with the
Benjamini-Hochberg step-up procedure at false discovery rate q (`fdr_q`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.special import betainc, ndtr

from hotspots.analysis.grouping import BoolArray, FloatArray, IntArray, group_median, run_starts


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
    medians: FloatArray, counts: IntArray | FloatArray, sigma: float
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


def binomial_greater(
    successes: IntArray | FloatArray, trials: IntArray | FloatArray, rate: float | FloatArray
) -> FloatArray:
    """One-sided p-value that each group has more successes than `rate` explains.

    P(Binomial(trials, rate) >= successes) = I_rate(k, n - k + 1), the regularised incomplete
    beta function, which also takes non-integer counts (passes counted at their effective
    number, see `design_effect`). Used for episodes: does a cell have more passes far above the
    reference than the area's own rate of such passes? With rate 0 any success is certain
    evidence (p = 0).
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    r = np.broadcast_to(np.clip(np.asarray(rate, dtype=np.float64), 0.0, 1.0), k.shape)
    k = np.minimum(k, n)
    out = np.ones(k.shape)
    some = k > 0
    with np.errstate(invalid="ignore"):
        out[some] = betainc(k[some], n[some] - k[some] + 1.0, r[some])
    out[some & (r <= 0)] = 0.0
    return out


def median_lattice_greater(medians: FloatArray, counts: FloatArray, area: FloatArray) -> FloatArray:
    """One-sided p-value that a median of `counts` values drawn from the area's own values
    `area` (sorted ascending) is as high as each observed median.

    The sample median of n values is >= t only when at least ceil(n / 2) of them are >= t, so
    p = P(Binomial(n, S(t)) >= ceil(n / 2)) with S(t) the area's share of values >= t: exact for
    values on a grid, where many tie at t (the normal approximation of `median_z_greater` takes
    a one-step median on a collapsed spread for a certainty). Non-integer counts (effective
    numbers of passes) need n / 2 of them.
    """
    if len(area) == 0:
        return np.full(len(medians), np.nan)
    share = 1.0 - np.searchsorted(area, medians, side="left") / len(area)
    n = np.asarray(counts, dtype=np.float64)
    half = np.where(n == np.floor(n), np.ceil(n / 2.0), n / 2.0)
    p = binomial_greater(half, n, share)
    return np.where(n > 0, p, np.nan)


# Excesses beyond this many robust sigma are winsorised before the within-day correlation is
# estimated: a plume in one pass is not a shared day effect.
_WINSOR_SIGMA = 3.0


def within_day_correlation(
    cell: IntArray,
    group: IntArray,
    values: FloatArray,
    n_cells: int,
    n_groups: int,
    level: FloatArray | None = None,
) -> float:
    """Intraclass correlation of values within (cell, day) groups, beyond each cell's level.

    `cell` and `group` label each value (a group lies in one cell). One-way nested ANOVA on the
    values less their cell's median, winsorised at 3 robust sigma: rho = s2_b / (s2_b + s2_w)
    with s2_w the mean square within groups and s2_b = (MSB - MSW) / n0 the variance of group
    means within cells. 0 when it cannot be estimated or comes out negative. `level`: the cells'
    medians of `values`, when the caller has them already.
    """
    if len(values) < 3:
        return 0.0
    if level is None:
        level = group_median(cell, values, n_cells)
    resid = values - level[cell]
    sigma = robust_sigma(resid)
    if sigma > 0:
        resid = np.clip(resid, -_WINSOR_SIGMA * sigma, _WINSOR_SIGMA * sigma)
    n_g = np.bincount(group, minlength=n_groups).astype(np.float64)
    n_c = np.bincount(cell, minlength=n_cells).astype(np.float64)
    mean_g = np.bincount(group, weights=resid, minlength=n_groups) / np.maximum(n_g, 1.0)
    mean_c = np.bincount(cell, weights=resid, minlength=n_cells) / np.maximum(n_c, 1.0)
    cell_of_group = np.zeros(n_groups, dtype=np.int64)
    cell_of_group[group] = cell
    present_g = n_g > 0
    groups = int(present_g.sum())
    cells = int((n_c > 0).sum())
    df_w = len(values) - groups
    df_b = groups - cells
    if df_w <= 0 or df_b <= 0:
        return 0.0
    ss_w = float(np.sum((resid - mean_g[group]) ** 2))
    ss_b = float(np.sum(n_g[present_g] * (mean_g - mean_c[cell_of_group])[present_g] ** 2))
    ms_w = ss_w / df_w
    ms_b = ss_b / df_b
    sq_per_cell = np.bincount(
        cell_of_group[present_g], weights=n_g[present_g] ** 2, minlength=n_cells
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        n0 = (len(values) - float(np.sum(np.where(n_c > 0, sq_per_cell / n_c, 0.0)))) / df_b
    if not (n0 > 0 and ms_w + ms_b > 0):
        return 0.0
    s2_b = max(0.0, (ms_b - ms_w) / n0)
    total = s2_b + ms_w
    return float(s2_b / total) if total > 0 else 0.0


def design_effect(
    cell: IntArray, group: IntArray, rho: float, n_cells: int, n_groups: int
) -> FloatArray:
    """Per cell: 1 + (m - 1) rho, m = sum of squared day-group sizes / passes (Kish)."""
    n_g = np.bincount(group, minlength=n_groups).astype(np.float64)
    n_c = np.bincount(cell, minlength=n_cells).astype(np.float64)
    cell_of_group = np.zeros(n_groups, dtype=np.int64)
    cell_of_group[group] = cell
    squares = np.bincount(cell_of_group, weights=n_g**2, minlength=n_cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(n_c > 0, squares / n_c, 1.0)
    return np.asarray(1.0 + (m - 1.0) * max(rho, 0.0), dtype=np.float64)


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
