"""`envpatrol rebuild`: cells, rollups and passes recomputed from the stored positions.

Readings keep their latitude and longitude, so the analysis resolution (and the pass gap) can
change without re-ingesting anything. Everything runs in one transaction: the API sees the old
analysis until the new one is complete. The meta rows are updated first, which makes a running
ingest's next batch wait (it share-locks them) and then continue at the new resolution.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from h3.api import basic_int as h3_int

from edge.quality import STATS_EXCLUDED_FLAGS
from ingest import pass_store
from ingest.writer import rollup_sql
from store.analysis_meta import read_analysis

log = logging.getLogger("envpatrol.ingest.rebuild")

_CHUNK = 20_000


@dataclass(frozen=True, slots=True)
class RebuildReport:
    resolution: int
    pass_gap: timedelta
    readings: int  # positioned readings whose cell was recomputed
    rollups: int
    passes: int
    seconds: float


def rebuild(
    conn: psycopg.Connection[Any],
    resolution: int | None = None,
    pass_gap: timedelta | None = None,
) -> RebuildReport:
    """Recompute reading.cell at `resolution`, then every rollup and pass. None keeps a setting."""
    started = time.monotonic()
    if resolution is not None and not 0 <= resolution <= 15:
        raise ValueError(f"H3 resolutions are 0..15, got {resolution}")
    if pass_gap is not None and pass_gap <= timedelta(0):
        raise ValueError(f"the pass gap must be positive, got {pass_gap}")
    with conn.transaction():
        current = read_analysis(conn)
        resolution = current.resolution if resolution is None else resolution
        pass_gap = current.pass_gap if pass_gap is None else pass_gap
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('h3_resolution', %s), ('pass_gap_s', %s)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (str(resolution), repr(pass_gap.total_seconds())),
        )
        cells = _recompute_cells(conn, resolution)
        log.info("cells recomputed for %d readings at resolution %d", cells, resolution)
        conn.execute("DELETE FROM cell_rollup")
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO cell_rollup"  # type: ignore[arg-type]
                " (resolution, cell, bucket, channel, n, sum, sumsq, min, max, energy_sum)"
                + rollup_sql("reading"),
                {"resolution": resolution, "stats_excluded": list(STATS_EXCLUDED_FLAGS)},
            )
            rollups = cur.rowcount
        passes = pass_store.rebuild_all(conn, resolution, pass_gap)
    seconds = time.monotonic() - started
    return RebuildReport(resolution, pass_gap, cells, rollups, passes, seconds)


def _recompute_cells(conn: psycopg.Connection[Any], resolution: int) -> int:
    conn.execute(
        "CREATE TEMP TABLE rebuild_cell (vehicle text, seq bigint, time timestamptz, cell bigint)"
        " ON COMMIT DROP"
    )
    total = 0
    with (
        conn.cursor(name="envpatrol_positions") as source,
        conn.cursor() as out,
    ):
        source.itersize = _CHUNK
        source.execute(
            "SELECT vehicle, seq, time, lat, lon FROM reading"
            " WHERE fix_valid AND lat IS NOT NULL AND lon IS NOT NULL"
        )
        while rows := source.fetchmany(_CHUNK):
            with out.copy("COPY rebuild_cell (vehicle, seq, time, cell) FROM STDIN") as copy:
                for vehicle, seq, moment, lat, lon in rows:
                    cell = h3_int.latlng_to_cell(lat, lon, resolution)
                    copy.write_row((vehicle, seq, moment, cell))
            total += len(rows)
    conn.execute(
        "UPDATE reading r SET cell = c.cell FROM rebuild_cell c"
        " WHERE r.vehicle = c.vehicle AND r.seq = c.seq AND r.time = c.time"
        " AND r.cell IS DISTINCT FROM c.cell"
    )
    return total
