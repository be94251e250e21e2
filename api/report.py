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
from zoneinfo import ZoneInfo

import h3
import psycopg

from api.officers import cases as case_store
from api.officers.cases import Case, CaseFilters
from api.officers.grids import Grid
from api.report_svg import MapHotspot, MapLayers, Position, render_map
from api.scopes import GridView
from api.streets import StreetLayer
from edge.units import CHANNELS
from hotspots.results import StoredHotspot, StoredRun
from store.conditions import BBox

Connection = psycopg.Connection[Any]

TRACK_POINTS = 20_000  # at most this many track points are drawn, evenly thinned

NOTE_ZH = (
    "移动监测的参考值，并非达标判定值：环境空气质量与声环境质量标准（GB 3095-2012、GB 3096-2008）"
    "适用于固定站点及其平均时段。"
)
NOTE = (
    "Indicative values from mobile monitoring on patrol vehicles, not compliance measurements: "
    "air quality and noise standards (GB 3095-2012, GB 3096-2008) apply to fixed sites and "
    "their averaging periods."
)


@dataclass(frozen=True, slots=True)
class ReportArea:
    """Where the report looks: a box, a grid, or (neither) everywhere; always only where the
    caller's key sees (`view`; None: everywhere)."""

    bbox: BBox | None = None
    grid: Grid | None = None
    view: GridView | None = None

    def contains(self, lon: float, lat: float) -> bool:
        if self.bbox is not None and not (
            self.bbox.west <= lon <= self.bbox.east and self.bbox.south <= lat <= self.bbox.north
        ):
            return False
        if self.view is not None and not self.view.sees(lon, lat):
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
    timezone: str = "Asia/Shanghai"  # times are printed in it
    streets: StreetLayer | None = None  # names the street of each hotspot


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
        CaseFilters(
            None,
            None if area.grid is None else area.grid.id,
            pollutant,
            scope=None if area.view is None else area.view.scope,
        ),
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
  @page { size: A4; margin: 12mm 10mm 14mm;
    @bottom-center { content: "第 " counter(page) " / " counter(pages) " 页 · page " counter(page) " / " counter(pages);
      font-size: 9px; color: #555; } }
  table.hotspots { table-layout: fixed; font-size: 9.5px; } table.hotspots td { overflow-wrap: anywhere; }
}
"""


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _when(moment: datetime | None, zone: str = "UTC") -> str:
    """A moment in the report's zone: 2025-03-03 09:00 (Asia/Shanghai)."""
    if moment is None:
        return "—"
    return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M}"


def _unit(text: str) -> str:
    return text.replace("ug/m3", "µg/m³").replace("mg/m3", "mg/m³")


def _pollutant(name: str) -> str:
    spec = CHANNELS.get(name)
    return escape(name) if spec is None else f"{escape(spec.label_zh)} {escape(spec.label)}"


LABELS = {
    "persistent": "持续型 persistent",
    "candidate": "候选 candidate",
    "episodic": "偶发型 episodic",
}
STRATA = {
    "all_day": "全天 all day", "meals": "用餐时段 meals", "lunch": "午餐 lunch",
    "dinner": "晚餐 dinner", "night": "夜间 night",
}  # fmt: skip
REASONS = {
    "passes": "经过足够 enough passes",
    "magnitude": "高于周边 above its surroundings",
    "share": "常居高位 often among the highest",
    "persistence": "多数偏高 raised on most passes",
    "gi_star": "周边同高 neighbours raised",
    "high_low_outlier": "低中之高 high among low",
    "episodes": "间歇突发 bursts",
    "episode_days": "部分日期 some days",
    "episode_window": "特定时段 certain hours",
}
CATEGORIES = {
    "excellent": "优", "good": "良", "lightly polluted": "轻度污染",
    "moderately polluted": "中度污染", "heavily polluted": "重度污染",
    "severely polluted": "严重污染",
}  # fmt: skip
VERDICTS = {
    "decreased": "下降 decreased", "increased": "上升 increased",
    "no-significant-change": "无显著变化 no significant change",
    "insufficient-data": "数据不足 not enough passes",
}  # fmt: skip
STATUSES = {
    "open": "待派遣 open", "dispatched": "已派遣 dispatched", "treated": "已处置 treated",
    "verified": "已核查 verified", "closed": "已结案 closed",
}  # fmt: skip


