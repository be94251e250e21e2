"""Writing one run of the hotspot analysis: `hotspot_run`, its `hotspot` rows and their
`hotspot_cell` rows, and pruning old runs.

What is written is what the API reads back (hotspots.results, hotspots.evidence): the run's
window and settings, each hotspot as `detect` found it, and per cell of a hotspot the passes
with a value and their median, so the evidence needs no second read of the passes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import h3
import psycopg
from psycopg.types.json import Jsonb

from hotspots.analysis import by_area
from hotspots.analysis.detect import Hotspot
from hotspots.analysis.passes import PassTable
from hotspots.analysis.settings import AnalysisSettings
from hotspots.sites import KnownSite, Placed, SiteSettings, match_sites

__all__ = [
    "HOTSPOT_COLUMNS",
    "METHOD",
    "cell_figures",
    "hotspot_row",
    "prune",
    "settings_json",
    "write_run",
]

METHOD = "envpatrol-hotspots/1"  # bump when detect's output changes meaning

HOTSPOT_COLUMNS = (
    "run_id, rank, pollutant, unit, stratum, label, reasons, geometry, peak_cell, lat, lon, "
    "level, enhancement, enhancement_low, enhancement_high, excess, persistence, delta, passes, "
    "days, vehicles, p_magnitude, q_magnitude, gi_z, gi_q, moran_i, high_low_q, first_seen, "
    "last_seen, profile, band, drives"
)


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def settings_json(settings: AnalysisSettings) -> dict[str, Any]:
    """Every analysis setting as JSON (strata as [name, start, end, ...] minutes)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, Mapping):
            value = dict(value)
        elif f.name == "strata":
            value = [[s.name, *(b for w in s.windows() for b in w)] for s in value]
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def hotspot_row(run_id: int, rank: int, spot: Hotspot) -> tuple[object, ...]:
    """The `hotspot` row of one hotspot, in the order of HOTSPOT_COLUMNS."""
    low, high = spot.enhancement_interval
    band = None if spot.indicative is None else dataclasses.asdict(spot.indicative)
    return (
        run_id,
        rank,
        spot.pollutant,
        spot.unit,
        spot.stratum,
        spot.label.value,
        Jsonb(
            [{"code": r.code, "detail": r.detail, "summary": dict(r.summary)} for r in spot.reasons]
        ),
        Jsonb(spot.geometry),
        h3.str_to_int(spot.peak_cell),
        spot.lat,
        spot.lon,
        spot.level,
        spot.enhancement,
        _number(low),
        _number(high),
        spot.excess,
        spot.persistence,
        spot.delta,
        spot.passes,
        spot.days,
        spot.vehicles,
        _number(spot.p_magnitude),
        spot.q_magnitude,
        spot.gi_z,
        spot.gi_q,
        spot.moran_i,
        spot.high_low_q,
        spot.first_seen,
        spot.last_seen,
        Jsonb(dict(spot.profile)),
        None if band is None else Jsonb(band),
        Jsonb([{"vehicle": d.vehicle, "day": d.day.isoformat()} for d in spot.drives]),
    )


def cell_figures(
    table: PassTable, hotspots: Sequence[Hotspot]
) -> dict[tuple[str, int], tuple[int, float | None]]:
    """(pollutant, cell) -> (passes with a value, their median value as measured), for every
    cell of the hotspots: the evidence the API shows without reading the passes again."""
    return by_area.cell_figures(table, hotspots)


