"""Reading the hotspot job's results: the newest run and its hotspots, filtered.

The job writes `hotspot_run`, `hotspot` and `hotspot_cell` (hotspots.run_writer); these functions
are what the API's routes call, one statement each, on the request's psycopg connection. Filters:
pollutant, label(s), time-of-day stratum, a WGS-84 bounding box on the hotspot's centre and a
minimum number of passes at the peak cell. The list keeps the run's order (persistent first,
then by excess).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import h3
import psycopg

from edge.errors import EnvpatrolError
from hotspots.analysis.labels import Label
from store.conditions import BBox

Connection = psycopg.Connection[Any]


class ResultsError(EnvpatrolError, ValueError):
    """A filter that cannot be applied; `subject` names it."""


@dataclass(frozen=True, slots=True)
class StoredRun:
    id: int
    started_at: datetime
    finished_at: datetime
    window_start: datetime
    window_end: datetime
    resolution: int
    passes: int
    vehicles: int
    hotspots: int
    settings: dict[str, Any]
    method: str


@dataclass(frozen=True, slots=True)
class StoredDrive:
    vehicle: str
    day: date


@dataclass(frozen=True, slots=True)
class StoredHotspot:
    """One hotspot of a run, as the job wrote it (see hotspots.analysis.detect.Hotspot)."""

    run_id: int
    rank: int
    pollutant: str
    unit: str
    stratum: str
    label: str
    reasons: tuple[dict[str, Any], ...]  # code, detail and (runs since sites) summary
    geometry: dict[str, Any]
    peak_cell: str
    cells: tuple[tuple[str, str], ...]  # (H3 index, the cell's label)
    lat: float
    lon: float
    level: float
    enhancement: float
    enhancement_interval: tuple[float | None, float | None]
    excess: float
    persistence: float
    delta: float
    passes: int
    days: int
    vehicles: int
    p_magnitude: float | None
    q_magnitude: float | None
    gi_z: float | None
    gi_q: float | None
    moran_i: float | None
    high_low_q: float | None
    first_seen: datetime
    last_seen: datetime
    profile: dict[str, float | None]
    band: dict[str, Any] | None  # indicative standard band
    drives: tuple[StoredDrive, ...]
    site_id: int | None = None  # the place's identity across runs (hotspots.sites)


@dataclass(frozen=True, slots=True)
class HotspotFilter:
    pollutant: str | None = None
    labels: Sequence[str] | None = None  # persistent, candidate, episodic
    stratum: str | None = None
    bbox: BBox | None = None
    min_passes: int | None = None

    def __post_init__(self) -> None:
        known = {label.value for label in Label}
        for label in self.labels or ():
            if label not in known:
                raise ResultsError("label", f"{label!r} is not one of {', '.join(sorted(known))}")
        if self.min_passes is not None and self.min_passes < 1:
            raise ResultsError("min_passes", f"must be at least 1, got {self.min_passes}")


_RUN_COLUMNS = (
    "id, started_at, finished_at, window_start, window_end, resolution, passes, vehicles, "
    "hotspots, settings, method"
)


def _run(row: Sequence[Any]) -> StoredRun:
    return StoredRun(
        id=int(row[0]),
        started_at=row[1],
        finished_at=row[2],
        window_start=row[3],
        window_end=row[4],
        resolution=int(row[5]),
        passes=int(row[6]),
        vehicles=int(row[7]),
        hotspots=int(row[8]),
        settings=dict(row[9]),
        method=str(row[10]),
    )


def latest_run(conn: Connection) -> StoredRun | None:
    """The newest finished run, or None before the job has run."""
    row = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM hotspot_run ORDER BY finished_at DESC, id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else _run(row)


def run_covering(
    conn: Connection, start: datetime | None, end: datetime | None
) -> StoredRun | None:
    """The newest run whose window holds [start, end) (either side may be open: no condition),
    or None. This is how the API answers a time range: from a run, never per request."""
    row = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM hotspot_run"
        " WHERE (%(start)s::timestamptz IS NULL OR window_start <= %(start)s)"
        "   AND (%(end)s::timestamptz IS NULL OR window_end >= %(end)s)"
        " ORDER BY finished_at DESC, id DESC LIMIT 1",
        {"start": start, "end": end},
    ).fetchone()
    return None if row is None else _run(row)


def recent_runs(conn: Connection, limit: int = 10) -> list[StoredRun]:
    """The newest runs, newest first."""
    rows = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM hotspot_run ORDER BY finished_at DESC, id DESC LIMIT %s",
        (limit,),
    ).fetchall()
    return [_run(row) for row in rows]


def run_by_id(conn: Connection, run_id: int) -> StoredRun | None:
    row = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM hotspot_run WHERE id = %s", (run_id,)
    ).fetchone()
    return None if row is None else _run(row)


_HOTSPOT_COLUMNS = """
SELECT h.run_id, h.rank, h.pollutant, h.unit, h.stratum, h.label, h.reasons, h.geometry,
       h.peak_cell, h.lat, h.lon, h.level, h.enhancement, h.enhancement_low, h.enhancement_high,
       h.excess, h.persistence, h.delta, h.passes, h.days, h.vehicles, h.p_magnitude,
       h.q_magnitude, h.gi_z, h.gi_q, h.moran_i, h.high_low_q, h.first_seen, h.last_seen,
       h.profile, h.band, h.drives,
       coalesce((SELECT array_agg(c.cell ORDER BY c.cell) FROM hotspot_cell c
                 WHERE c.run_id = h.run_id AND c.rank = h.rank), '{}'),
       coalesce((SELECT array_agg(c.label ORDER BY c.cell) FROM hotspot_cell c
                 WHERE c.run_id = h.run_id AND c.rank = h.rank), '{}'),
       h.site_id
