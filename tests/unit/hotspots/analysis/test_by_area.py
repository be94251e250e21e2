"""The analysis area by area and the merge of the areas' hotspots (hotspots.analysis.by_area)."""

from __future__ import annotations

import h3
import numpy as np

from hotspots.analysis.areas import Partition, halo_rings, plan
from hotspots.analysis.by_area import analyse_area, area_table, detect_by_area, merge
from hotspots.analysis.detect import detect
from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.synthetic import SHUANGJING, Source, SyntheticWorld, generate, match, offset

STREETS = [-375.0 + 250.0 * i for i in range(4)]


def world() -> SyntheticWorld:
    return SyntheticWorld(
        resolution=11,
        vehicles=2,
        days=10,
        trips_per_day=3,
        pollutants=("pm25", "no2"),
        sources=(
            Source(*offset(SHUANGJING, STREETS[1], 60.0), "pm25", 40.0, 40.0),
            Source(*offset(SHUANGJING, -40.0, STREETS[2]), "pm25", 30.0, 40.0),
            Source(*offset(SHUANGJING, STREETS[2], -200.0), "no2", 30.0, 40.0),
        ),
        seed=11,
    )


def boundary_partition(table_cells: np.ndarray) -> Partition:  # type: ignore[type-arg]
    """Resolution-9 parents (~0.1 km2): the 750 m grid spans several, so sources lie near
    boundaries."""
    partition = Partition(9, 11)
    assert len(set(partition.areas_of(table_cells.tolist()).values())) >= 4
    return partition


def test_sources_across_area_boundaries_are_found_once() -> None:
    table = generate(world())
    settings = AnalysisSettings()
    partition = boundary_partition(np.unique(table.cell))
    rings = halo_rings(11, 400.0)
    found = detect_by_area(table, settings, partition, rings)
    for source in world().sources:
        near = [h for h in found if h.pollutant == source.pollutant and h.stratum == "all_day"]
        assert match([(h.lat, h.lon) for h in near], [source]).true_positives == 1
    # no place twice: no two hotspots of one pollutant and stratum share a cell
    for i, a in enumerate(found):
        for b in found[i + 1 :]:
            if (a.pollutant, a.stratum) == (b.pollutant, b.stratum):
                assert not set(a.cells) & set(b.cells)
    # the same sources as the analysis of the whole grid at once
    whole = detect(table, settings)
    for source in world().sources:
        assert (
            match(
                [(h.lat, h.lon) for h in whole if h.pollutant == source.pollutant], [source]
            ).true_positives
            == 1
        )


def test_one_area_holding_everything_is_detect() -> None:
    table = generate(world())
    settings = AnalysisSettings()
    whole = detect(table, settings)
    by_area = detect_by_area(table, settings, Partition(5, 11), halo_rings(11, 400.0))
    assert by_area == whole


def test_the_merge_does_not_depend_on_the_order_of_the_areas() -> None:
    table = generate(world())
    settings = AnalysisSettings()
    partition = boundary_partition(np.unique(table.cell))
    areas = plan(np.unique(table.cell).tolist(), partition, halo_rings(11, 400.0))
    results = [analyse_area(a, area_table(table, a.cells), settings) for a in areas]
    assert merge(results, settings) == merge(results[::-1], settings)
    # each area keeps only hotspots peaked in its own cells
    for area, result in zip(areas, results, strict=True):
        assert all(h3.str_to_int(h.peak_cell) in set(area.own.tolist()) for h in result.hotspots)
    assert sum(r.passes for r in results) == len(table)


def test_an_area_table_does_not_depend_on_what_was_read_with_it() -> None:
    table = generate(world())
    partition = boundary_partition(np.unique(table.cell))
    area = plan(np.unique(table.cell).tolist(), partition, 2)[0]
    alone = area_table(table, area.cells)
    # the same passes read with only the area's cells and one vehicle's other passes
    narrower = table.subset(np.isin(table.cell, area.cells) | (table.vehicle == 1))
    again = area_table(narrower, area.cells)
    assert alone.vehicles == again.vehicles
    for name in ("vehicle", "cell", "start", "end"):
        assert np.array_equal(getattr(alone, name), getattr(again, name))
    assert alone.values.keys() == again.values.keys()
