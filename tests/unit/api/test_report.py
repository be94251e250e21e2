"""Pure parts of the hotspot routes: the inventory's SVG map, the report page, the strata of a
pass, the run request's window."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import h3
from hypothesis import given
from hypothesis import strategies as st

from api.report import Inventory, ReportArea, render
from api.report_svg import MapHotspot, MapLayers, _overlap, place_labels, render_map
from hotspots.analysis.settings import AnalysisSettings
from hotspots.evidence import strata_of
from hotspots.results import StoredDrive, StoredHotspot, StoredRun
from hotspots.run_writer import settings_json
from store.conditions import BBox

CELL = h3.latlng_to_cell(39.893, 116.462, 10)
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def run(**settings: object) -> StoredRun:
    return StoredRun(
        id=7,
        started_at=T0,
        finished_at=T0,
        window_start=T0 - timedelta(days=30),
        window_end=T0,
        resolution=10,
        passes=100,
        vehicles=2,
        hotspots=1,
        settings={
            "timezone": "Asia/Shanghai",
            "strata": [["all_day", 0, 1440], ["lunch", 630, 810], ["night", 1320, 360]],
            **settings,
        },
        method="test",
    )


def spot(label: str = "persistent") -> StoredHotspot:
    ring = [[lon, lat] for lat, lon in h3.cell_to_boundary(CELL)]
    lat, lon = h3.cell_to_latlng(CELL)
    return StoredHotspot(
        run_id=7, rank=0, pollutant="pm25", unit="ug/m3", stratum="all_day", label=label,
        reasons=(
            {"code": "magnitude", "detail": "median excess 40"},
            {"code": "<script>", "detail": "a code from elsewhere"},
        ),
        geometry={"type": "Polygon", "coordinates": [[*ring, ring[0]]]}, peak_cell=CELL,
        cells=((CELL, label),), lat=lat, lon=lon, level=80.0, enhancement=40.0,
        enhancement_interval=(35.0, 45.0), excess=39.0, persistence=0.9, delta=10.0, passes=20,
        days=5, vehicles=2, p_magnitude=1e-6, q_magnitude=1e-5, gi_z=None, gi_q=None,
        moran_i=None, high_low_q=None, first_seen=T0 - timedelta(days=5), last_seen=T0,
        profile={"all_day": 40.0, "lunch": None}, band={"category": "light", "indicative": True},
        drives=(StoredDrive("car-a", date(2026, 4, 30)),),
    )  # fmt: skip


def test_strata_follow_local_time_and_wrap_midnight() -> None:
    # 03:00 UTC is 11:00 in Beijing: lunch; 15:00 UTC is 23:00: night.
    assert strata_of(T0.replace(hour=3), run()) == ("all_day", "lunch")
    assert strata_of(T0.replace(hour=15), run()) == ("all_day", "night")
    assert strata_of(T0.replace(hour=8), run()) == ("all_day",)


def test_strata_of_the_job_s_own_settings_include_two_window_strata() -> None:
    stored = run(**settings_json(AnalysisSettings(timezone="Asia/Shanghai")))
    # 04:00 UTC is 12:00 in Beijing: lunch and meals (lunch and dinner windows together)
    assert {"all_day", "lunch", "meals"} <= set(strata_of(T0.replace(hour=4), stored))
    # 10:00 UTC is 18:00: dinner and meals
    assert {"all_day", "dinner", "meals"} <= set(strata_of(T0.replace(hour=10), stored))


def test_the_map_draws_every_layer_inside_its_box() -> None:
    lat, lon = h3.cell_to_latlng(CELL)
    svg = render_map(
        MapLayers(
            cells=[(CELL, 3), (h3.grid_disk(CELL, 1)[1], 1)],
            tracks=[[(lon - 0.002, lat), (lon + 0.002, lat)]],
            grids=[("东区 <1>", [[(lon - 0.003, lat - 0.003), (lon + 0.003, lat - 0.003),
                                 (lon + 0.003, lat + 0.003), (lon - 0.003, lat - 0.003)]])],
            hotspots=[MapHotspot(1, "persistent", spot().geometry, lon, lat)],
        ),
        width=400,
        height=300,
    )  # fmt: skip
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert "东区 &lt;1&gt;" in svg
    assert "#c0392b" in svg
    numbers = [float(n) for n in re.findall(r"[ML](-?[0-9.]+),(-?[0-9.]+)", svg) for n in n]
    assert numbers
    assert all(-1 <= n <= 401 for n in numbers)
    assert render_map(MapLayers()).startswith("<p")


def test_the_report_is_one_escaped_page() -> None:
    page = render(
        Inventory(
            run=run(),
            area=ReportArea(bbox=BBox(116.0, 39.0, 117.0, 40.0)),
            pollutant="pm25",
            hotspots=[(spot(), None)],
            cells=[(CELL, 4)],
            tracks=[],
            grids=[],
            cases=[],
            generated_at=T0,
        )
    )
    assert page.startswith("<!doctype html>")
    assert "<script>" not in page
    assert "&lt;script&gt;" in page  # an unknown reason code, escaped
    assert "高于周边 above its surroundings" in page  # evidence summarised, in both languages
    assert "label-persistent" in page
    assert "持续型 persistent" in page
    assert "热点排名 · Hotspots, ranked" in page
    assert "细颗粒物" in page or "PM2.5" in page
    assert "µg/m³" in page
    assert "No case in this area." in page
    assert "@media print" in page
    assert "counter(page)" in page  # page numbers when printed
    # times in the report's zone (Asia/Shanghai by default): T0 + 8 h
    assert f"{(T0 + timedelta(hours=8)):%Y-%m-%d %H:%M}" in page
    assert "(Asia/Shanghai)" in page


def test_an_area_is_a_box_and_a_grid() -> None:
    area = ReportArea(bbox=BBox(116.0, 39.0, 117.0, 40.0))
    assert area.contains(116.5, 39.5)
    assert not area.contains(118.0, 39.5)
    assert ReportArea().contains(0.0, 0.0)
    assert "box" in area.describe()


@given(
    st.lists(st.tuples(st.floats(370.0, 430.0), st.floats(250.0, 310.0)), min_size=1, max_size=25)
)
def test_map_labels_never_overlap_even_in_a_crowd(points: list[tuple[float, float]]) -> None:
    texts = [str(i + 1) for i in range(len(points))]
    placed = place_labels(points, texts, 800, 560)
    boxes: list[tuple[float, float, float, float]] = []
    for (x, y), text in zip(placed, texts, strict=True):
        w = 7.5 * len(text) + 4
        box = (x - w / 2, y - 11, x + w / 2, y + 3)
        assert min(box[0], box[1]) >= 0  # inside the map
        assert box[2] <= 800
        assert box[3] <= 560
        assert not any(_overlap(box, other) for other in boxes)
        boxes.append(box)