FROM hotspot h
"""

_HOTSPOTS = (
    _HOTSPOT_COLUMNS
    + """WHERE h.run_id = %(run)s
  AND (%(pollutant)s::text IS NULL OR h.pollutant = %(pollutant)s)
  AND (%(labels)s::text[] IS NULL OR h.label = ANY(%(labels)s::text[]))
  AND (%(stratum)s::text IS NULL OR h.stratum = %(stratum)s)
  AND (%(min_passes)s::int IS NULL OR h.passes >= %(min_passes)s)
  AND (%(rank)s::int IS NULL OR h.rank = %(rank)s)
  AND (%(west)s::float8 IS NULL OR (h.lon BETWEEN %(west)s AND %(east)s
                                    AND h.lat BETWEEN %(south)s AND %(north)s))
ORDER BY h.rank
"""
)


def _hotspot(row: Sequence[Any]) -> StoredHotspot:
    cells = tuple(
        (h3.int_to_str(int(c)), str(label)) for c, label in zip(row[32], row[33], strict=True)
    )
    return StoredHotspot(
        run_id=int(row[0]),
        rank=int(row[1]),
        pollutant=row[2],
        unit=row[3],
        stratum=row[4],
        label=row[5],
        reasons=tuple(dict(r) for r in row[6]),
        geometry=dict(row[7]),
        peak_cell=h3.int_to_str(int(row[8])),
        cells=cells,
        lat=row[9],
        lon=row[10],
        level=row[11],
        enhancement=row[12],
        enhancement_interval=(row[13], row[14]),
        excess=row[15],
        persistence=row[16],
        delta=row[17],
        passes=int(row[18]),
        days=int(row[19]),
        vehicles=int(row[20]),
        p_magnitude=row[21],
        q_magnitude=row[22],
        gi_z=row[23],
        gi_q=row[24],
        moran_i=row[25],
        high_low_q=row[26],
        first_seen=row[27],
        last_seen=row[28],
        profile=dict(row[29]),
        band=None if row[30] is None else dict(row[30]),
        drives=tuple(StoredDrive(d["vehicle"], date.fromisoformat(d["day"])) for d in row[31]),
        site_id=None if row[34] is None else int(row[34]),
    )


def one(conn: Connection, run_id: int, rank: int) -> StoredHotspot | None:
    """One hotspot of a run by its rank, or None."""
    rows = conn.execute(_HOTSPOTS, {**_NO_FILTER, "run": run_id, "rank": rank}).fetchall()
    return _hotspot(rows[0]) if rows else None


_NO_FILTER: dict[str, object] = dict.fromkeys(
    ("pollutant", "labels", "stratum", "min_passes", "rank", "west", "south", "east", "north")
)


def hotspots_of_run(
    conn: Connection, run: StoredRun, where: HotspotFilter | None = None
) -> list[StoredHotspot]:
    """The hotspots of `run` that pass the filter, in the run's order."""
    where = where or HotspotFilter()
    box = where.bbox
    rows = conn.execute(
        _HOTSPOTS,
        {
            **_NO_FILTER,
            "run": run.id,
            "pollutant": where.pollutant,
            "labels": None if where.labels is None else list(where.labels),
            "stratum": where.stratum,
            "min_passes": where.min_passes,
            "west": None if box is None else box.west,
            "south": None if box is None else box.south,
            "east": None if box is None else box.east,
            "north": None if box is None else box.north,
        },
    ).fetchall()
    return [_hotspot(row) for row in rows]


def hotspots(
    conn: Connection, where: HotspotFilter | None = None, run_id: int | None = None
) -> tuple[StoredRun | None, list[StoredHotspot]]:
    """The hotspots of a run (default: the newest) that pass the filter, in the run's order.
    (None, []) when no run exists yet."""
    run = latest_run(conn) if run_id is None else run_by_id(conn, run_id)
    if run is None:
        return None, []
    return run, hotspots_of_run(conn, run, where)


@dataclass(frozen=True, slots=True)
class StoredSite:
    id: int
    pollutant: str
    stratum: str
    cells: tuple[str, ...]
    lat: float
    lon: float
    first_run: int
    last_run: int
    first_seen_at: datetime
    last_seen_at: datetime
    runs: int


def site(conn: Connection, site_id: int) -> StoredSite | None:
    """One site (hotspots.sites), or None."""
    row = conn.execute(
        "SELECT id, pollutant, stratum, cells, lat, lon, first_run, last_run, first_seen_at, "
        "last_seen_at, runs FROM hotspot_site WHERE id = %s",
        (site_id,),
    ).fetchone()
    if row is None:
        return None
    return StoredSite(
        id=int(row[0]),
        pollutant=row[1],
        stratum=row[2],
        cells=tuple(h3.int_to_str(int(c)) for c in row[3]),
        lat=row[4],
        lon=row[5],
        first_run=int(row[6]),
        last_run=int(row[7]),
        first_seen_at=row[8],
        last_seen_at=row[9],
        runs=int(row[10]),
    )


def site_hotspots(conn: Connection, site_id: int, limit: int = 50) -> list[StoredHotspot]:
    """The site's hotspots in the runs still kept, the newest run's first."""
    rows = conn.execute(
        _HOTSPOT_COLUMNS + "JOIN hotspot_run r ON r.id = h.run_id WHERE h.site_id = %(site)s "
        "ORDER BY r.window_end DESC, h.run_id DESC LIMIT %(limit)s",
        {"site": site_id, "limit": limit},
    ).fetchall()
    return [_hotspot(row) for row in rows]
