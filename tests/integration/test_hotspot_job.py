"""The hotspot job on the real PostgreSQL: passes stored by the ingest's pass store, one run of
`detect` over a window, its results written and read back through hotspots.results."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
import numpy as np
import psycopg
import pytest

from hotspots.analysis.detect import detect
from hotspots.analysis.passes import PassTable
from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.synthetic import (
    SHUANGJING,
    Source,
    SyntheticWorld,
    as_stored,
    distance_m,
    generate,
    offset,
)
from hotspots.cli import analyse_command
from hotspots.job import JobSettings, run_once, run_periodically, serve_pending
from hotspots.pass_reader import read_passes
from hotspots.results import HotspotFilter, hotspots, latest_run
from ingest import pass_store
from store.analysis_meta import read_analysis
from store.conditions import BBox

pytestmark = pytest.mark.integration

SOURCE = offset(SHUANGJING, -125.0, 125.0)  # on a street of the synthetic grid


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def world(resolution: int) -> SyntheticWorld:
    return SyntheticWorld(
        resolution=resolution,
        vehicles=2,
        days=12,
        trips_per_day=2,
        pollutants=("pm25", "noise"),
        sources=(Source(*SOURCE, "pm25", 40.0, 40.0),),
        seed=4,
    )


def store(conn: psycopg.Connection[Any], table: PassTable, resolution: int) -> None:
    with conn.transaction(), conn.cursor() as cur:
        pass_store.store(cur, resolution, as_stored(table))


def test_job_writes_what_detect_finds_and_the_api_reads_it_back(
    conn: psycopg.Connection[Any],
) -> None:
    resolution = read_analysis(conn).resolution
    table = generate(world(resolution))
    store(conn, table, resolution)
    end = datetime.fromtimestamp(float(table.end.max()), UTC) + timedelta(hours=1)
    assert latest_run(conn) is None
    assert hotspots(conn) == (None, [])

    summary = run_once(conn, JobSettings(window=timedelta(days=30)), now=end)
    assert summary.passes == len(table)
    assert summary.vehicles == 2
    assert summary.resolution == resolution

    # The stored passes come back as the same pass table, and the job's results are detect's.
    read = read_passes(conn, resolution, end - timedelta(days=30), end, ["pm25", "noise"])
    assert len(read) == len(table)
    assert np.allclose(np.sort(read.values["pm25"]), np.sort(table.values["pm25"]))
    expected = detect(table, AnalysisSettings())
    run, found = hotspots(conn)
    assert run is not None
    assert run.id == summary.run_id
    assert run.hotspots == len(expected) == len(found)
    assert run.settings["resolution"] == resolution
    assert [(h.pollutant, h.stratum, h.label, h.peak_cell) for h in found] == [
        (h.pollutant, h.stratum, h.label.value, h.peak_cell) for h in expected
    ]

    # The injected source is on the list, with its evidence and cells.
    pm25 = hotspots(conn, HotspotFilter(pollutant="pm25", stratum="all_day"))[1]
    assert pm25
    top = pm25[0]
    assert float(distance_m(np.array([top.lat]), np.array([top.lon]), *SOURCE)[0]) < 75.0
    assert top.reasons
    assert all("code" in r for r in top.reasons)
    assert top.peak_cell in {cell for cell, _ in top.cells}
    assert h3.get_resolution(top.peak_cell) == resolution
    assert top.geometry["type"] in ("Polygon", "MultiPolygon")
    assert top.passes >= 8
    assert top.days >= 4
    assert top.drives
    assert top.first_seen <= top.last_seen
    assert top.band is not None
    assert top.band["indicative"] is True
    low, high = top.enhancement_interval
    assert low is not None
    assert high is not None
    assert low <= top.enhancement <= high

    # Filters.
    assert all(h.pollutant == "pm25" for h in pm25)
    assert hotspots(conn, HotspotFilter(min_passes=10_000))[1] == []
    assert hotspots(conn, HotspotFilter(pollutant="no2"))[1] == []
    persistent = hotspots(conn, HotspotFilter(labels=["persistent"]))[1]
    assert all(h.label == "persistent" for h in persistent)
    far = BBox(west=0.0, south=0.0, east=1.0, north=1.0)
    assert hotspots(conn, HotspotFilter(bbox=far))[1] == []
    near = BBox(SOURCE[1] - 0.002, SOURCE[0] - 0.002, SOURCE[1] + 0.002, SOURCE[0] + 0.002)
    assert top.rank in {h.rank for h in hotspots(conn, HotspotFilter(bbox=near))[1]}

    # A second run becomes the latest; keep_runs prunes the first with its hotspots and cells.
    second = run_once(conn, JobSettings(window=timedelta(days=30), keep_runs=1), now=end)
    assert second.run_id != summary.run_id
    latest = latest_run(conn)
    assert latest is not None
    assert latest.id == second.run_id
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM hotspot_run), "
        "(SELECT count(*) FROM hotspot WHERE run_id = %s), "
        "(SELECT count(*) FROM hotspot_cell WHERE run_id = %s)",
        (summary.run_id, summary.run_id),
    ).fetchone()
    assert counts == (1, 0, 0)


def test_an_empty_window_writes_an_empty_run(conn: psycopg.Connection[Any]) -> None:
    summary = run_once(conn, JobSettings(), now=datetime(2026, 1, 1, tzinfo=UTC))
    assert (summary.passes, summary.hotspots) == (0, 0)
    run, found = hotspots(conn)
    assert run is not None
    assert run.id == summary.run_id
    assert found == []


def test_analyse_once_from_the_command_line(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENVPATROL_DATABASE_URL", database_url)
    parser = argparse.ArgumentParser()
    run = analyse_command(parser)
    assert run(parser.parse_args(["--once", "--window-days", "7"])) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["passes"] == 0
    with psycopg.connect(database_url) as conn:
        latest = latest_run(conn)
    assert latest is not None
    assert latest.id == printed["run"]
    assert latest.window_end - latest.window_start == timedelta(days=7)
    assert run(parser.parse_args(["--once", "--window-days", "0"])) == 2


def test_periodic_mode_runs_until_stopped(database_url: str) -> None:
    stop = threading.Event()

    def connect() -> psycopg.Connection[Any]:
        stop.set()  # the run in progress completes; no further run starts
        return psycopg.connect(database_url)

    assert run_periodically(connect, JobSettings(interval=timedelta(hours=1)), stop) == 1
    with psycopg.connect(database_url) as conn:
        assert latest_run(conn) is not None


def test_a_failed_run_does_not_end_the_periodic_mode(database_url: str) -> None:
    stop = threading.Event()
    calls: list[int] = []

    def connect() -> psycopg.Connection[Any]:
        calls.append(1)
        if len(calls) == 1:
            raise psycopg.OperationalError("the database is restarting")
        stop.set()
        return psycopg.connect(database_url)

    job = JobSettings(interval=timedelta(milliseconds=1))
    assert run_periodically(connect, job, stop) == 1
    assert len(calls) == 2


def test_the_schedule_runs_over_the_window_its_end_chooses(database_url: str) -> None:
    stop = threading.Event()
    ends = iter([None, datetime(2025, 3, 10, tzinfo=UTC)])

    def end(_conn: psycopg.Connection[Any]) -> datetime | None:
        chosen = next(ends)
        if chosen is not None:
            stop.set()  # the run at this end is the last
        return chosen

    job = JobSettings(window=timedelta(days=7), interval=timedelta(milliseconds=1))
    # No end yet (nothing stored, say): no run; then one run over the window ending there.
    assert run_periodically(lambda: psycopg.connect(database_url), job, stop, end=end) == 1
    with psycopg.connect(database_url) as conn:
        latest = latest_run(conn)
    assert latest is not None
    assert latest.window_end == datetime(2025, 3, 10, tzinfo=UTC)
    assert latest.window_start == datetime(2025, 3, 3, tzinfo=UTC)


def test_officers_requests_are_served_between_scheduled_runs(database_url: str) -> None:
    from hotspots.run_requests import one, request_run

    end = datetime(2025, 3, 10, tzinfo=UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        asked = request_run(conn, end - timedelta(days=7), end, "officer")
    stop = threading.Event()
    served: list[int] = []
    job = JobSettings(interval=timedelta(hours=1))

    def serve(conn: psycopg.Connection[Any]) -> None:
        served.extend(r.id for r in serve_pending(conn, job))
        if len(served) or len(calls) > 3:
            stop.set()

    calls: list[int] = []

    def connect() -> psycopg.Connection[Any]:
        calls.append(1)
        return psycopg.connect(database_url, autocommit=True)

    assert run_periodically(connect, job, stop, between=serve, poll_s=0.01) == 1
    assert served == [asked.id]
    with psycopg.connect(database_url) as conn:
        answered = one(conn, asked.id)
    assert answered is not None
    assert answered.status == "done"
    assert answered.run_id is not None