def _reason(reason: dict[str, Any]) -> str:
    """A reason as the officer reads it: its summary in both languages (runs since the
    summaries were written), else its code's title."""
    summary = reason.get("summary")
    if isinstance(summary, dict) and summary.get("zh") and summary.get("en"):
        return f"{escape(str(summary['zh']))} ({escape(str(summary['en']))})"
    code = str(reason.get("code", ""))
    return escape(REASONS.get(code, code))


def _band(band: dict[str, Any] | None) -> str:
    if not band:
        return "—"
    if band.get("category"):
        name = str(band["category"])
        return f"{CATEGORIES.get(name, name)} {name}"
    if band.get("noise_class") is not None:
        excess = float(band.get("excess") or 0.0)
        return f"GB 3096 {band['noise_class']}类 {'+' if excess >= 0 else ''}{excess:.1f} dB"
    return "—"


def _hotspot_rows(inv: Inventory) -> str:
    rows = []
    zone = inv.timezone
    for number, (s, grid) in enumerate(inv.hotspots, 1):
        street = None if inv.streets is None else inv.streets.street_at(s.lat, s.lon)
        place = escape(street.name) if street is not None else escape(s.peak_cell)
        reasons = " · ".join(_reason(r) for r in s.reasons)
        rows.append(
            "<tr>"
            f'<td class="n">{number}</td>'
            f"<td>{_pollutant(s.pollutant)}<br><small>{STRATA.get(s.stratum, escape(s.stratum))}"
            f"</small></td>"
            f'<td class="label-{escape(s.label)}">{LABELS.get(s.label, escape(s.label))}</td>'
            f"<td>{place}<br><small>{escape(grid.name) if grid else '—'} · "
            f"{s.lat:.5f}, {s.lon:.5f}</small></td>"
            f'<td class="n">{_num(s.level)}<br><small>{escape(_unit(s.unit))}</small></td>'
            f'<td class="n">{_num(s.enhancement)}</td>'
            f'<td class="n">{s.persistence * 100:.0f}%</td>'
            f'<td class="n">{s.passes} / {s.days} / {s.vehicles}</td>'
            f"<td>{escape(_band(s.band))}</td>"
            f"<td><small>{reasons}<br>{_when(s.first_seen, zone)} – {_when(s.last_seen, zone)}"
            "</small></td>"
            "</tr>"
        )
    if not rows:
        return '<tr><td colspan="10">本时段本区域无热点 · No hotspot in this period and area.</td></tr>'
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
            f"<td>{escape(grid.name) if grid else '网格外 outside every grid'}</td>"
            f"<td>{escape(grid.responsible) if grid else '—'}</td>"
            f'<td class="n">{len(spots)}</td>'
            f'<td class="n">{labels.get("persistent", 0)}</td>'
            f'<td class="n">{labels.get("candidate", 0)}</td>'
            f'<td class="n">{labels.get("episodic", 0)}</td>'
            f'<td class="n">{len(cases)}</td>'
            f"<td>{escape(', '.join(f'{STATUSES.get(k, k)} {v}' for k, v in sorted(statuses.items())) or '—')}</td>"
            "</tr>"
        )
    return (
        "".join(rows) or '<tr><td colspan="8">未上传网格 · No management grid uploaded.</td></tr>'
    )


