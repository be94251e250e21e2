"""Spatial tests on the H3 cell neighbourhood: Getis-Ord Gi* and local Moran's I outliers.

The neighbours of a cell are the tested cells within k rings, k = round(spatial_band_m / centre
spacing) (at least 1), so the ~150 m band of hotspots.md is 3 rings at resolution 11 and 1 ring
at resolution 10. Only cells with at least `spatial_min_passes` passes take part; a cell without
a tested neighbour (an island) gets no spatial result.

- Gi* finds clusters: a cell whose neighbourhood, itself included, stands high (binary weights,
  the cell itself among its neighbours).
- Local Moran's I, quadrant 4 (high value, low neighbours), finds an isolated hot cell that Gi*
  dilutes among its neighbours (row-standardised weights, the cell itself not among them).

p-values are one-sided. Gi* uses its analytic z-score (Ord and Getis 1995; what ArcGIS's hot
spot analysis reports): a conditional randomisation keeps the focal value fixed, so with the cell
among its own neighbours it would test the neighbours only and never see a source confined to
one or two cells. Local Moran's I uses the z-score of I against its conditional permutation
distribution (`spatial_permutations` permutations, reproducible with `seed`; with 0 its analytic
moments under total randomisation). Raw permutation p-values are not used: they cannot go below
1/(permutations + 1), too coarse for a false discovery rate across thousands of cells.

The statistics are those of PySAL's `esda` (G_Local with star=True and binary weights; Moran_Local
with row-standardised weights and its conditional randomisation, the same permutations drawn from
the same seed), computed here with numpy on the neighbour lists: importing esda pulls in pandas,
geopandas and scikit-learn, which take seconds, and its permutation loop runs one cell at a time.
The unit tests compare both on random fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import h3
import numpy as np
from scipy.special import ndtr

from hotspots.analysis.grouping import FloatArray, IntArray
from hotspots.analysis.settings import AnalysisSettings

HIGH_LOW = 4  # the quadrant of a high value among low neighbours (esda's numbering)


@dataclass(frozen=True, slots=True)
class SpatialResult:
    """Per input cell; NaN where a cell took no part (islands, too few cells)."""

    gi_z: FloatArray
    gi_p: FloatArray  # one-sided, high side
    moran_i: FloatArray
    moran_quadrant: IntArray  # 1 HH, 2 LH, 3 LL, 4 HL; 0 when not tested
    high_low_p: FloatArray  # one-sided: a high-low outlier (I below its null)


@dataclass(frozen=True, slots=True)
class Neighbourhood:
    """Symmetric neighbour lists of n cells in compressed rows: the neighbours of cell i are
    `index[start[i]:start[i + 1]]` (positions 0..n-1, the cell itself not among them)."""

    start: IntArray
    index: IntArray

    @property
    def size(self) -> int:
        return len(self.start) - 1

    @property
    def cardinality(self) -> IntArray:
        return np.diff(self.start)

    def owner(self) -> IntArray:
        """The cell each entry of `index` is a neighbour of."""
        return np.repeat(np.arange(self.size, dtype=np.int64), self.cardinality)

    def sums(self, values: FloatArray) -> FloatArray:
        """Per cell, the sum of its neighbours' values."""
        sums = np.bincount(self.owner(), weights=values[self.index], minlength=self.size)
        return sums.astype(np.float64, copy=False)

    @staticmethod
    def of(lists: list[list[int]]) -> Neighbourhood:
        sizes = np.array([len(near) for near in lists], dtype=np.int64)
        start = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        flat = [j for near in lists for j in near]
        return Neighbourhood(start=start, index=np.array(flat, dtype=np.int64))


def ring_count(resolution: int, band_m: float) -> int:
    """Rings of H3 cells that approximate a distance band around a cell's centre."""
    spacing = math.sqrt(3.0) * float(h3.average_hexagon_edge_length(resolution, unit="m"))
    return max(1, round(band_m / spacing))


@lru_cache(maxsize=20_000)
def _disk(cell: int, rings: int) -> tuple[int, ...]:
    """The H3 cells within `rings` rings of a cell (itself included), as integers.

    Cached: the same cells come back for every pollutant and time stratum of an analysis.
    """
    return tuple(h3.str_to_int(n) for n in h3.grid_disk(h3.int_to_str(cell), rings))


def neighbours(cells: IntArray, rings: int) -> dict[int, list[int]]:
    """For each position in `cells`, the positions of the other cells within `rings` rings."""
    index = {int(c): i for i, c in enumerate(cells)}
    out: dict[int, list[int]] = {}
    for i, c in enumerate(cells):
        near = _disk(int(c), rings)
        out[i] = sorted(j for n in near if (j := index.get(n, -1)) >= 0 and j != i)
    return out


