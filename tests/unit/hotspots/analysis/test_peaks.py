"""Splitting a cluster of labelled cells at its saddles (hotspots.analysis.peaks).

The merge tree and the drainage are checked on small graphs; the whole detector on synthetic
street grids with sources of one pollutant: pairs, single points, lines, and null fields.

The worlds add each source's field where the street crosses a cell (the mean of the street's
points inside it) rather than at the cell's centre, as `synthetic.generate` does: a pass is
measured on the street, and a centre up to half a cell off a line source would show dips along
the line that a vehicle never sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from unittest import mock

import h3
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hotspots.analysis import detect as detect_module
from hotspots.analysis.cellstats import CellTable, cell_table
from hotspots.analysis.detect import Hotspot, detect
from hotspots.analysis.grouping import FloatArray, IntArray
from hotspots.analysis.passes import PassTable
from hotspots.analysis.peaks import (
    cell_spread,
    drain,
    split,
    standing_peaks,
    terrain,
)
from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.synthetic import (
    SHUANGJING,
    Source,
    SyntheticWorld,
    distance_m,
    generate,
    match,
    offset,
)

# The worlds have no sensor lag. Persistent (rather than candidate) rests on the spatial tests,
# which change a label but never which cells are labelled, so they are left out here.
SETTINGS = AnalysisSettings(pass_lag=False, confirmed_min_passes=1_000_000)
NOISE = 3.0  # pass noise of PM2.5 in the synthetic world: the sigma of the source strengths
STREET_STEP_M = 5.0


def _path(n: int) -> list[tuple[int, ...]]:
    return [tuple(j for j in (i - 1, i + 1) if 0 <= j < n) for i in range(n)]


# ---------------------------------------------------------------- the merge tree


def test_a_deep_dip_keeps_two_peaks_and_a_shallow_one_does_not() -> None:
    links = _path(5)
    se = np.full(5, 0.5)
    deep = np.array([1.0, 9.0, 1.0, 7.0, 1.0])
    assert standing_peaks(links, deep, se, 1.0) == {1: 1, 3: 3}
    shallow = np.array([1.0, 9.0, 6.5, 7.0, 1.0])
    assert standing_peaks(links, shallow, se, 1.0) == {1: 1, 3: 1}
    # the same dip, but the passes too few to tell it from noise
    assert standing_peaks(links, deep, np.full(5, 3.0), 1.0) == {1: 1, 3: 1}
    # ... or too small to matter in the field
    assert standing_peaks(links, deep, se, 6.5) == {1: 1, 3: 1}


def test_cells_drain_to_the_peak_on_their_side_of_the_saddle() -> None:
    excess = np.array([1.0, 9.0, 4.0, 2.0, 5.0, 7.0, 3.0])
    assert drain(_path(7), excess).tolist() == [1, 1, 1, 5, 5, 5, 5]


def test_a_peak_that_joins_a_lower_one_first_is_judged_at_the_higher_saddle() -> None:
    # 0..6: peaks at 1 (10), 3 (6) and 5 (9); saddles 2 (5.5) and 4 (2). Peak 3 meets peak 1 at
    # 5.5 (prominence 0.5: part of peak 1); peak 5 meets them at 2 (prominence 7: stands).
    excess = np.array([0.0, 10.0, 5.5, 6.0, 2.0, 9.0, 0.0])
    assert standing_peaks(_path(7), excess, np.full(7, 0.5), 1.0) == {1: 1, 3: 1, 5: 5}


def test_a_graph_in_pieces_is_one_place() -> None:
    links: list[tuple[int, ...]] = [(1,), (0,), (3,), (2,)]
    excess = np.array([5.0, 1.0, 1.0, 4.0])
    assert standing_peaks(links, excess, np.full(4, 0.1), 0.0) == {0: 0, 3: 0}


def _graphs() -> st.SearchStrategy[tuple[list[tuple[int, ...]], FloatArray, FloatArray]]:
    """Connected graphs (a random spanning tree plus extra links) with excesses and errors."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[list[tuple[int, ...]], FloatArray, FloatArray]:
        n = draw(st.integers(1, 12))
        edges = {(draw(st.integers(0, i - 1)), i) for i in range(1, n)}
        for _ in range(draw(st.integers(0, n))):
            a, b = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
            if a != b:
                edges.add((min(a, b), max(a, b)))
        links = [tuple(sorted({b for a, b in edges if a == i} | {a for a, b in edges if b == i}))
                 for i in range(n)]  # fmt: skip
        # quarters: sums stay exact, and ties are common
        quarters = draw(st.lists(st.integers(-80, 80), min_size=n, max_size=n))
        excess = np.array(quarters, dtype=np.float64) / 4.0
        se = np.array(draw(st.lists(st.floats(0.01, 3.0), min_size=n, max_size=n)))
        return links, excess, se

    return build()


