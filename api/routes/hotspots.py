"""`/v1/hotspots`: the hotspot job's stored results, filtered, sorted and paged, and one
hotspot with its evidence.

Hotspots are never computed per request. A list comes from one run of the job
(hotspots.job): by default the newest; with `from`/`to`, the newest run whose window holds
that whole range; with `run`, that run. Without any run (or none matching), a 404 problem says
so and how to get one (`envpatrol analyse`, or `POST /v1/hotspot-runs`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal, cast

import xlsxwriter
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from api import paging
from api.auth import Reader, reader
from api.database import DbSession
from api.errors import PROBLEM_RESPONSES, ApiError, ParameterError
from api.geojson import FeatureCollection
from api.officers import grids
from api.officers.grids import Grid
from api.params import hotspot_channel, parse_instant
from api.scopes import GridView, visibility
from api.streets import StreetLayer
from hotspots import evidence, results
from hotspots.results import HotspotFilter, StoredHotspot, StoredRun
from hotspots.severity import order_key, severity
from store.conditions import BBox

router = APIRouter(
    prefix="/v1", tags=["hotspots"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)

NOTE = (
    "Indicative values from mobile monitoring, not compliance values: air quality standards "
    "(GB 3095-2012, GB 3096-2008) apply to fixed monitoring sites and averaging periods."
)
HOTSPOT_ID = r"^[0-9]{1,18}-[0-9]{1,9}$"
LabelName = Literal["persistent", "candidate", "episodic"]
SortName = Literal[
    "severity",
    "rank",
    "excess",
    "enhancement",
    "level",
    "n_passes",
    "persistence",
    "last_seen",
    "q_magnitude",
]


def street_layer(request: Request) -> StreetLayer:
    """The street layer the app loaded ([dashboard] streets_file; empty without one)."""
    return cast(StreetLayer, request.app.state.streets)


Streets = Annotated[StreetLayer, Depends(street_layer)]


def hotspot_id(run_id: int, rank: int) -> str:
    """A hotspot's id: its run and its rank in that run's list ("12-0")."""
    return f"{run_id}-{rank}"


class RunOut(BaseModel):
    id: int
    started_at: datetime
    finished_at: datetime
    window_start: datetime = Field(description="Passes starting in [window_start, window_end).")
    window_end: datetime
    resolution: int = Field(description="H3 resolution of the cells.")
    passes: int
    vehicles: int
    hotspots: int
    method: str


def run_out(run: StoredRun) -> RunOut:
    return RunOut(
        id=run.id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        window_start=run.window_start,
        window_end=run.window_end,
        resolution=run.resolution,
        passes=run.passes,
        vehicles=run.vehicles,
        hotspots=run.hotspots,
        method=run.method,
    )


class HotspotProperties(BaseModel):
    id: str = Field(description="`{run}-{rank}`: GET /v1/hotspots/{id} gives its evidence.")
    run_id: int
    rank: int = Field(description="Place in the run's list: persistent first, then by excess.")
    pollutant: str
    unit: str
    stratum: str = Field(description="Time-of-day stratum: all_day, lunch, dinner, night.")
    label: str = Field(description="persistent, candidate or episodic (see docs/hotspots.md).")
    reasons: list[dict[str, Any]] = Field(
        description="Why it has its label: code, detail (the statistics) and summary (the "
        "figure that matters, in zh and en)."
    )
    cell: str = Field(description="The peak cell (H3 index).")
    cells: list[str] = Field(description="Every cell of the hotspot.")
    lat: float = Field(description="Excess-weighted centre.")
    lon: float
    level: float = Field(description="Median pass value at the peak cell (energy mean: noise).")
    enhancement: float = Field(description="Median over passes of pass value - trip background.")
    enhancement_low: float | None = Field(description="Bootstrap interval of the enhancement.")
    enhancement_high: float | None
    excess: float = Field(description="Median enhancement above the area's reference.")
    persistence: float = Field(description="Share of passes with excess above delta.")
    delta: float
    n_passes: int
    days: int
    vehicles: int
    p_magnitude: float | None
    q_magnitude: float | None = Field(description="Benjamini-Hochberg q of the magnitude test.")
    gi_z: float | None
    gi_q: float | None
    moran_i: float | None
    high_low_q: float | None
    first_seen: datetime
    last_seen: datetime
    profile: dict[str, float | None] = Field(description="Peak cell's enhancement per stratum.")
    band: dict[str, Any] | None = Field(description="Indicative standard band (IAQI / noise).")
    site: int | None = Field(
        description="The place's id across runs: GET /v1/sites/{site} keeps working after this "
        "run is pruned; null for runs written before sites existed."
    )
    severity: float | None = Field(
        description="Index points the place adds (IAQI; noise: 10 per dB over the GB 3096 "
        "limit); null for channels without a national standard. See docs/hotspots.md."
    )
    n_drives: int = Field(
        description="Contributing drives (vehicle-days); GET /v1/hotspots/{id} lists them."
    )
    street: str | None = Field(
        description="The named street nearest the centre within 60 m, from the street layer "
        "([dashboard] streets_file); null without one."
    )
    grid_id: int | None = Field(description="Management grid holding the centre; null: none.")
    grid_name: str | None


def properties(
    spot: StoredHotspot, grid: Grid | None, streets: StreetLayer | None = None
) -> HotspotProperties:
    low, high = spot.enhancement_interval
    street = None if streets is None else streets.street_at(spot.lat, spot.lon)
    return HotspotProperties(
        id=hotspot_id(spot.run_id, spot.rank),
        run_id=spot.run_id,
        rank=spot.rank,
        pollutant=spot.pollutant,
        unit=spot.unit,
        stratum=spot.stratum,
        label=spot.label,
        reasons=[dict(r) for r in spot.reasons],
        cell=spot.peak_cell,
        cells=[c for c, _ in spot.cells],
        lat=spot.lat,
        lon=spot.lon,
        level=spot.level,
        enhancement=spot.enhancement,
        enhancement_low=low,
        enhancement_high=high,
        excess=spot.excess,
        persistence=spot.persistence,
        delta=spot.delta,
        n_passes=spot.passes,
        days=spot.days,
        vehicles=spot.vehicles,
        p_magnitude=spot.p_magnitude,
        q_magnitude=spot.q_magnitude,
        gi_z=spot.gi_z,
        gi_q=spot.gi_q,
        moran_i=spot.moran_i,
        high_low_q=spot.high_low_q,
        first_seen=spot.first_seen,
        last_seen=spot.last_seen,
        profile=dict(spot.profile),
        band=spot.band,
        site=spot.site_id,
        severity=spot_severity(spot),
        n_drives=len(spot.drives),
        street=None if street is None else street.name,
        grid_id=None if grid is None else grid.id,
        grid_name=None if grid is None else grid.name,
    )


class HotspotFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon, WGS-84.")
    properties: HotspotProperties


class HotspotsMeta(BaseModel):
    found: int = Field(description="Hotspots in this response.")
    total: int = Field(description="Hotspots matching the filters.")
    limit: int
    offset: int = Field(description="Position of this page's first hotspot in the list.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
    run: RunOut = Field(description="The job run the list comes from.")
    pollutant: str | None
    labels: list[str] | None
    stratum: str | None
    grid: int | None
    sort: str
    note: str = NOTE


class HotspotCollection(FeatureCollection[HotspotsMeta, HotspotFeature]):
    pass


class HotspotList(BaseModel):
    meta: HotspotsMeta
    results: list[HotspotProperties]


def no_run(detail: str) -> ApiError:
    return ApiError(404, "no-hotspot-run", detail)


NO_RUN_YET = (
    "the hotspot analysis has not run yet: hotspots come from its stored runs "
    "(`envpatrol analyse`, or an admin's POST /v1/hotspot-runs); try again after it has run"
)


def choose_run(
    conn: results.Connection,
    run: int | None,
    start: datetime | None,
    end: datetime | None,
) -> StoredRun:
    """The run a request reads (see the module docstring), or a 404 problem explaining why none."""
    if run is not None:
        found = results.run_by_id(conn, run)
        if found is None:
            raise ApiError(404, "not-found", f"no hotspot run {run}; see /v1/hotspot-runs")
        return found
    if start is None and end is None:
        latest = results.latest_run(conn)
        if latest is None:
            raise no_run(NO_RUN_YET)
        return latest
    covering = results.run_covering(conn, start, end)
    if covering is None:
        recent = results.recent_runs(conn, 5)
        if not recent:
            raise no_run(NO_RUN_YET)
        windows = ", ".join(
            f"{r.window_start.isoformat()}..{r.window_end.isoformat()}" for r in recent
        )
        raise no_run(
            "no stored run's window holds the requested time range (recent windows: "
            f"{windows}); an admin can request one with POST /v1/hotspot-runs"
        )
    return covering


def parse_range(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    begin = None if start is None else parse_instant(start, "from")
    stop = None if end is None else parse_instant(end, "to")
    if begin is not None and stop is not None and begin >= stop:
        raise ParameterError("from", "must be before `to`")
    return begin, stop


def check_stratum(run: StoredRun, stratum: str | None) -> None:
    if stratum is None:
        return
    names = [str(s[0]) for s in run.settings.get("strata", [])]
    if stratum not in names:
        raise ParameterError("stratum", f"{stratum!r} is not one of {', '.join(names)}")


HOTSPOT_COLUMNS = (
    "id", "site", "severity", "pollutant", "unit", "stratum", "label", "street", "grid",
    "lat_wgs84", "lon_wgs84", "level", "enhancement", "excess", "band", "n_passes", "days",
    "vehicles", "persistence", "q_magnitude", "first_seen_utc", "last_seen_utc", "cell",
)  # fmt: skip
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def hotspot_table(rows: Sequence[HotspotProperties]) -> list[list[Any]]:
    """The hotspots as rows of HOTSPOT_COLUMNS (None where a value is missing)."""
    out = []
    for p in rows:
        band = (p.band or {}).get("category") or (
            f"GB 3096 class {(p.band or {}).get('noise_class')}" if p.band else None
        )
        out.append(
            [
                p.id, p.site, p.severity, p.pollutant, p.unit, p.stratum, p.label, p.street,
                p.grid_name, round(p.lat, 6), round(p.lon, 6), p.level, p.enhancement,
                p.excess, band, p.n_passes, p.days, p.vehicles, p.persistence, p.q_magnitude,
                p.first_seen.isoformat(), p.last_seen.isoformat(), p.cell,
            ]
        )  # fmt: skip
    return out


def hotspots_csv(rows: Sequence[HotspotProperties]) -> str:
    """The hotspots as CSV: a unit column, times in UTC (ISO 8601), a UTF-8 BOM so spreadsheet
    programs read the Chinese street and grid names right."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HOTSPOT_COLUMNS)
    for row in hotspot_table(rows):
        writer.writerow(["" if v is None else v for v in row])
    return "\ufeff" + buffer.getvalue()