def _case_rows(found: Sequence[Case], zone: str) -> str:
    rows = []
    for c in found:
        v = c.verification or {}
        verdict = "—"
        if v:
            name = str(v.get("verdict"))
            verdict = (
                f"{escape(VERDICTS.get(name, name))}: {_num(v.get('change'))} "
                f"[{_num(v.get('interval_low'))}, {_num(v.get('interval_high'))}] "
                f"{escape(_unit(str(v.get('unit', ''))))}, p {_num(v.get('p_value'), 3)}, "
                f"{v.get('passes_before', '—')}/{v.get('passes_after', '—')}"
            )
        assignee = escape(c.assignee) if c.assignee else "—"
        due = _when(c.deadline, zone) if c.deadline else "—"
        rows.append(
            "<tr>"
            f'<td class="n">{c.id}</td><td>{escape(c.title)}</td><td>{_pollutant(c.pollutant)}</td>'
            f"<td>{STATUSES.get(c.status, escape(c.status))}</td>"
            f"<td>{assignee}<br><small>{due}</small></td>"
            f"<td>{_when(c.treated_at, zone)}</td><td><small>{verdict}</small></td>"
            "</tr>"
        )
    return "".join(rows) or '<tr><td colspan="7">本区域无案件 · No case in this area.</td></tr>'


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
    zone = inv.timezone
    legend = "".join(
        f'<span><i class="swatch" style="background:{c}"></i>{LABELS[k]}</span>'
        for k, c in (("persistent", "#c0392b"), ("candidate", "#e67e22"), ("episodic", "#8e44ad"))
    )
    title = "环境清单 · Environment inventory"
    pollutant = _pollutant(inv.pollutant) if inv.pollutant else "全部 all"
    return f"""<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style></head><body>
<h1>{title}</h1>
<p class="meta">时段 Period {_when(run.window_start, zone)} – {_when(run.window_end, zone)}
({escape(zone)}) · 分析批次 run {run.id}: {run.passes} 次经过 passes, {run.vehicles} 辆车
vehicles, H3 {run.resolution} · 区域 Area: {escape(inv.area.describe())} · 污染物 Pollutant:
{pollutant} · 生成 Generated {_when(inv.generated_at, zone)}</p>
<p class="noprint"><button onclick="window.print()">打印 Print</button></p>
<h2>地图 · Map</h2>
{render_map(layers)}
<p class="legend note">{legend}<span>灰 grey: 巡查单元 patrolled cells</span>
<span>蓝 blue: 车辆轨迹 tracks</span><span>绿虚线 green dashes: 网格 grids</span></p>
<h2>热点排名 · Hotspots, ranked ({len(inv.hotspots)})</h2>
<table class="hotspots"><colgroup><col style="width:4%"><col style="width:13%">
<col style="width:9%"><col style="width:16%"><col style="width:7%"><col style="width:7%">
<col style="width:6%"><col style="width:8%"><col style="width:10%"><col style="width:20%">
</colgroup><thead><tr><th>#</th><th>污染物 / 时段<br>Pollutant / time</th><th>类别 Label</th>
<th>位置 Place<br>(网格 grid)</th><th>浓度 Level</th><th>超出背景 Excess</th>
<th>持续 Persist.</th><th>经过/天/车 Passes/days/veh.</th><th>参考等级 Band</th>
<th>依据 Evidence<br>首次–末次 first–last seen</th></tr></thead>
<tbody>{_hotspot_rows(inv)}</tbody></table>
<h2>网格汇总 · Per management grid</h2>
<table><thead><tr><th>网格 Grid</th><th>负责人 Responsible</th><th>热点 Hotspots</th>
<th>持续型 Persistent</th><th>候选 Candidate</th><th>偶发型 Episodic</th><th>案件 Cases</th>
<th>案件状态 Case status</th></tr></thead>
<tbody>{_grid_rows(inv)}</tbody></table>
<h2>案件与核查 · Cases and verification ({len(inv.cases)})</h2>
<table><thead><tr><th>#</th><th>标题 Title</th><th>污染物 Pollutant</th><th>状态 Status</th>
<th>承办 / 期限 Assignee / due</th><th>处置 Treated</th><th>前后对比 Before/after</th></tr>
</thead><tbody>{_case_rows(inv.cases, zone)}</tbody></table>
<p class="note">{NOTE_ZH}<br>{NOTE}</p>
</body></html>
"""