def _local_maxima(links: list[tuple[int, ...]], excess: FloatArray) -> set[int]:
    top = drain(links, excess)
    return {int(t) for t in top}


@settings(max_examples=200, deadline=None)
@given(_graphs(), st.floats(0.0, 5.0), st.floats(0.0, 10.0))
def test_merge_tree_properties(
    graph: tuple[list[tuple[int, ...]], FloatArray, FloatArray], z: float, floor: float
) -> None:
    links, excess, se = graph
    belongs = standing_peaks(links, excess, se, floor, z)
    maxima = _local_maxima(links, excess)
    # every local maximum is judged, and belongs to a standing peak at least as high
    assert set(belongs) == maxima
    standing = set(belongs.values())
    assert all(belongs[p] == p for p in standing)
    assert all(excess[belongs[p]] >= excess[p] for p in belongs)
    # the highest cell always stands
    highest = int(np.lexsort((np.arange(len(excess)), -excess))[0])
    assert belongs[highest] == highest
    # a stricter test never keeps more peaks
    assert len(set(standing_peaks(links, excess, se, floor, z + 1.0).values())) <= len(standing)
    assert len(set(standing_peaks(links, excess, se, floor, z, 0.5).values())) <= len(standing)
    # the units do not matter; without the share of the excess, neither does the reference
    assert standing_peaks(links, excess * 2.0, se * 2.0, floor * 2.0, z) == belongs
    absolute = standing_peaks(links, excess, se, floor, z, 0.0)
    assert standing_peaks(links, excess + 7.5, se, floor, z, 0.0) == absolute
    # a field flatter than the test leaves one place
    flat = excess * 0.0 + (excess - excess.min()) * 1e-3
    assert len(set(standing_peaks(links, flat, se + 1.0, max(floor, 1.0), z).values())) == 1


@settings(max_examples=100, deadline=None)
@given(_graphs())
def test_drainage_climbs(graph: tuple[list[tuple[int, ...]], FloatArray, FloatArray]) -> None:
    links, excess, _ = graph
    top = drain(links, excess)
    for v, t in enumerate(top.tolist()):
        assert excess[t] >= excess[v]
        # a cell drains where its highest higher neighbour drains
        higher = [u for u in links[v] if (excess[u], -u) > (excess[v], -v)]
        if higher:
            assert t == top[max(higher, key=lambda u: (excess[u], -u))]
        else:
            assert t == v


# ---------------------------------------------------------------- the terrain

A = h3.latlng_to_cell(*SHUANGJING, 11)


def _ints(cells: list[str]) -> IntArray:
    return np.array(sorted(h3.str_to_int(c) for c in cells), dtype=np.int64)