def hotspots_xlsx(rows: Sequence[HotspotProperties], run_id: int) -> bytes:
    """The hotspots as an Excel workbook: one sheet, the header frozen, numbers as numbers."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet(f"run {run_id}")
    bold = book.add_format({"bold": True})
    sheet.write_row(0, 0, HOTSPOT_COLUMNS, bold)
    for i, row in enumerate(hotspot_table(rows), 1):
        sheet.write_row(i, 0, ["" if v is None else v for v in row])
    sheet.freeze_panes(1, 0)
    book.close()
    return buffer.getvalue()


def spot_severity(spot: StoredHotspot) -> float | None:
    period = "night" if spot.stratum == "night" else "day"
    return severity(spot.pollutant, spot.level, spot.excess, period=period)


def by_severity(pair: tuple[StoredHotspot, Grid | None]) -> tuple[float, ...]:
    spot = pair[0]
    return order_key(spot_severity(spot), spot.excess, spot.delta)


def _sort_key(sort: SortName) -> Any:
    if sort == "n_passes":
        return lambda pair: pair[0].passes
    if sort == "last_seen":
        return lambda pair: pair[0].last_seen
    return lambda pair: getattr(pair[0], sort)


From = Annotated[
    str | None,
    Query(
        alias="from",
        description="With `to`: the newest run whose window holds [from, to) (either may be "
        "left out). ISO 8601; UTC unless an offset is given.",
        examples=["2026-05-01T00:00:00Z"],
    ),
]
To = Annotated[str | None, Query(alias="to", description="End (exclusive), ISO 8601.")]
RunParam = Annotated[
    int | None, Query(ge=1, le=2**62, description="This run (see /v1/hotspot-runs).")
]


def tagged_hotspots(
    spots: Sequence[StoredHotspot], view: GridView
) -> list[tuple[StoredHotspot, Grid | None]]:
    """Each hotspot the key of `view` sees, with the grid holding its centre."""
    out = []
    for spot in spots:
        seen, grid = view.place(spot.lon, spot.lat)
        if seen:
            out.append((spot, grid))
    return out


def no_grid(grid: int) -> ParameterError:
    """The answer for a grid that does not exist, and for one outside the caller's grids."""
    return ParameterError("grid", f"no grid {grid}; see /v1/grids")