def write_run(
    conn: psycopg.Connection[Any],
    *,
    started: datetime,
    window_start: datetime,
    window_end: datetime,
    resolution: int,
    settings: AnalysisSettings,
    table: PassTable | None = None,
    hotspots: Sequence[Hotspot],
    totals: tuple[int, int] | None = None,
    figures: Mapping[tuple[str, int], tuple[int, float | None]] | None = None,
    areas: Mapping[str, Any] | None = None,
) -> int:
    """Insert one run with its hotspots and cells (in the caller's transaction); its id.

    `resolution` is that of the analysed cells (the stored one, store.analysis_meta); the run's
    settings record it next to the analysis settings. The run's passes and vehicles and its
    cells' figures come from the analysed `table`, or, for a run put together area by area
    (hotspots.area_runs), from `totals` (passes, vehicles) and `figures`; such a run records
    its `areas` settings beside the analysis settings.
    """
    recorded = {"resolution": resolution, **settings_json(settings)}
    if areas is not None:
        recorded["areas"] = dict(areas)
    if table is not None:
        totals = (len(table), len(table.vehicles))
        figures = cell_figures(table, hotspots)
    if totals is None or figures is None:
        raise TypeError("write_run needs the analysed table, or totals and figures")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO hotspot_run (started_at, finished_at, window_start, window_end, "
            "resolution, passes, vehicles, hotspots, settings, method) "
            "VALUES (%s, now(), %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                started,
                window_start,
                window_end,
                resolution,
                totals[0],
                totals[1],
                len(hotspots),
                Jsonb(recorded),
                METHOD,
            ),
        )
        row = cur.fetchone()
        assert row is not None
        run_id = int(row[0])
        with cur.copy(f"COPY hotspot ({HOTSPOT_COLUMNS}) FROM STDIN") as copy:  # type: ignore[arg-type]
            for rank, spot in enumerate(hotspots):
                copy.write_row(hotspot_row(run_id, rank, spot))
        assign_sites(cur, run_id, window_end, hotspots, SiteSettings())
        with cur.copy(
            "COPY hotspot_cell (run_id, rank, cell, label, passes, median) FROM STDIN"
        ) as copy:
            for rank, spot in enumerate(hotspots):
                for cell, label in dict(zip(spot.cells, spot.cell_labels, strict=True)).items():
                    passes, median = figures.get((spot.pollutant, h3.str_to_int(cell)), (0, None))
                    copy.write_row((run_id, rank, h3.str_to_int(cell), label, passes, median))
    return run_id


def assign_sites(
    cur: psycopg.Cursor[Any],
    run_id: int,
    window_end: datetime,
    hotspots: Sequence[Hotspot],
    settings: SiteSettings,
) -> list[int]:
    """Give each hotspot of the run its site (hotspots.sites), new or matched; the site ids."""
    rows = cur.execute(
        "SELECT id, pollutant, stratum, cells FROM hotspot_site WHERE last_seen_at >= %s",
        (window_end - settings.reach,),
    ).fetchall()
    known = [KnownSite(int(r[0]), r[1], r[2], frozenset(int(c) for c in r[3])) for r in rows]
    placed = [
        Placed(h.pollutant, h.stratum, frozenset(h3.str_to_int(c) for c in h.cells))
        for h in hotspots
    ]
    ids: list[int] = []
    for rank, (spot, where, matched) in enumerate(
        zip(hotspots, placed, match_sites(known, placed), strict=True)
    ):
        cells = sorted(where.cells)
        if matched is None:
            row = cur.execute(
                "INSERT INTO hotspot_site (pollutant, stratum, cells, lat, lon, first_run, "
                "last_run, first_seen_at, last_seen_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id",
                (spot.pollutant, spot.stratum, cells, spot.lat, spot.lon, run_id, run_id,
                 window_end, window_end),
            ).fetchone()  # fmt: skip
            assert row is not None
            site = int(row[0])
        else:
            site = matched
            cur.execute(
                "UPDATE hotspot_site SET cells = %s, lat = %s, lon = %s, runs = runs + 1, "
                "last_run = greatest(last_run, %s), last_seen_at = greatest(last_seen_at, %s), "
                "first_seen_at = least(first_seen_at, %s) WHERE id = %s",
                (cells, spot.lat, spot.lon, run_id, window_end, window_end, site),
            )
        cur.execute(
            "UPDATE hotspot SET site_id = %s WHERE run_id = %s AND rank = %s", (site, run_id, rank)
        )
        ids.append(site)
    return ids


def prune(conn: psycopg.Connection[Any], keep_runs: int) -> int:
    """Delete all but the newest keep_runs runs (their hotspots and cells cascade)."""
    cur = conn.execute(
        "DELETE FROM hotspot_run WHERE id NOT IN "
        "(SELECT id FROM hotspot_run ORDER BY finished_at DESC, id DESC LIMIT %s)",
        (keep_runs,),
    )
    return cur.rowcount
