"""WGS-84 to GCJ-02 / BD-09 against the reference figures in standards.md."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.datum import gcj02_to_wgs84, outside_china, wgs84_to_bd09, wgs84_to_gcj02

SHUANGJING = (116.462, 39.893)  # WGS-84 lon, lat (standards.md)


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Equirectangular distance: exact enough at a few kilometres."""
    radius = 6_371_008.8
    mid = math.radians((a[1] + b[1]) / 2)
    dx = math.radians(b[0] - a[0]) * math.cos(mid) * radius
    dy = math.radians(b[1] - a[1]) * radius
    return math.hypot(dx, dy)


def test_gcj02_moves_shuangjing_about_544_m_north_east() -> None:
    lon, lat = wgs84_to_gcj02(*SHUANGJING)
    assert abs(metres(SHUANGJING, (lon, lat)) - 544) < 5
    assert lon > SHUANGJING[0]
    assert lat > SHUANGJING[1]
    # The published formula's value at this point, to about a millimetre.
    assert math.isclose(lon, 116.468141, abs_tol=1e-6)
    assert math.isclose(lat, 39.894327, abs_tol=1e-6)


def test_bd09_moves_shuangjing_about_1_34_km() -> None:
    assert abs(metres(SHUANGJING, wgs84_to_bd09(*SHUANGJING)) - 1340) < 10


def test_outside_china_nothing_moves() -> None:
    for point in ((2.35, 48.85), (-74.0, 40.7), (151.2, -33.9)):
        assert outside_china(*point)
        assert wgs84_to_gcj02(*point) == point


@given(
    st.floats(min_value=73.0, max_value=135.0),
    st.floats(min_value=18.0, max_value=53.0),
)
def test_the_inverse_returns_within_a_centimetre(lon: float, lat: float) -> None:
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert metres((lon, lat), back) < 0.01


@given(
    st.floats(min_value=73.0, max_value=135.0),
    st.floats(min_value=18.0, max_value=53.0),
)
def test_the_shift_is_always_under_a_kilometre_and_a_half(lon: float, lat: float) -> None:
    # Within mainland China the GCJ-02 offset is a few hundred metres, never kilometres.
    assert metres((lon, lat), wgs84_to_gcj02(lon, lat)) < 1500


DASHBOARD_DATUM = Path(__file__).resolve().parents[3] / "api" / "dashboard" / "static" / "datum.js"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_dashboard_converts_exactly_as_the_api() -> None:
    points = [SHUANGJING, (116.30, 39.99), (121.47, 31.23), (113.26, 23.13), (2.35, 48.85)]
    script = (
        "globalThis.window = globalThis;"
        f"require({json.dumps(str(DASHBOARD_DATUM))});"
        f"const points = {json.dumps(points)};"
        "console.log(JSON.stringify(points.map(([lon, lat]) => ["
        "window.EnvDatum.wgs84ToGcj02(lon, lat), window.EnvDatum.gcj02ToWgs84(lon, lat)])));"
    )
    done = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    for (lon, lat), (forward, inverse) in zip(points, json.loads(done.stdout), strict=True):
        assert forward == pytest.approx(wgs84_to_gcj02(lon, lat), abs=1e-12)
        assert inverse == pytest.approx(gcj02_to_wgs84(lon, lat), abs=1e-12)
