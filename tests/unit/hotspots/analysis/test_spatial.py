from __future__ import annotations

import h3
import numpy as np
import pytest

from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.spatial import HIGH_LOW, neighbours, ring_count, spatial_tests

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