def _table_of(
    cells: list[str], excess: list[float], passes: int = 20
) -> tuple[PassTable, list[str]]:
    """Passes of the given cells, `passes` each, whose median excess is the given one."""
    order = np.argsort([h3.str_to_int(c) for c in cells])
    cells = [cells[i] for i in order]
    excess = [excess[i] for i in order]
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 1.0, passes)
    noise -= np.median(noise)
    values = np.concatenate([x + noise for x in excess])
    n = len(values)
    table = PassTable(
        vehicles=("car",),
        vehicle=np.zeros(n, dtype=np.int64),
        cell=np.repeat([h3.str_to_int(c) for c in cells], passes).astype(np.int64),
        start=np.arange(n, dtype=np.float64) * 60.0,
        end=np.arange(n, dtype=np.float64) * 60.0 + 30.0,
        values={"pm25": values},
        counts={"pm25": np.ones(n, dtype=np.int64)},
    )
    return table, cells


def _cells(table: PassTable, e: np.ndarray | None = None) -> CellTable:
    """The all-day cell table of the passes' PM2.5 (or of the excesses `e`)."""
    e = table.values["pm25"] if e is None else e
    return cell_table(
        "pm25",
        "all_day",
        table.cell,
        table.vehicle,
        np.zeros(len(table), dtype=np.int64),
        table.start,
        table.end,
        e,
        e,
        0.0,
        False,
        SETTINGS,
    )


def test_a_missing_cell_between_two_flanks_does_not_separate_them() -> None:
    far = h3.grid_path_cells(A, h3.grid_ring(A, 2)[0])
    flank_a, flank_b = far[0], far[-1]
    assert h3.grid_distance(flank_a, flank_b) == 2
    table, _ = _table_of([flank_a, flank_b], [10.0, 6.0])
    cells = _cells(table)
    land = terrain(cells, [0, 1], 2)
    assert land.links == ((1,), (0,))  # no cell with passes between: linked directly
    assert split(cells, [[0, 1]], table.cell, table.values["pm25"], 2) == [[0, 1]]


def test_a_low_cell_with_passes_between_two_peaks_splits_them() -> None:
    path = h3.grid_path_cells(A, h3.grid_ring(A, 2)[0])
    table, cells_sorted = _table_of(list(path), [30.0, 2.0, 25.0])
    cells = _cells(table)
    peaks = [cells_sorted.index(path[0]), cells_sorted.index(path[2])]
    land = terrain(cells, peaks, 2)
    # the cell between joins the terrain
    assert len(land) == 3
    assert sum(land.labelled) == 2
    pieces = split(cells, [peaks], table.cell, table.values["pm25"], 2)
    assert sorted(pieces) == sorted([[peaks[0]], [peaks[1]]])
    # raised to the level of the peaks, the cell between joins them into one place
    table, _ = _table_of(list(path), [30.0, 24.0, 25.0])
    cells = _cells(table)
    pieces = split(cells, [peaks], table.cell, table.values["pm25"], 2)
    assert pieces == [sorted(peaks)]


def test_cell_spread_is_the_robust_sigma_of_each_cells_passes() -> None:
    cell = np.array([5, 5, 5, 9, 9, 9, 9], dtype=np.int64)
    value = np.array([0.0, 1.0, 2.0, 4.0, 4.0, 4.0, 100.0])
    spread = cell_spread(np.array([9, 5, 7], dtype=np.int64), cell, value)
    assert spread.tolist() == [0.0, 1.4826, 0.0]


# ---------------------------------------------------------------- whole worlds


def _world(resolution: int, seed: int) -> SyntheticWorld:
    # NS streets at east -250, 0, 250 m (750 m long), EW streets at north -375, -125, 125, 375 m;
    # two vehicles, one trip a day for ten days: 20 passes through every street cell.
    return SyntheticWorld(
        resolution=resolution, streets_ns=3, streets_ew=4, days=10, trips_per_day=1, seed=seed
    )