def spatial_tests(cells: IntArray, values: FloatArray, settings: AnalysisSettings) -> SpatialResult:
    """Gi* and local Moran's I of `values` over `cells` (all of one H3 resolution)."""
    n = len(cells)
    result = SpatialResult(
        gi_z=np.full(n, np.nan),
        gi_p=np.full(n, np.nan),
        moran_i=np.full(n, np.nan),
        moran_quadrant=np.zeros(n, dtype=np.int64),
        high_low_p=np.full(n, np.nan),
    )
    if n == 0:
        return result
    resolution = h3.get_resolution(h3.int_to_str(int(cells[0])))
    near = neighbours(cells, ring_count(resolution, settings.spatial_band_m))
    linked = np.array([bool(near[i]) for i in range(n)])
    members = np.flatnonzero(linked & ~np.isnan(values))
    if len(members) < 3:
        return result
    position = {int(m): j for j, m in enumerate(members)}
    sub = [[position[k] for k in near[int(m)] if k in position] for m in members]
    keep = [j for j in range(len(members)) if sub[j]]
    if len(keep) < 3:
        return result
    if len(keep) < len(members):
        members = members[keep]
        position = {int(m): j for j, m in enumerate(members)}
        sub = [[position[k] for k in near[int(m)] if k in position] for m in members]
    y = values[members].astype(np.float64)
    if float(np.ptp(y)) == 0.0:
        return result  # a flat field has no hot spot and no outlier
    graph = Neighbourhood.of(sub)
    gi_z = gi_star_z(graph, y)
    moran = local_moran(graph, y, settings.spatial_permutations, settings.seed)
    result.gi_z[members] = gi_z
    result.gi_p[members] = 1.0 - ndtr(gi_z)
    result.moran_i[members] = moran.i
    result.moran_quadrant[members] = moran.quadrant
    result.high_low_p[members] = np.where(
        moran.quadrant == HIGH_LOW, ndtr(np.nan_to_num(moran.z, nan=np.inf)), 1.0
    )
    return result


