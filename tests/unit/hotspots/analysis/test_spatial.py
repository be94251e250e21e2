from __future__ import annotations

import warnings

import h3
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.spatial import (
    HIGH_LOW,
    Neighbourhood,
    gi_star_z,
    local_moran,
    neighbours,
    ring_count,
    spatial_tests,
)

CENTRE = h3.latlng_to_cell(39.893, 116.462, 11)


def _disk(radius: int) -> np.ndarray:
    return np.array(sorted(h3.str_to_int(c) for c in h3.grid_disk(CENTRE, radius)), dtype=np.int64)


def test_band_to_rings() -> None:
    assert ring_count(11, 150.0) == 3  # centre spacing ~49.6 m
    assert ring_count(10, 150.0) == 1  # ~131 m
    assert ring_count(11, 10.0) == 1


def test_neighbours_are_symmetric_and_exclude_self() -> None:
    cells = _disk(2)
    near = neighbours(cells, 1)
    for i, js in near.items():
        assert i not in js
        for j in js:
            assert i in near[j]
    centre = int(np.flatnonzero(cells == h3.str_to_int(CENTRE))[0])
    assert len(near[centre]) == 6


def _field(seed: int = 1) -> tuple[np.ndarray, np.ndarray, int]:
    cells = _disk(8)
    y = np.random.default_rng(seed).normal(0, 1, len(cells))
    centre = int(np.flatnonzero(cells == h3.str_to_int(CENTRE))[0])
    return cells, y, centre


def test_a_hot_cluster_has_a_high_gi_star() -> None:
    cells, y, centre = _field()
    hot = {h3.str_to_int(c) for c in h3.grid_disk(CENTRE, 2)}
    y[np.isin(cells, list(hot))] += 6.0
    result = spatial_tests(cells, y, AnalysisSettings(spatial_permutations=99))
    assert result.gi_z[centre] > 5
    assert result.gi_p[centre] < 1e-6
    assert np.nanmedian(result.gi_z) < 1


def test_gi_star_does_not_depend_on_a_shift() -> None:
    cells, y, _ = _field()
    s = AnalysisSettings(spatial_permutations=0)
    a = spatial_tests(cells, y, s)
    b = spatial_tests(cells, y - 1000.0, s)  # esda's G flips sign on a negative sum
    np.testing.assert_allclose(a.gi_z, b.gi_z, atol=1e-8)


def test_an_isolated_hot_cell_among_low_ones_is_a_high_low_outlier() -> None:
    cells, y, centre = _field()
    y = y * 0.1
    y[centre] = 10.0
    near = np.isin(cells, [h3.str_to_int(c) for c in h3.grid_disk(CENTRE, 3)])
    y[near & (np.arange(len(cells)) != centre)] -= 1.0
    result = spatial_tests(cells, y, AnalysisSettings(spatial_permutations=199))
    assert result.moran_quadrant[centre] == HIGH_LOW
    assert result.high_low_p[centre] < 0.01


def test_flat_field_and_islands_give_nothing() -> None:
    cells, _, _ = _field()
    flat = spatial_tests(cells, np.ones(len(cells)), AnalysisSettings())
    assert np.isnan(flat.gi_z).all()
    far = np.array(
        [h3.str_to_int(h3.latlng_to_cell(39.9 + i * 0.01, 116.4, 11)) for i in range(5)],
        dtype=np.int64,
    )
    islands = spatial_tests(far, np.arange(5.0), AnalysisSettings())
    assert np.isnan(islands.gi_p).all()
    assert (islands.moran_quadrant == 0).all()


def test_cell_order_does_not_matter() -> None:
    cells, y, _ = _field(3)
    s = AnalysisSettings(spatial_permutations=0)
    a = spatial_tests(cells, y, s)
    perm = np.random.default_rng(0).permutation(len(cells))
    b = spatial_tests(cells[perm], y[perm], s)
    np.testing.assert_allclose(a.gi_z[perm], b.gi_z, atol=1e-9)
    np.testing.assert_array_equal(a.moran_quadrant[perm], b.moran_quadrant)
    assert a.moran_i[perm] == pytest.approx(b.moran_i)


