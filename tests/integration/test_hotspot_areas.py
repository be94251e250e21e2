"""The hotspot job area by area on the real PostgreSQL: the same hotspots whatever the number of
worker processes, and an incremental run equal to a full run over the same passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest

from hotspots.analysis.passes import PassTable
from hotspots.analysis.synthetic import (
    SHUANGJING,
    Source,
    SyntheticWorld,
    as_stored,
    generate,
    offset,
)
from hotspots.area_runs import AreaRunner, AreaSettings
from hotspots.job import JobSettings, run_once
from hotspots.results import hotspots
from ingest import pass_store
from store.analysis_meta import read_analysis

pytestmark = pytest.mark.integration

STREETS = [-375.0 + 250.0 * i for i in range(4)]
# Resolution-8 parents (~0.7 km2) cut the 750 m grid into several areas at resolution 10.
AREAS = AreaSettings(enabled=True, resolution=8, halo_m=400.0)


def world(resolution: int) -> SyntheticWorld:
    return SyntheticWorld(
        resolution=resolution,
        vehicles=2,
        days=10,
        trips_per_day=3,
        pollutants=("pm25", "no2"),
        sources=(
            Source(*offset(SHUANGJING, STREETS[1], 60.0), "pm25", 40.0, 40.0),
            Source(*offset(SHUANGJING, STREETS[2], -200.0), "no2", 30.0, 40.0),
        ),
        seed=5,
    )


def store(conn: psycopg.Connection[Any], table: PassTable, resolution: int) -> None:
    with conn.transaction(), conn.cursor() as cur:
        pass_store.store(cur, resolution, as_stored(table))


def listed(conn: psycopg.Connection[Any], run_id: int) -> list[tuple[Any, ...]]:
    """Every stored figure of a run's hotspots and cells, in rank order."""
    spots = conn.execute(
        "SELECT rank, pollutant, stratum, label, peak_cell, lat, lon, level, excess, passes, "
        "days, p_magnitude, q_magnitude, gi_z, first_seen, last_seen, profile, drives, geometry "
        "FROM hotspot WHERE run_id = %s ORDER BY rank",
        (run_id,),
    ).fetchall()
    cells = conn.execute(
        "SELECT rank, cell, label, passes, median FROM hotspot_cell WHERE run_id = %s "
        "ORDER BY rank, cell",
        (run_id,),
    ).fetchall()
    return [*spots, *cells]


def totals(conn: psycopg.Connection[Any], run_id: int) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT passes, vehicles, hotspots FROM hotspot_run WHERE id = %s", (run_id,)
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_the_number_of_workers_does_not_change_the_hotspots(
    db: psycopg.Connection[Any],
) -> None:
    resolution = read_analysis(db).resolution
    table = generate(world(resolution))
    store(db, table, resolution)
    end = datetime.fromtimestamp(float(table.end.max()), UTC) + timedelta(hours=1)
    runs = []
    for workers in (1, 2):
        job = JobSettings(window=timedelta(days=30), areas=AreaSettings(enabled=True,
            resolution=AREAS.resolution, halo_m=AREAS.halo_m, workers=workers))  # fmt: skip
        with AreaRunner(job.areas) as runner:
            summary = run_once(db, job, now=end, runner=runner)
        assert summary.areas >= 3
        assert summary.passes == len(table)
        runs.append(summary.run_id)
    assert listed(db, runs[0]) == listed(db, runs[1])
    assert totals(db, runs[0]) == totals(db, runs[1])
    assert totals(db, runs[0])[2] >= 2
    # the API's reader sees the newest run whole
    run, found = hotspots(db)
    assert run is not None
    assert run.id == runs[1]
    assert len(found) == totals(db, runs[1])[2]


def test_an_incremental_run_equals_a_full_run(db: psycopg.Connection[Any]) -> None:
    resolution = read_analysis(db).resolution
    table = generate(world(resolution))
    first_end = datetime.fromtimestamp(float(np.quantile(table.start, 0.9)), UTC)
    earlier = table.subset(table.start < first_end.timestamp())
    store(db, earlier, resolution)
    window = timedelta(days=8)  # shorter than the data: passes also leave the window
    job = JobSettings(window=window, areas=AREAS)
    with AreaRunner(job.areas) as runner:
        first = run_once(db, job, now=first_end, runner=runner)
        assert not first.incremental
        # An hour of new passes, one vehicle only: its cells' areas change, not the others.
        hour = (
            (table.start >= first_end.timestamp())
            & (table.start < first_end.timestamp() + 3600)
            & (table.vehicle == 0)
        )
        store(db, table.subset(hour), resolution)
        now = first_end + timedelta(hours=1)
        again = run_once(db, job, now=now, runner=runner)
    assert again.incremental
    assert again.analysed < again.areas
    with AreaRunner(job.areas) as fresh:
        full = run_once(db, job, now=now, runner=fresh)
    assert not full.incremental
    assert listed(db, again.run_id) == listed(db, full.run_id)
    assert totals(db, again.run_id) == totals(db, full.run_id)
