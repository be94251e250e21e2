"""Spatial tests on the H3 cell neighbourhood: Getis-Ord Gi* and local Moran's I outliers.

Both come from PySAL `esda` (G_Local with star=True and binary weights; Moran_Local with
row-standardised weights), on a `libpysal.weights.W` built from H3 adjacency: the neighbours of a
cell are the tested cells within k rings, k = round(spatial_band_m / centre spacing) (at least
1), so the ~150 m band of hotspots.md is 3 rings at resolution 11 and 1 ring at resolution 10.
Only cells with at least `spatial_min_passes` passes take part; a cell without a tested
neighbour (an island) gets no spatial result.

- Gi* finds clusters: a cell whose neighbourhood, itself included, stands high. esda's G is a
  ratio to the sum of all values, which flips sign when that sum is negative, so the values are
  shifted to be positive first (Gi*'s z-score does not change under a shift).
- Local Moran's I, quadrant 4 (high value, low neighbours), finds an isolated hot cell that Gi*
  dilutes among its neighbours.

p-values are one-sided. Gi* uses its analytic z-score (Ord and Getis 1995; what ArcGIS's hot
spot analysis reports): esda's conditional randomisation keeps the focal value fixed, so with
star=True it would test the neighbours only and never see a source confined to one or two cells.
Local Moran's I uses the z-score of I against its conditional permutation distribution
(`spatial_permutations` permutations, reproducible with `seed`; with 0 its analytic moments).
Raw permutation p-values are not used: they cannot go below 1/(permutations + 1), too coarse for a
false discovery rate across thousands of cells.

`esda` is imported when a test runs, not with this module: it pulls in pandas, geopandas and
scikit-learn, which take seconds to import.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import h3
import numpy as np
from scipy.special import ndtr

from hotspots.analysis.grouping import FloatArray, IntArray
from hotspots.analysis.settings import AnalysisSettings

HIGH_LOW = 4  # esda's quadrant of a high value among low neighbours


@dataclass(frozen=True, slots=True)
class SpatialResult:
    """Per input cell; NaN where a cell took no part (islands, too few cells)."""

    gi_z: FloatArray
    gi_p: FloatArray  # one-sided, high side
    moran_i: FloatArray
    moran_quadrant: IntArray  # 1 HH, 2 LH, 3 LL, 4 HL; 0 when not tested
    high_low_p: FloatArray  # one-sided: a high-low outlier (I below its null)


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
    sub = {j: [position[k] for k in near[int(m)] if k in position] for j, m in enumerate(members)}
    keep = [j for j in range(len(members)) if sub[j]]
    if len(keep) < 3:
        return result
    if len(keep) < len(members):
        members = members[keep]
        position = {int(m): j for j, m in enumerate(members)}
        sub = {
            j: [position[k] for k in near[int(m)] if k in position] for j, m in enumerate(members)
        }
    y = values[members].astype(np.float64)
    if float(np.ptp(y)) == 0.0:
        return result  # a flat field has no hot spot and no outlier
    gi_z, gi_p, moran_i, quadrant, hl_p = _esda(sub, y, settings)
    result.gi_z[members] = gi_z
    result.gi_p[members] = gi_p
    result.moran_i[members] = moran_i
    result.moran_quadrant[members] = quadrant
    result.high_low_p[members] = hl_p
    return result


def _esda(
    adjacency: dict[int, list[int]], y: FloatArray, settings: AnalysisSettings
) -> tuple[FloatArray, FloatArray, FloatArray, IntArray, FloatArray]:
    import esda
    from libpysal.weights import W

    weights = W(adjacency, silence_warnings=True)
    permutations = settings.spatial_permutations
    with warnings.catch_warnings():
        # esda 2.x announces a future change of the default alternative for conditional
        # randomisation; we use the permutation z-scores and choose the side ourselves.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"esda(\..*)?")
        warnings.filterwarnings("ignore", message=".*alternative hypothesis.*")
        # G_Local with star=True builds its own weights (the diagonal filled in) without
        # silence_warnings, which warns about disconnected components; streets patrolled in
        # separate stretches are exactly that, as `weights` above already says silently.
        warnings.filterwarnings(
            "ignore", message="The weights matrix is not fully connected", category=UserWarning
        )
        gi = esda.G_Local(
            y - y.min() + 1.0,
            weights,
            transform="B",
            star=True,
            permutations=0,
            n_jobs=1,
            seed=settings.seed,
        )
        weights.transform = "r"
        moran = esda.Moran_Local(
            y,
            weights,
            transformation="r",
            permutations=permutations,
            n_jobs=1,
            seed=settings.seed,
        )
    gi_z = np.asarray(gi.Zs, dtype=np.float64)
    if permutations > 0:
        moran_z = np.asarray(moran.z_sim, dtype=np.float64)
    else:
        moran_z = (np.asarray(moran.Is) - moran.EI) / np.sqrt(np.asarray(moran.VI))
    quadrant = np.asarray(moran.q, dtype=np.int64)
    gi_p = 1.0 - ndtr(gi_z)
    hl_p = np.where(quadrant == HIGH_LOW, ndtr(moran_z), 1.0)
    return gi_z, gi_p, np.asarray(moran.Is, dtype=np.float64), quadrant, hl_p
