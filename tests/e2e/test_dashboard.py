"""The dashboard in headless Chromium (Selenium with the system's chromedriver) against a real
API and database: hotspots on the map and in the table, a detail panel, a case opened.

The first test's database holds patrol readings written with SQL (the integration tests'
street with one source); the second's, four days of patrols from the box simulator's pollution
field and route stored by the ingest's writer (demo/patrol_data.py). Screenshots go
to var/screenshots/ (not committed).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import h3
import psycopg
import pytest

from api import keys
from api.routes.dashboard import DEFAULT_VENDOR_DIR
from api.settings import ApiSettings
from demo import job as demo_job
from demo.patrol_data import simulated_readings, store_readings
from firmware_sim.field import SHUANGJING_SOURCES
from firmware_sim.geo import haversine_m
from hotspots.job import JobSettings, serve_pending
from tests.integration.test_api import (
    BASE,
    HOT,
    analyse,
    cell_of,
    insert_readings,
    patrol_rows,
    roll_up,
    route_point,
)
from tests.integration.test_api_hotspots import street_file
from tests.integration.test_api_live import serve
from tests.integration.test_api_officers import grid_upload

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"

if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "needs chromium and chromedriver (Debian: chromium, chromium-driver)",
        allow_module_level=True,
    )
if not (DEFAULT_VENDOR_DIR / "leaflet" / "leaflet.js").is_file():
    pytest.skip(
        "run api/dashboard/build first (installs Leaflet from npm)", allow_module_level=True
    )

from selenium import webdriver  # noqa: E402 - only where a browser exists
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (NoSuchElementException, StaleElementReferenceException):
            value = None  # the page is re-rendering that part: not yet
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def click_when(find: Callable[[], list[Any]], what: str, timeout: float = 20.0) -> None:
    """Click the first element `find` returns once there is one. The page redraws parts of
    itself after each change, so an element found a moment before may be gone by the click:
    that is tried again, not a failure."""

    def clicked() -> bool:
        elements = find()
        if not elements:
            return False
        elements[0].click()
        return True

    wait_for(clicked, what, timeout)


def buttons(browser: webdriver.Chrome, css: str, text: str) -> Callable[[], list[Any]]:
    return lambda: [b for b in browser.find_elements(By.CSS_SELECTOR, css) if b.text == text]


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,950",
                     "--disable-dev-shm-usage", "--lang=en-US"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def test_hotspots_show_and_a_case_can_be_opened(
    database_url: str, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = patrol_rows(hot=40.0)
        insert_readings(conn, rows)
        roll_up(conn)
        for vehicle in ("car-a", "car-b"):
            last = max((r for r in rows if r.vehicle == vehicle), key=lambda r: r.time)
            conn.execute(
                "INSERT INTO vehicle (vehicle, last_seq, last_time, last_lat, last_lon, state)"
                " VALUES (%s, %s, %s, %s, %s, 'online')",
                (vehicle, last.seq, last.time, last.lat, last.lon),
            )
        admin_key = keys.create(conn, "Dashboard test", "admin").key
        analyse(conn, BASE + timedelta(days=5))  # the hotspot job's run the dashboard shows
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    hot_cell = cell_of(*route_point(HOT))
    for base in serve(ApiSettings(database_url=database_url)):
        url = f"{base}/?pollutant=pm25&from=2025-03-01T00:00:00Z&to=2025-03-10T00:00:00Z"
        browser.get(url)
        browser.execute_script(
            "localStorage.setItem('envpatrol.key', arguments[0]);"
            "localStorage.setItem('envpatrol.lang', 'en');",
            admin_key,
        )
        browser.get(url)
        wait_for(lambda: browser.execute_script("return document.body.dataset.loaded"), "the data")

        table = browser.find_elements(By.CSS_SELECTOR, "#hotspots tbody tr")
        assert [r.get_attribute("data-cell") for r in table] == [hot_cell]
        # The hotspot cell is drawn on the map (an SVG path of Leaflet's overlay pane).
        wait_for(
            lambda: len(browser.find_elements(By.CSS_SELECTOR, ".leaflet-overlay-pane path")) >= 3,
            "the hotspot cell and the two vehicles' tracks on the map",
        )
        assert len(browser.find_elements(By.CSS_SELECTOR, ".leaflet-marker-pane .vehicle-dot")) == 2
        browser.save_screenshot(str(SCREENSHOTS / "dashboard-hotspots.png"))

        assert "persistent" in table[0].text or "candidate" in table[0].text
        assert "Analysis run" in browser.find_element(By.ID, "run-note").text
        assert "/v1/reports/inventory?" in str(
            browser.find_element(By.ID, "report-link").get_attribute("href")
        )
        # With a key set, the report is fetched with the key and opened in a new tab.
        dashboard_tab = browser.current_window_handle
        browser.find_element(By.CSS_SELECTOR, ".tools summary").click()
        browser.find_element(By.ID, "report-link").click()
        wait_for(lambda: len(browser.window_handles) == 2, "the report's tab")
        browser.switch_to.window(next(h for h in browser.window_handles if h != dashboard_tab))
        wait_for(lambda: browser.find_elements(By.TAG_NAME, "h1"), "the report")
        assert browser.current_url.startswith("blob:")
        assert "环境清单" in browser.find_element(By.TAG_NAME, "h1").text
        browser.close()
        browser.switch_to.window(dashboard_tab)

        table[0].click()
        # The evidence: the time-of-day profile and the pass history charts.
        wait_for(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#detail-body svg.chart.profile rect"),
            "the time-of-day profile chart",
        )
        dots = browser.find_elements(By.CSS_SELECTOR, "#detail-body svg.chart circle")
        assert len(dots) == 16  # the hotspot's passes
        open_case = buttons(browser, "#case-panel button", "Open a case")
        wait_for(open_case, "the case button")
        browser.save_screenshot(str(SCREENSHOTS / "dashboard-detail.png"))
        click_when(open_case, "the case button")
        wait_for(
            lambda: "open" in browser.find_element(By.ID, "cases").text, "the new case in the list"
        )
        dispatch = buttons(browser, "#case-panel button", "Dispatch")
        wait_for(dispatch, "the dispatch button")
        browser.save_screenshot(str(SCREENSHOTS / "dashboard-case.png"))
        click_when(dispatch, "the dispatch button")
        wait_for(lambda: "dispatched" in browser.find_element(By.ID, "cases").text, "dispatched")

        # The grid workflow: assigned with a deadline, a photo, all in the case's history.
        assignee = wait_for(
            lambda: browser.find_elements(By.ID, "case-assignee"), "the assignment form"
        )[0]
        assignee.send_keys("Street team 3")
        browser.execute_script(
            "document.getElementById('case-deadline').value = '2025-03-01';"
        )  # a date already past: the case is overdue
        click_when(buttons(browser, ".case-form button", "Save"), "the Save button")
        wait_for(
            lambda: "Overdue" in browser.find_element(By.ID, "case-panel").text,
            "the assignment and the overdue badge",
        )
        photo = tmp_path / "before.png"
        photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
        browser.find_element(By.ID, "case-photo").send_keys(str(photo))
        wait_for(
            lambda: "Photo added" in browser.find_element(By.CSS_SELECTOR, ".timeline").text,
            "the photo in the case's history",
        )
        assert browser.find_elements(By.CSS_SELECTOR, "#case-panel .photos img")
        wait_for(
            lambda: "Assigned" in browser.find_element(By.CSS_SELECTOR, ".timeline").text,
            "the assignment in the case's history",
        )
        browser.find_element(By.ID, "overdue-only").click()  # the overdue list holds it
        wait_for(
            lambda: "Overdue" in browser.find_element(By.ID, "cases").text,
            "the case in the overdue list",
        )
        browser.save_screenshot(str(SCREENSHOTS / "dashboard-case-work.png"))

        # Officers upload their grids; the hotspot is then tagged with its grid.
        upload = tmp_path / "grids.geojson"
        upload.write_text(json.dumps(grid_upload()), encoding="utf-8")
        browser.find_element(By.ID, "grid-file").send_keys(str(upload))
        wait_for(
            lambda: "East grid" in browser.find_element(By.CSS_SELECTOR, "#hotspots tbody").text,
            "the hotspot tagged with its grid",
        )
        options = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#grid option")]
        assert options == ["All grids", "East grid", "西区网格"]

        # Chinese labels.
        browser.find_element(By.ID, "lang").click()
        wait_for(
            lambda: browser.find_element(By.CSS_SELECTOR, "h2").text == "热点", "Chinese labels"
        )
        wait_for(
            lambda: "浓度" in browser.find_element(By.ID, "detail-body").text,
            "the detail panel in Chinese",
        )
        browser.save_screenshot(str(SCREENSHOTS / "dashboard-zh.png"))
        assert browser.find_element(By.ID, "message").text == ""
        assert_translated(browser)
        browser.find_element(By.ID, "lang").click()
        wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "h2").text == "Hotspots", "English")
        assert_translated(browser)
        browser.find_element(By.ID, "lang").click()

        # The address names the selected place's site; that link opens on it.
        named = re.search(r"[?&]site=([0-9]+)", browser.current_url)
        assert named is not None, browser.current_url
        site_link = f"{base}/?site={named.group(1)}"
        browser.get(site_link + "&from=2025-03-01T00:00:00Z&to=2025-03-10T00:00:00Z")
        wait_for(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#hotspots tbody tr.selected"),
            "the linked site's hotspot selected",
        )
        assert "pollutant=pm25" in browser.current_url

        # A vehicle's own view: its time series and a playback along the map.
        browser.find_element(By.LINK_TEXT, "car-a").click()
        slider = wait_for(lambda: browser.find_elements(By.ID, "playback"), "the playback slider")
        assert browser.find_elements(By.CSS_SELECTOR, "#detail-body svg.chart path")
        first_at = browser.find_element(By.ID, "playback-at").text
        browser.execute_script(
            "const s = arguments[0]; s.value = s.max; s.dispatchEvent(new Event('input'));",
            slider[0],
        )
        assert browser.find_element(By.ID, "playback-at").text != first_at

        # A new run with a hotspot where the last run had none is a toast.
        browser.execute_script("window.EnvDashboard.toast('New hotspot: pm25')")
        assert "New hotspot" in browser.find_element(By.ID, "toasts").text

    with psycopg.connect(database_url) as conn:
        found = conn.execute("SELECT cell, status FROM hotspot_case").fetchall()
    assert found == [(hot_cell, "dispatched")]


RAW_KEY = re.compile(
    r"\b(stratum|label|band|verdict|reason|event|assignee|period|noise|level)_[a-z_]+\b"
)


def assert_translated(browser: webdriver.Chrome) -> None:
    """No translation key, raw code or ASCII unit shows on the page."""
    text = str(browser.execute_script("return document.body.innerText"))
    assert not RAW_KEY.search(text), RAW_KEY.search(text)
    for raw in ("ug/m3", "no-significant-change", "median_z", "insufficient-data"):
        assert raw not in text, raw


def distance_m(cell: str, lat: float, lon: float) -> float:
    centre_lat, centre_lon = h3.cell_to_latlng(cell)
    return haversine_m(centre_lat, centre_lon, lat, lon)


def test_the_simulated_sources_show_on_the_map_and_in_the_table(
    database_url: str, browser: webdriver.Chrome
) -> None:
    """Four days of two vehicles' patrols from the box simulator's field: each injected source
    is a hotspot of its pollutant within 100 m, in the table and on the map."""
    store_readings(database_url, simulated_readings(datetime(2026, 5, 4, tzinfo=UTC)))
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert demo_job.run_to_newest(conn, JobSettings()) is not None
    expected = {"dust": "pm10", "cooking": "cooking_fume", "traffic": "no2"}
    for base in serve(ApiSettings(database_url=database_url)):
        for source in SHUANGJING_SOURCES:
            pollutant = expected[source.kind]
            browser.get(
                f"{base}/?pollutant={pollutant}&from=2026-05-01T00:00:00Z&to=2026-05-10T00:00:00Z"
            )
            browser.execute_script("localStorage.setItem('envpatrol.lang', 'en');")
            wait_for(lambda: browser.execute_script("return document.body.dataset.loaded"), "data")
            cells = [
                r.get_attribute("data-cell")
                for r in browser.find_elements(By.CSS_SELECTOR, "#hotspots tbody tr")
            ]
            near = [c for c in cells if c and distance_m(c, source.lat, source.lon) < 100]
            assert near, (source.name, pollutant, cells)
            drawn = browser.find_elements(By.CSS_SELECTOR, ".leaflet-overlay-pane path")
            assert len(drawn) >= len(cells)
            browser.save_screenshot(str(SCREENSHOTS / f"simulated-{pollutant}.png"))


@pytest.mark.parametrize(
    ("width", "height", "lang"),
    [(1280, 800, "en"), (1280, 800, "zh"), (412, 915, "zh"), (360, 740, "en")],
)
def test_the_page_fits_desktops_and_phones_in_both_languages(
    database_url: str, browser: webdriver.Chrome, width: int, height: int, lang: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        insert_readings(conn, patrol_rows(hot=40.0))
        roll_up(conn)
        analyse(conn, BASE + timedelta(days=5))
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 800},
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for base in serve(ApiSettings(database_url=database_url)):
        url = f"{base}/?pollutant=pm25&from=2025-03-01T00:00:00Z&to=2025-03-10T00:00:00Z"
        browser.get(url)
        browser.execute_script("localStorage.setItem('envpatrol.lang', arguments[0]);", lang)
        browser.get(url)
        wait_for(lambda: browser.execute_script("return document.body.dataset.loaded"), "data")
        click_when(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#hotspots tbody tr[data-cell]"),
            "the hotspot row",
        )
        wait_for(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#hotspots tbody tr.selected"),
            "the selection",
        )
        geometry = browser.execute_script(
            """
            const rect = (el) => el.getBoundingClientRect();
            const map = rect(document.getElementById('map'));
            const header = rect(document.querySelector('header'));
            const main = rect(document.querySelector('main'));
            const wrap = document.querySelector('.table-wrap');
            const selected = window.EnvDashboard.state.selected;
            const shape = selected && selected._layer && selected._layer.getLayers()[0]._path;
            return {
              overflow: document.documentElement.scrollWidth - window.innerWidth,
              headerBottom: header.bottom, mainTop: main.top, mainBottom: main.bottom,
              viewport: window.innerHeight,
              map: [map.left, map.top, map.right, map.bottom],
              shape: shape ? [rect(shape).left, rect(shape).top, rect(shape).right, rect(shape).bottom] : null,
              tableFits: wrap.scrollWidth <= wrap.clientWidth || getComputedStyle(wrap).overflowX === 'auto',
            };
            """
        )
        legend = wait_for(
            lambda: (
                "µg/m³" in browser.find_element(By.ID, "map-legend").text
                and browser.find_element(By.ID, "map-legend").text
            ),
            "the track's colour scale in the legend",
        )
        assert ("优" if lang == "zh" else "excellent") in legend
        browser.save_screenshot(str(SCREENSHOTS / f"layout-{width}x{height}-{lang}.png"))
        assert geometry["overflow"] <= 0, geometry  # no sideways scrolling
        assert geometry["headerBottom"] <= geometry["mainTop"] + 1, geometry  # nothing covered
        assert geometry["mainBottom"] <= geometry["viewport"] + 1, geometry  # nothing pushed out
        left, top, right, bottom = geometry["map"]
        assert bottom - top >= 0.4 * height, geometry  # the map is there, first
        assert right - left >= 0.6 * width, geometry
        assert geometry["tableFits"], geometry
        shape = geometry["shape"]
        assert shape is not None, geometry
        # the selected hotspot in view: its shape overlaps the map's box
        assert min(right, shape[2]) >= max(left, shape[0]), geometry
        assert min(bottom, shape[3]) >= max(top, shape[1]), geometry
        assert_translated(browser)


def test_from_and_to_choose_the_analysis_run_or_request_one(
    database_url: str, browser: webdriver.Chrome
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        insert_readings(conn, patrol_rows(hot=40.0))
        roll_up(conn)
        analyse(conn, BASE + timedelta(days=5))  # a run over the 30 days before day 5
        admin_key = keys.create(conn, "Dashboard test", "admin").key
    for base in serve(ApiSettings(database_url=database_url)):
        url = f"{base}/?pollutant=pm25"
        browser.get(url)
        browser.execute_script(
            "localStorage.setItem('envpatrol.key', arguments[0]);"
            "localStorage.setItem('envpatrol.lang', 'en');",
            admin_key,
        )
        browser.get(url)
        wait_for(lambda: browser.execute_script("return document.body.dataset.loaded"), "data")
        first = browser.find_element(By.ID, "run-note").text
        assert "Analysis run" in first
        # A window reaching past the run's end (day 5): no run covers it until one is requested.
        browser.execute_script(
            """
            const set = (id, value) => {
              const el = document.getElementById(id);
              el.value = value;
              el.dispatchEvent(new Event('change'));
            };
            set('from', '2025-03-04T00:00');
            set('to', '2025-03-09T00:00');
            """
        )
        click_when(
            buttons(browser, "#run-note button", "Analyse this period"),
            "the offer to analyse the period",
        )
        with psycopg.connect(database_url, autocommit=True) as conn:
            wait_for(
                lambda: serve_pending(conn, JobSettings(window=timedelta(days=30))) or None,
                "the job to take the request",
            )

        def newer_run(shown: str = first) -> bool:
            note = browser.find_element(By.ID, "run-note").text
            return "Analysis run" in note and note != shown

        wait_for(
            newer_run,
            "the list from the requested run",
            timeout=30,
        )
        assert "2025" in browser.find_element(By.ID, "run-note").text


def test_an_officer_on_a_phone_in_chinese_goes_from_the_map_to_a_verified_treatment(
    database_url: str, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    """Map -> hotspot -> its street and evidence -> a case assigned with a deadline -> dispatch
    -> treated -> the before/after verification, at 412 px in Chinese."""
    before = patrol_rows(hot=40.0, days=4)
    after = patrol_rows(hot=0.0, days=4)
    last_seq = max(r.seq for r in before)
    for r in after:
        r.time += timedelta(days=4)
        r.seq += last_seq
    lat, lon = route_point(HOT)
    streets = street_file(tmp_path / "streets.geojson", lat, lon, "双井街", "Shuangjing Street")
    with psycopg.connect(database_url, autocommit=True) as conn:
        insert_readings(conn, before + after)
        roll_up(conn)
        # the run the officer sees covers the days before the treatment; the passes of all
        # eight days are stored for the before/after test
        analyse(conn, BASE + timedelta(days=4), window_days=5)
        admin_key = keys.create(conn, "Officer Wang", "admin").key
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 412, "height": 915, "deviceScaleFactor": 1, "mobile": True},
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def press(text: str) -> None:
        click_when(buttons(browser, "#case-panel button", text), f"the {text} button")

    for base in serve(ApiSettings(database_url=database_url, streets_file=str(streets))):
        url = f"{base}/?pollutant=pm25"
        browser.get(url)
        browser.execute_script(
            "localStorage.setItem('envpatrol.key', arguments[0]);"
            "localStorage.setItem('envpatrol.lang', 'zh');",
            admin_key,
        )
        browser.get(url)
        wait_for(lambda: browser.execute_script("return document.body.dataset.loaded"), "data")

        click_when(
            lambda: [
                row
                for row in browser.find_elements(By.CSS_SELECTOR, "#hotspots tbody tr[data-cell]")
                if "双井街" in row.text  # its street
            ][:1],
            "the hotspot on its street, in the drawer",
        )
        wait_for(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#detail-body svg.chart"),
            "its evidence",
        )
        assert (
            "中位值高出周边" in browser.find_element(By.ID, "detail-body").text
        )  # the evidence, in Chinese
        press("立案")
        assignee = wait_for(lambda: browser.find_elements(By.ID, "case-assignee"), "the form")[0]
        assignee.send_keys("双井街道城管队")
        browser.execute_script("document.getElementById('case-deadline').value = '2025-03-20';")
        press("保存")
        wait_for(
            lambda: "双井街道城管队" in browser.find_element(By.CSS_SELECTOR, ".timeline").text,
            "the assignment in the history",
        )
        # the picked day is that day in the sub-district (Asia/Shanghai), whatever the browser's
        assert "2025/3/20 23:59:59" in browser.find_element(By.ID, "case-panel").text
        press("派遣")
        wait_for(lambda: browser.find_elements(By.ID, "case-treated"), "the treatment date")
        browser.execute_script("document.getElementById('case-treated').value = '2025-03-07';")
        press("标记已处置")
        press("核查（处置前后对比）")
        wait_for(
            lambda: "下降" in browser.find_element(By.ID, "case-panel").text,
            "the verdict: decreased",
            timeout=30,
        )
        browser.save_screenshot(str(SCREENSHOTS / "officer-phone-zh.png"))
        assert_translated(browser)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0