def gi_star_z(graph: Neighbourhood, y: FloatArray) -> FloatArray:
    """The analytic z-score of Getis-Ord Gi* with binary weights, each cell its own neighbour.

    G*_i = sum of y over the cell and its neighbours / sum of all y; under the null its mean is
    c / n and its variance c (n - c) / (n - 1) / n^2 x s^2 / mean(y)^2, with c the number of
    cells summed and s^2 the population variance of y. The z-score is written with y centred
    on its mean, which makes it independent of a shift of y (G itself is not: it flips sign
    when the sum of y is negative) and avoids the cancellation of two nearly equal ratios.
    """
    n = len(y)
    centred = y - y.mean()
    sd = math.sqrt(float(np.mean(centred * centred)))
    card = (graph.cardinality + 1).astype(np.float64)
    total = centred + graph.sums(centred)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = total / (sd * np.sqrt(card * (n - card) / (n - 1)))
    return np.asarray(np.where(card < n, z, np.nan), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class LocalMoran:
    i: FloatArray  # local Moran's I of each cell
    quadrant: IntArray  # 1 HH, 2 LH, 3 LL, 4 HL (value, then the neighbours' mean)
    z: FloatArray  # of I against its null: permutations, or the analytic moments


def local_moran(graph: Neighbourhood, y: FloatArray, permutations: int, seed: int) -> LocalMoran:
    """Local Moran's I with row-standardised weights and its z-score under the null.

    With z the standardised values (population standard deviation) and lag_i the mean of z over
    the neighbours, I_i = (n - 1) z_i lag_i / sum(z^2). The null is conditional randomisation:
    the cell keeps its value and its neighbours are c_i values drawn without replacement from
    the other n - 1 cells (Anselin 1995), the z-score taken against the mean and standard
    deviation of I over the permutations; with permutations = 0 the analytic moments of total
    randomisation (Sokal et al. 1998) instead.
    """
    n = len(y)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (y - y.mean()) / y.std()
    card = graph.cardinality
    lag = graph.sums(z) / card
    scaling = (n - 1) / float((z * z).sum())
    moran_i = z * lag * scaling
    quadrant = np.where(z > 0, np.where(lag > 0, 1, 4), np.where(lag > 0, 2, 3)).astype(np.int64)
    if permutations > 0:
        mean, sd = _conditional_moments(z, card, permutations, seed)
        mean *= z * scaling
        sd *= np.abs(z) * scaling
    else:
        mean, sd = _total_moments(z, card)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(sd > 0, (moran_i - mean) / sd, np.nan)
    return LocalMoran(i=moran_i, quadrant=quadrant, z=np.asarray(score, dtype=np.float64))


@lru_cache(maxsize=8)
def permuted_neighbours(n: int, size: int, permutations: int, seed: int) -> IntArray:
    """Per permutation, `size` distinct positions among n - 1 others: the first `size` of a
    random permutation of range(n - 1), from numpy's legacy generator seeded with `seed` (the
    draws esda's conditional randomisation makes).

    Cached (read-only): the pollutants and strata of one analysis mostly test the same cells.
    """
    draw = np.random.RandomState(seed)
    out = np.empty((permutations, size), dtype=np.int64)
    for p in range(permutations):
        out[p] = draw.permutation(n - 1)[:size]
    out.flags.writeable = False
    return out


def _conditional_moments(
    z: FloatArray, card: IntArray, permutations: int, seed: int
) -> tuple[FloatArray, FloatArray]:
    """Mean and standard deviation over the permutations of each cell's random neighbour mean.

    Cell i with c neighbours takes the first c positions of every permutation, drawn among the
    n - 1 other cells: a position d stands for cell d when d < i and for cell d + 1 when d >= i.
    So a draw's sum is A + F_i, with A the sum of z at the positions themselves (the same for
    every cell of c neighbours) and F_i the sum of the steps z[d + 1] - z[d] over the positions
    d >= i. The first two moments of A + F_i over the permutations then come from histograms
    over d (of the steps, of A x step, and of products of two steps at the lower of their two
    positions) summed from i upwards: a few passes over the permutations for all cells at once
    instead of one gather of permutations x c values per cell.
    """
    n = len(z)
    widest = int(card.max())
    drawn = permuted_neighbours(n, widest, permutations, seed)
    low = z[drawn]
    step = z[drawn + 1] - low
    sizes = set(card.tolist())
    total = np.zeros(permutations)  # A: sum of z at the first c positions
    steps = np.zeros(n - 1)  # by position: the steps there
    pairs = np.zeros(n - 1)  # by the lower position of two: the product of their steps
    mean = np.empty(n)
    sd = np.empty(n)
    for c in range(1, widest + 1):
        k = c - 1
        at, size = drawn[:, k], step[:, k]
        total += low[:, k]
        steps += np.bincount(at, weights=size, minlength=n - 1)
        pairs += np.bincount(at, weights=size * size, minlength=n - 1)
        if k:
            lower = np.minimum(drawn[:, :k], at[:, None]).ravel()
            pairs += 2.0 * np.bincount(
                lower, weights=(step[:, :k] * size[:, None]).ravel(), minlength=n - 1
            )
        if c not in sizes:
            continue
        cross = np.bincount(
            drawn[:, :c].ravel(), weights=(total[:, None] * step[:, :c]).ravel(), minlength=n - 1
        ).astype(np.float64, copy=False)
        cells = np.flatnonzero(card == c)
        first = (float(total.sum()) + _from(steps)[cells]) / permutations
        second = (
            float((total * total).sum()) + 2.0 * _from(cross)[cells] + _from(pairs)[cells]
        ) / permutations
        variance = second - first * first
        # A cell whose neighbours are all the other cells draws the same set every time; what
        # rounding leaves of its variance is no spread.
        flat = variance <= 1e-12 * second
        mean[cells] = first / c
        sd[cells] = np.where(flat, 0.0, np.sqrt(np.where(flat, 0.0, variance))) / c
    return mean, sd


def _from(histogram: FloatArray) -> FloatArray:
    """out[i] = sum of histogram[i:], for i = 0..len (the last: nothing)."""
    return np.concatenate((np.cumsum(histogram[::-1])[::-1], [0.0]))


def _total_moments(z: FloatArray, card: IntArray) -> tuple[FloatArray, FloatArray]:
    """Mean and standard deviation of I_i under total randomisation, row-standardised weights
    (Sokal, Oden and Thomson 1998, eqs. A3 and A4*; as esda's Moran_Local EI and VI)."""
    n = len(z)
    m2 = float((z * z).sum()) / n
    b2 = float((z**4).sum()) / n / m2**2
    wi = np.ones(n)
    wi2 = 1.0 / card.astype(np.float64)
    n1 = n - 1
    mean = -wi / n1
    variance = wi2 * (n - b2) / n1 + (wi**2 - wi2) * (2 * b2 - n) / (n1 * (n - 2)) - mean**2
    with np.errstate(invalid="ignore"):
        return mean, np.sqrt(variance)