def _street_points(world: SyntheticWorld) -> dict[int, tuple[float, float]]:
    """Per cell crossed by a street: the mean of the street's points inside it."""
    half_ns = (world.streets_ns - 1) * world.street_spacing_m / 2
    half_ew = (world.streets_ew - 1) * world.street_spacing_m / 2
    points: list[tuple[float, float]] = []
    for i in range(world.streets_ns):
        east = -half_ns + i * world.street_spacing_m
        points += [(east, n) for n in np.arange(-half_ew, half_ew + 1e-9, STREET_STEP_M)]
    for j in range(world.streets_ew):
        north = -half_ew + j * world.street_spacing_m
        points += [(e, north) for e in np.arange(-half_ns, half_ns + 1e-9, STREET_STEP_M)]
    sums: dict[int, list[float]] = {}
    for east, north in points:
        lat, lon = offset(world.origin, float(east), float(north))
        cell = h3.str_to_int(h3.latlng_to_cell(lat, lon, world.resolution))
        acc = sums.setdefault(cell, [0.0, 0.0, 0.0])
        acc[0] += lat
        acc[1] += lon
        acc[2] += 1
    return {c: (a[0] / a[2], a[1] / a[2]) for c, a in sums.items()}


def _on_street(world: SyntheticWorld, emitters: list[Source]) -> PassTable:
    """The world's passes with the emitters' fields added where each pass's cell meets a
    street (always on)."""
    table = generate(world)
    where = _street_points(world)
    cells = np.unique(table.cell)
    lat = np.array([where[int(c)][0] for c in cells])
    lon = np.array([where[int(c)][1] for c in cells])
    field = np.zeros(len(cells))
    for e in emitters:
        field += e.amplitude * np.exp(-distance_m(lat, lon, e.lat, e.lon) / e.decay_m)
    added = field[np.searchsorted(cells, table.cell)]
    return replace(table, values={"pm25": table.values["pm25"] + added})


def _street_cell_point(world: SyntheticWorld, north: float) -> tuple[float, float]:
    """Where the NS street at east 0 crosses the cell holding the point `north` m along it."""
    cell = h3.latlng_to_cell(*offset(world.origin, 0.0, north), world.resolution)
    return _street_points(world)[h3.str_to_int(cell)]


def _smeared(at: tuple[float, float], amplitude: float, decay: float, half: float) -> list[Source]:
    """A point source as a moving box sees it: its plume spread over +-half m along the street,
    with `amplitude` at the source."""
    spots = np.linspace(-half, half, 9) if half > 0 else np.zeros(1)
    weight = float(np.exp(-np.abs(spots) / decay).sum())
    return [Source(*offset(at, 0.0, float(s)), "pm25", amplitude / weight, decay) for s in spots]


def _line(north: float, length: float, amplitude: float, decay: float) -> list[Source]:
    """A line source along the NS street at east 0, uniform, reaching `amplitude` mid-line."""
    spots = np.arange(0.0, length + 1e-9, STREET_STEP_M)
    weight = float(np.exp(-np.abs(spots - length / 2) / decay).sum())
    return [
        Source(*offset(SHUANGJING, 0.0, north + float(s)), "pm25", amplitude / weight, decay)
        for s in spots
    ]


def _unsplit(table: PassTable) -> list[Hotspot]:
    """The detector's hotspots with every cluster left whole."""

    def whole(_: CellTable, groups: Sequence[Sequence[int]], *__: object) -> list[list[int]]:
        return [sorted(g) for g in groups]

    with mock.patch.object(detect_module, "split", whole):
        return detect(table, SETTINGS, ("pm25",))


def _off_by(spot: Hotspot, at: tuple[float, float]) -> float:
    return float(distance_m(np.array([spot.lat]), np.array([spot.lon]), *at)[0])