def test_two_separate_stretches_give_no_warning() -> None:
    """Streets patrolled in separate stretches make a graph of several components: normal
    here, so no warning (under the test settings a warning is an error, and in the hotspot
    job's thread it would have ended the job)."""
    west = [h3.latlng_to_cell(39.893, 116.440 + i * 0.0004, 11) for i in range(12)]
    east = [h3.latlng_to_cell(39.893, 116.480 + i * 0.0004, 11) for i in range(12)]
    cells = np.array(sorted({h3.str_to_int(c) for c in west + east}), dtype=np.int64)
    y = np.random.default_rng(1).normal(10.0, 1.0, len(cells))
    result = spatial_tests(cells, y, AnalysisSettings(spatial_permutations=99))
    assert np.isfinite(result.gi_z).all()


def _esda_reference(
    sub: list[list[int]], y: np.ndarray, permutations: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gi* z, local Moran's I, its quadrant and permutation z as PySAL's esda computes them."""
    import esda
    from libpysal.weights import W

    weights = W(dict(enumerate(sub)), silence_warnings=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gi = esda.G_Local(
            y - y.min() + 1.0, weights, transform="B", star=True, permutations=0, seed=seed
        )
        weights.transform = "r"
        moran = esda.Moran_Local(
            y, weights, transformation="r", permutations=permutations, n_jobs=1, seed=seed
        )
    return (
        np.asarray(gi.Zs, dtype=float),
        np.asarray(moran.Is, dtype=float),
        np.asarray(moran.q, dtype=int),
        np.asarray(moran.z_sim, dtype=float),
    )


@hypothesis_settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.integers(1, 3),
    st.sampled_from(["normal", "skewed", "ties"]),
)
def test_gi_star_and_local_moran_agree_with_esda_on_random_fields(
    seed: int, rings: int, kind: str
) -> None:
    rng = np.random.default_rng(seed)
    disk = sorted(h3.str_to_int(c) for c in h3.grid_disk(CENTRE, 6))
    # a street-like subset: the cells a patrol passes are a sparse part of the disk
    cells = np.array([c for c in disk if rng.random() < 0.6], dtype=np.int64)
    if kind == "normal":
        y = rng.normal(0.0, 1.0, len(cells))
    elif kind == "skewed":
        y = rng.lognormal(0.0, 1.0, len(cells))
    else:
        y = rng.integers(0, 4, len(cells)).astype(float)
    near = neighbours(cells, rings)
    members = [i for i in range(len(cells)) if near[i]]
    assume(len(members) >= 5 and float(np.ptp(y[members])) > 0)
    position = {m: j for j, m in enumerate(members)}
    sub = [[position[k] for k in near[m] if k in position] for m in members]
    assume(all(sub))
    graph = Neighbourhood.of(sub)
    ours_gi = gi_star_z(graph, y[members])
    ours = local_moran(graph, y[members], 199, seed % 10_000)
    gi_z, moran_i, quadrant, moran_z = _esda_reference(sub, y[members], 199, seed % 10_000)
    finite = np.isfinite(gi_z)
    assert np.allclose(ours_gi[finite], gi_z[finite], rtol=1e-6, atol=1e-9)
    assert np.allclose(ours.i, moran_i, rtol=1e-9, atol=1e-12)
    # On a quadrant's edge (a value or a neighbour mean exactly at the mean, as tied values give)
    # the side is a matter of rounding.
    z = y[members] - y[members].mean()
    lag = graph.sums(z) / graph.cardinality
    clear = (np.abs(z) > 1e-9) & (np.abs(lag) > 1e-9)
    assert (ours.quadrant[clear] == quadrant[clear]).all()
    spread = np.isfinite(moran_z)
    assert np.allclose(ours.z[spread], moran_z[spread], rtol=1e-6, atol=1e-6)
