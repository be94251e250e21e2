"""The printable environment inventory of a period and an area: a map, the ranked hotspots with
their evidence, a summary per management grid, and the cases with their verification.

`gather` reads everything on the request's connection (a run's hotspots, the passes of the run's
window, sampled vehicle tracks, grids, cases); `render` is pure and returns one self-contained
HTML page (inline CSS with print rules, the map as inline SVG: it works offline and prints).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

import h3
import psycopg

from api.officers import cases as case_store
from api.officers.cases import Case, CaseFilters
from api.officers.grids import Grid
from api.report_svg import MapHotspot, MapLayers, Position, render_map
from hotspots.results import StoredHotspot, StoredRun
from store.conditions import BBox

Connection = psycopg.Connection[Any]

TRACK_POINTS = 20_000  # at most this many track points are drawn, evenly thinned

NOTE = (
    "Indicative values from mobile monitoring on patrol vehicles, not compliance measurements: "
    "air quality and noise standards (GB 3095-2012, GB 3096-2008) apply to fixed sites and "
    "their averaging periods."
)


@dataclass(frozen=True, slots=True)
class ReportArea:
    """Where the report looks: a box, a grid, or (neither) everywhere."""

    bbox: BBox | None = None
    grid: Grid | None = None

    def contains(self, lon: float, lat: float) -> bool:
        if self.bbox is not None and not (
            self.bbox.west <= lon <= self.bbox.east and self.bbox.south <= lat <= self.bbox.north
        ):
            return False
        return self.grid is None or self.grid.area.contains(lon, lat)

    def describe(self) -> str:
        parts = []
        if self.grid is not None:
            parts.append(f"grid {self.grid.name}")
        if self.bbox is not None:
            b = self.bbox
            parts.append(f"box {b.west:.4f},{b.south:.4f},{b.east:.4f},{b.north:.4f}")
        return ", ".join(parts) or "the whole patrolled area"


@dataclass(frozen=True, slots=True)
class Inventory:
    run: StoredRun
    area: ReportArea
    pollutant: str | None
    hotspots: Sequence[tuple[StoredHotspot, Grid | None]]
    cells: Sequence[tuple[str, int]]  # cell, passes
    tracks: Sequence[Sequence[Position]]
    grids: Sequence[Grid]
    cases: Sequence[Case]
    generated_at: datetime


def cell_passes(conn: Connection, run: StoredRun, area: ReportArea) -> list[tuple[str, int]]:
    rows = conn.execute(
        "SELECT cell, count(*) FROM pass WHERE resolution = %s"
        " AND start_time >= %s AND start_time < %s GROUP BY cell",
        (run.resolution, run.window_start, run.window_end),
    ).fetchall()
    out = []
    for cell_int, n in rows:
        cell = h3.int_to_str(int(cell_int))
        lat, lon = h3.cell_to_latlng(cell)
        if area.contains(lon, lat):
            out.append((cell, int(n)))
    return out


def tracks(conn: Connection, run: StoredRun, area: ReportArea) -> list[list[Position]]:
    """Each vehicle's path in the window (valid fixes in the area), thinned to TRACK_POINTS."""
    row = conn.execute(
        "SELECT count(*) FROM reading WHERE time >= %s AND time < %s AND fix_valid"
        " AND lat IS NOT NULL",
        (run.window_start, run.window_end),
    ).fetchone()
    total = int(row[0]) if row else 0
    step = max(1, total // TRACK_POINTS)
    rows = conn.execute(
        "SELECT vehicle, lon, lat FROM (SELECT vehicle, time, seq, lon, lat,"
        " row_number() OVER (ORDER BY vehicle, time, seq) AS k FROM reading"
        " WHERE time >= %s AND time < %s AND fix_valid AND lat IS NOT NULL) q"
        " WHERE k %% %s = 0 ORDER BY vehicle, time, seq",
        (run.window_start, run.window_end, step),
    ).fetchall()
    out: list[list[Position]] = []
    current: list[Position] = []
    last_vehicle = None
    for vehicle, lon, lat in rows:
        inside = area.contains(lon, lat)
        if vehicle != last_vehicle or not inside:
            if len(current) > 1:
                out.append(current)
            current = []
        if inside:
            current.append((float(lon), float(lat)))
        last_vehicle = vehicle
    if len(current) > 1:
        out.append(current)
    return out


def area_cases(conn: Connection, area: ReportArea, pollutant: str | None) -> list[Case]:
    _, found = case_store.listing(
        conn,
        CaseFilters(None, None if area.grid is None else area.grid.id, pollutant),
        1000,
        0,
    )
    return [c for c in found if area.contains(c.lon, c.lat)]


# --- rendering ---------------------------------------------------------------------------------

CSS = """
body { font: 13px/1.45 system-ui, "Noto Sans CJK SC", sans-serif; color: #1b1b1b; margin: 24px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 6px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f2f3f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.meta { color: #555; } .note { color: #555; font-size: 12px; }
.label-persistent { color: #c0392b; font-weight: 600; } .label-candidate { color: #e67e22; }
.label-episodic { color: #8e44ad; } .legend span { margin-right: 12px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
svg.map { max-width: 100%; height: auto; border: 1px solid #ccc; }
@media print {
  body { margin: 10mm; font-size: 11px; } a { color: inherit; text-decoration: none; }
  .noprint { display: none; } h2 { break-after: avoid; } tr, svg { break-inside: avoid; }
  @page { size: A4; margin: 12mm; }
}
"""


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _hotspot_rows(spots: Sequence[tuple[StoredHotspot, Grid | None]]) -> str:
    rows = []
    for number, (s, grid) in enumerate(spots, 1):
        low, high = s.enhancement_interval
        profile = ", ".join(f"{k} {_num(v)}" for k, v in s.profile.items())
        reasons = "; ".join(r.get("detail", r.get("code", "")) for r in s.reasons)
        band = "—"
        if s.band:
            band = str(s.band.get("category") or s.band.get("noise_class") or "—")
        rows.append(
            "<tr>"
            f'<td class="n">{number}</td>'
            f"<td>{escape(s.pollutant)}<br><small>{escape(s.stratum)}</small></td>"
            f'<td class="label-{escape(s.label)}">{escape(s.label)}</td>'
            f"<td>{escape(s.peak_cell)}<br><small>{s.lat:.5f}, {s.lon:.5f} · "
            f"{len(s.cells)} cell(s)</small></td>"
            f"<td>{escape(grid.name) if grid else '—'}</td>"
            f'<td class="n">{_num(s.level)} {escape(s.unit)}</td>'
            f'<td class="n">{_num(s.enhancement)} [{_num(low)}, {_num(high)}]</td>'
            f'<td class="n">{s.persistence * 100:.0f}%</td>'
            f'<td class="n">{s.passes} / {s.days} / {s.vehicles}</td>'
            f"<td>{escape(band)}</td>"
            f"<td><small>{escape(profile)}</small></td>"
            f"<td><small>{escape(reasons)}</small></td>"
            "</tr>"
        )
    if not rows:
        return '<tr><td colspan="12">No hotspot in this period and area.</td></tr>'
    return "".join(rows)


def _grid_rows(inv: Inventory) -> str:
    rows = []
    grids: list[Grid | None] = [*inv.grids, None]
    for grid in grids:
        spots = [
            s for s, g in inv.hotspots if (g is None if grid is None else g and g.id == grid.id)
        ]
        cases = [c for c in inv.cases if c.grid_id == (None if grid is None else grid.id)]
        if grid is None and not spots and not cases:
            continue
        labels = Counter(s.label for s in spots)
        statuses = Counter(c.status for c in cases)
        rows.append(
            "<tr>"
            f"<td>{escape(grid.name) if grid else '(outside every grid)'}</td>"
            f"<td>{escape(grid.responsible) if grid else '—'}</td>"
            f'<td class="n">{len(spots)}</td>'
            f'<td class="n">{labels.get("persistent", 0)}</td>'
            f'<td class="n">{labels.get("candidate", 0)}</td>'
            f'<td class="n">{labels.get("episodic", 0)}</td>'
            f'<td class="n">{len(cases)}</td>'
            f"<td>{escape(', '.join(f'{k} {v}' for k, v in sorted(statuses.items())) or '—')}</td>"
            "</tr>"
        )
    return "".join(rows) or '<tr><td colspan="8">No management grid uploaded.</td></tr>'


def _case_rows(found: Sequence[Case]) -> str:
    rows = []
    for c in found:
        v = c.verification or {}
        verdict = "—"
        if v:
            verdict = (
                f"{escape(str(v.get('verdict')))}: change {_num(v.get('change'))} "
                f"[{_num(v.get('interval_low'))}, {_num(v.get('interval_high'))}] "
                f"{escape(str(v.get('unit', '')))}, p {_num(v.get('p_value'), 3)}, "
                f"passes {v.get('passes_before', '—')}/{v.get('passes_after', '—')}"
            )
        rows.append(
            "<tr>"
            f'<td class="n">{c.id}</td><td>{escape(c.title)}</td><td>{escape(c.pollutant)}</td>'
            f"<td>{escape(c.cell)}</td><td>{escape(c.status)}</td>"
            f"<td>{_when(c.treated_at)}</td><td><small>{verdict}</small></td>"
            "</tr>"
        )
    return "".join(rows) or '<tr><td colspan="7">No case in this area.</td></tr>'


def render(inv: Inventory) -> str:
    """The report as one HTML page."""
    layers = MapLayers(
        cells=inv.cells,
        tracks=inv.tracks,
        grids=[(g.name, [rings[0] for rings in g.area.polygons]) for g in inv.grids],
        hotspots=[
            MapHotspot(n, s.label, s.geometry, s.lon, s.lat)
            for n, (s, _) in enumerate(inv.hotspots, 1)
        ],
    )
    run = inv.run
    legend = "".join(
        f'<span><i class="swatch" style="background:{c}"></i>{k}</span>'
        for k, c in (("persistent", "#c0392b"), ("candidate", "#e67e22"), ("episodic", "#8e44ad"))
    )
    title = "Environment inventory"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style></head><body>
<h1>{title} · 环境清单</h1>
<p class="meta">Period {_when(run.window_start)} – {_when(run.window_end)} (analysis run {run.id},
{run.passes} passes of {run.vehicles} vehicles, H3 resolution {run.resolution}) ·
Area: {escape(inv.area.describe())} · Pollutant: {escape(inv.pollutant or "all")} ·
Generated {_when(inv.generated_at)}</p>
<p class="noprint"><button onclick="window.print()">Print</button></p>
<h2>Map · 地图</h2>
{render_map(layers)}
<p class="legend note">{legend}<span>grey: patrolled cells (darker: more passes)</span>
<span>blue: vehicle tracks</span><span>green dashes: management grids</span></p>
<h2>Hotspots, ranked · 热点排名 ({len(inv.hotspots)})</h2>
<table><thead><tr><th>#</th><th>Pollutant / stratum</th><th>Label</th><th>Peak cell</th>
<th>Grid</th><th>Level</th><th>Enhancement [95% interval]</th><th>Persistence</th>
<th>Passes / days / vehicles</th><th>Indicative band</th><th>Time-of-day profile</th>
<th>Evidence</th></tr></thead><tbody>{_hotspot_rows(inv.hotspots)}</tbody></table>
<h2>Per management grid · 网格汇总</h2>
<table><thead><tr><th>Grid</th><th>Responsible</th><th>Hotspots</th><th>Persistent</th>
<th>Candidate</th><th>Episodic</th><th>Cases</th><th>Case status</th></tr></thead>
<tbody>{_grid_rows(inv)}</tbody></table>
<h2>Cases and verification · 案件与核查 ({len(inv.cases)})</h2>
<table><thead><tr><th>#</th><th>Title</th><th>Pollutant</th><th>Cell</th><th>Status</th>
<th>Treated</th><th>Before/after test</th></tr></thead><tbody>{_case_rows(inv.cases)}</tbody></table>
<p class="note">{NOTE}</p>
</body></html>
"""