@settings(max_examples=6, deadline=None)
@given(
    resolution=st.sampled_from((10, 11)),
    seed=st.integers(0, 10_000),
    gap=st.floats(250.0, 400.0),
    start=st.floats(-360.0, -30.0),
    sigmas=st.tuples(st.floats(5.0, 30.0), st.floats(5.0, 30.0)),
    decay=st.floats(20.0, 45.0),
    smear=st.floats(0.0, 40.0),
)
def test_two_sources_250_m_apart_are_two_hotspots(
    resolution: int,
    seed: int,
    gap: float,
    start: float,
    sigmas: tuple[float, float],
    decay: float,
    smear: float,
) -> None:
    world = _world(resolution, seed)
    a = _street_cell_point(world, start)
    b = _street_cell_point(world, start + gap)
    assume(float(distance_m(np.array([a[0]]), np.array([a[1]]), *b)[0]) >= 250.0)
    emitters = _smeared(a, sigmas[0] * NOISE, decay, smear)
    emitters += _smeared(b, sigmas[1] * NOISE, decay, smear)
    table = _on_street(world, emitters)
    found = detect(table, SETTINGS, ("pm25",))
    truth = [Source(*a, "pm25", 1.0), Source(*b, "pm25", 1.0)]
    assert match([(h.lat, h.lon) for h in found], truth).true_positives == 2
    # at most the one cluster that held both became two hotspots (anything else the detector
    # finds elsewhere is found without splitting too)
    assert len(found) - len(_unsplit(table)) <= 1


@settings(max_examples=6, deadline=None)
@given(
    resolution=st.sampled_from((10, 11)),
    seed=st.integers(0, 10_000),
    north=st.floats(-300.0, 300.0),
    sigma=st.floats(3.0, 30.0),
    decay=st.floats(20.0, 100.0),
    smear=st.floats(0.0, 60.0),
)
def test_a_single_source_is_not_split(
    resolution: int, seed: int, north: float, sigma: float, decay: float, smear: float
) -> None:
    at = offset(SHUANGJING, 0.0, north)
    table = _on_street(_world(resolution, seed), _smeared(at, sigma * NOISE, decay, smear))
    found = detect(table, SETTINGS, ("pm25",))
    assert found == _unsplit(table)  # no cluster was split
    assert not found or min(_off_by(h, at) for h in found) <= 75.0


@settings(max_examples=6, deadline=None)
@given(
    resolution=st.sampled_from((10, 11)),
    seed=st.integers(0, 10_000),
    start=st.floats(-330.0, 30.0),
    length=st.floats(100.0, 300.0),
    sigma=st.floats(3.0, 30.0),
    decay=st.floats(20.0, 45.0),
)
def test_a_line_source_is_not_split(
    resolution: int, seed: int, start: float, length: float, sigma: float, decay: float
) -> None:
    table = _on_street(_world(resolution, seed), _line(start, length, sigma * NOISE, decay))
    found = detect(table, SETTINGS, ("pm25",))
    assert found == _unsplit(table)  # no cluster was split
    middle = offset(SHUANGJING, 0.0, start + length / 2)
    assert not found or min(_off_by(h, middle) for h in found) <= length / 2 + 75.0


@settings(max_examples=6, deadline=None)
@given(resolution=st.sampled_from((10, 11)), seed=st.integers(0, 10_000))
def test_noise_on_a_plateau_never_splits_it(resolution: int, seed: int) -> None:
    # A null world with every cell of one street taken as one labelled cluster: its median
    # excesses are pure noise around one level, which must stay one piece.
    world = _world(resolution, seed)
    table = generate(world)
    e = table.values["pm25"] - np.median(table.values["pm25"])
    cells = _cells(table, e)
    street = {h3.str_to_int(h3.latlng_to_cell(*offset(SHUANGJING, 0.0, n), resolution))
              for n in np.arange(-375.0, 375.0, STREET_STEP_M)}  # fmt: skip
    rows = [i for i, c in enumerate(cells.cell.tolist()) if c in street]
    assert split(cells, [rows], table.cell, e, SETTINGS.cluster_rings) == [sorted(rows)]