@router.get(
    "/hotspots",
    summary="Hotspots from the newest analysis run, persistent first",
    response_model=HotspotCollection | HotspotList,
    openapi_extra=visibility("grids"),
)
def list_hotspots(
    *,
    db: DbSession,
    who: Reader,
    streets: Streets,
    pollutant: Annotated[
        str | None, Query(description="Only this pollutant's (see /v1/pollutants).")
    ] = None,
    label: Annotated[
        list[LabelName] | None,
        Query(description="Only these labels (repeat the parameter for several)."),
    ] = None,
    stratum: Annotated[
        str | None,
        Query(
            max_length=64, description="Only this time-of-day stratum: all_day, lunch, dinner..."
        ),
    ] = None,
    start: From = None,
    end: To = None,
    run: RunParam = None,
    bbox: Annotated[
        str | None,
        Query(
            description="Only hotspots whose centre lies in west,south,east,north (WGS-84).",
            examples=["116.45,39.88,116.48,39.90"],
        ),
    ] = None,
    grid: Annotated[
        int | None,
        Query(ge=1, le=2**62, description="Only hotspots whose centre lies in this grid."),
    ] = None,
    min_passes: Annotated[
        int | None, Query(ge=1, le=1_000_000, description="At least this many passes.")
    ] = None,
    sort: Annotated[
        SortName,
        Query(
            description="severity (default): most severe first across pollutants, those "
            "without a national standard last; rank: the run's order; any other field: "
            "highest first."
        ),
    ] = "severity",
    format: Annotated[
        Literal["geojson", "json", "csv", "xlsx"],
        Query(
            description="geojson: a FeatureCollection; json: `meta` and `results`; csv or "
            "xlsx (Excel): one row per hotspot, with its unit."
        ),
    ] = "geojson",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    cursor: Annotated[
        str | None, Query(max_length=2000, description="`meta.next_cursor` of the previous page.")
    ] = None,
    offset: Annotated[
        int, Query(ge=0, le=1_000_000, description="Deprecated: use `cursor`.", deprecated=True)
    ] = 0,
) -> HotspotCollection | HotspotList | Response:
    """Read from the hotspot job's stored results, never computed per request (indicative
    values, not compliance values). Each hotspot is tagged with the grid holding its centre. A
    key limited to grids sees only the hotspots whose centre one of its grids holds."""
    if pollutant is not None:
        hotspot_channel(pollutant)
    box = None if bbox is None else BBox.parse(bbox)
    begin, stop = parse_range(start, end)
    where = HotspotFilter(
        pollutant=pollutant, labels=label, stratum=stratum, bbox=box, min_passes=min_passes
    )
    conn = db.connection()
    view = GridView.of(grids.all_grids(conn), who.scope)
    if grid is not None and view.get(grid) is None:
        raise no_grid(grid)
    chosen = choose_run(conn, run, begin, stop)
    check_stratum(chosen, stratum)
    spots = results.hotspots_of_run(conn, chosen, where)
    tagged = tagged_hotspots(spots, view)
    if grid is not None:
        tagged = [(s, g) for s, g in tagged if g is not None and g.id == grid]
    if sort == "severity":
        tagged.sort(key=by_severity)
    elif sort != "rank":
        present = [pair for pair in tagged if getattr(pair[0], sort, 0) is not None]
        absent = [pair for pair in tagged if getattr(pair[0], sort, 0) is None]
        present.sort(key=_sort_key(sort), reverse=sort != "q_magnitude")
        tagged = present + absent
    fixed = {
        "list": "hotspots",
        "run": chosen.id,
        "sort": sort,
        "where": [pollutant, sorted(label or []), stratum, grid, bbox, min_passes],
    }
    if cursor is not None:
        offset = paging.position(cursor, fixed)
    page = tagged[offset : offset + limit]
    meta = HotspotsMeta(
        found=len(page),
        total=len(tagged),
        limit=limit,
        offset=offset,
        next_cursor=paging.next_position(fixed, offset, len(page), len(tagged)),
        run=run_out(chosen),
        pollutant=pollutant,
        labels=None if label is None else list(label),
        stratum=stratum,
        grid=grid,
        sort=sort,
    )
    if format == "json":
        return HotspotList(meta=meta, results=[properties(s, g, streets) for s, g in page])
    if format in ("csv", "xlsx"):
        rows = [properties(s, g, streets) for s, g in page]
        name = f"hotspots-run-{chosen.id}.{format}"
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        if format == "csv":
            return Response(
                hotspots_csv(rows), media_type="text/csv; charset=utf-8", headers=disposition
            )
        return Response(hotspots_xlsx(rows, chosen.id), media_type=XLSX, headers=disposition)
    return HotspotCollection(
        meta=meta,
        features=[
            HotspotFeature(
                id=hotspot_id(s.run_id, s.rank),
                geometry=s.geometry,
                properties=properties(s, g, streets),
            )
            for s, g in page
        ],
    )


class EvidencePassOut(BaseModel):
    vehicle: str
    cell: str
    start: datetime
    end: datetime
    value: float = Field(description="Pass mean (energy mean for noise), in `unit`.")
    n: int
    strata: list[str]


class CellOut(BaseModel):
    cell: str
    label: str
    lat: float
    lon: float
    passes: int
    median: float | None


class HistoryOut(BaseModel):
    id: str
    run_id: int
    finished_at: datetime
    window_start: datetime
    window_end: datetime
    label: str
    level: float
    enhancement: float
    excess: float
    passes: int
    persistence: float


class Evidence(BaseModel):
    cells: list[CellOut]
    passes: list[EvidencePassOut] = Field(description="The newest `max_passes`, in time order.")
    passes_total: int
    profile: dict[str, float | None]
    drives: list[dict[str, str]] = Field(description="Contributing drives: vehicle and day.")
    band: dict[str, Any] | None
    history: list[HistoryOut] = Field(description="The same place in earlier runs.")


class HotspotDetail(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: dict[str, Any]
    properties: HotspotProperties
    run: RunOut
    evidence: Evidence
    note: str = NOTE


@router.get(
    "/hotspots/{hotspot}",
    summary="One hotspot with its evidence",
    response_model=HotspotDetail,
    openapi_extra=visibility("grids"),
)
def get_hotspot(
    hotspot: Annotated[
        str, Path(pattern=HOTSPOT_ID, description="`{run}-{rank}`, as in the list.")
    ],
    db: DbSession,
    who: Reader,
    streets: Streets,
    max_passes: Annotated[int, Query(ge=0, le=10_000, description="Passes listed.")] = 500,
) -> Response:
    """Its cells, per-pass values (from the stored passes of the run's window), time-of-day
    profile, contributing drives, indicative standard band and history in earlier runs."""
    run_text, rank_text = hotspot.split("-")
    run_id, rank = int(run_text), int(rank_text)
    conn = db.connection()
    run = results.run_by_id(conn, run_id)
    spot = None if run is None else results.one(conn, run_id, rank)
    seen, grid = (
        (False, None)
        if spot is None
        else GridView.of(grids.all_grids(conn), who.scope).place(spot.lon, spot.lat)
    )
    if run is None or spot is None or not seen:
        raise ApiError(404, "not-found", f"no hotspot {hotspot} (its run may have been pruned)")
    cells = evidence.stored_cell_summaries(conn, spot)
    if cells is not None:
        # the job stored each cell's figures: read only the passes listed
        found = evidence.newest_passes(conn, run, spot, max_passes)
        total = sum(c.passes for c in cells)
    else:  # a run written before the job stored them
        every = evidence.passes(conn, run, spot)
        found = every[-max_passes:] if max_passes else []
        cells = evidence.cell_summaries(spot, every)
        total = len(every)
    props = properties(spot, grid, streets)
    detail = HotspotDetail(
        id=props.id,
        geometry=spot.geometry,
        properties=props,
        run=run_out(run),
        evidence=Evidence.model_construct(
            cells=[CellOut(**asdict(c)) for c in cells],
            # Up to 10,000 passes and thousands of drives, made from typed rows: built without
            # a validation round per item, and serialised once (not dumped, validated again and
            # serialised by the framework).
            passes=[
                EvidencePassOut.model_construct(
                    vehicle=p.vehicle,
                    cell=p.cell,
                    start=p.start,
                    end=p.end,
                    value=p.value,
                    n=p.n,
                    strata=list(p.strata),
                )
                for p in found
            ],
            passes_total=total,
            profile=dict(spot.profile),
            drives=[{"vehicle": d.vehicle, "day": d.day.isoformat()} for d in spot.drives],
            band=spot.band,
            history=[
                HistoryOut(id=hotspot_id(h.run_id, h.rank), **_without_rank(asdict(h)))
                for h in evidence.history(conn, run, spot)
            ],
        ),
    )
    return Response(detail.model_dump_json(), media_type="application/json")


def _without_rank(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != "rank"}
