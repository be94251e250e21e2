"""The fleet-month generator of the API benchmark at fleet scale, and its OpenAPI fitting."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.api_scale_data import (
    COPY_HEADER,
    PG_EPOCH,
    ROUTES,
    Fleet,
    FleetSpec,
    RouteArrays,
    copy_rows,
    stationary,
    text_array,
)
from bench.api_scale_http import Case, fit, percentile
from ingest.columns import CHANNEL_COLUMNS, COLUMNS


def decode_tuples(data: bytes) -> list[list[bytes | None]]:
    """Binary COPY tuples back to raw field bytes (the format's framing only)."""
    rows, at = [], 0
    while at < len(data):
        (count,) = struct.unpack_from(">h", data, at)
        at += 2
        row: list[bytes | None] = []
        for _ in range(count):
            (length,) = struct.unpack_from(">i", data, at)
            at += 4
            if length < 0:
                row.append(None)
            else:
                row.append(data[at : at + length])
                at += length
        rows.append(row)
    return rows


def test_stationary_after_a_minute_below_half_a_metre_per_second() -> None:
    speed = np.array([5.0] + [0.1] * 8 + [3.0] + [0.0] * 5 + [4.0])
    flags = stationary(speed, 10.0)
    # slow from index 1: still for 60 s at index 7 (six steps later)
    assert flags.tolist() == [False] * 7 + [True, True] + [False] * 7


def test_stationary_from_the_start() -> None:
    assert stationary(np.zeros(8), 10.0).tolist() == [False] * 6 + [True, True]


@given(st.sampled_from(range(len(ROUTES))), st.lists(st.floats(0, 50_000), min_size=1, max_size=20))
def test_route_arrays_walk_like_the_route(route: int, distances: list[float]) -> None:
    arrays = RouteArrays.of(ROUTES[route])
    lat, lon, _ = arrays.at(np.array(distances))
    for d, a, b in zip(distances, lat, lon, strict=True):
        point = ROUTES[route].at(d)
        assert a == pytest.approx(point.lat, abs=1e-9)
        assert b == pytest.approx(point.lon, abs=1e-9)
    assert arrays.length_m == pytest.approx(ROUTES[route].length_m)


def test_text_array_binary_layout() -> None:
    assert text_array([]) == struct.pack(">iii", 0, 0, 25)
    assert text_array(["ab"]) == struct.pack(">iiiiii", 1, 0, 25, 1, 1, 2) + b"ab"


@pytest.fixture(scope="module")
def small_day() -> tuple[FleetSpec, Fleet]:
    spec = FleetSpec(datetime(2026, 5, 1, tzinfo=UTC), vehicles=3, days=2, step_s=60)
    return spec, Fleet(spec)


def test_vehicle_day_is_a_patrol_in_the_sub_district(small_day: tuple[FleetSpec, Fleet]) -> None:
    spec, fleet = small_day
    day = fleet.vehicle_day(1, 1)
    assert len(day) == 1440
    assert day.vehicle == "patrol-02"
    assert day.seq.tolist() == list(range(1441, 2881))
    assert np.all(np.diff(day.time_us) == 60_000_000)
    first = PG_EPOCH + timedelta(microseconds=int(day.time_us[0]))
    assert spec.day_start(1) <= first < spec.day_start(1) + timedelta(seconds=60)
    assert day.lat.min() > 39.884
    assert day.lat.max() < 39.895
    assert day.lon.min() > 116.460
    assert day.lon.max() < 116.476
    assert day.values.shape == (1440, len(CHANNEL_COLUMNS))
    assert np.all(np.isfinite(day.values))
    # parked at night (local time UTC+8: 22:00-06:00 is 14:00-22:00 UTC), driving by day
    assert 0.3 < day.stationary.mean() < 0.7
    assert len(set(day.cell.tolist())) > 5


def test_vehicle_days_are_deterministic(small_day: tuple[FleetSpec, Fleet]) -> None:
    spec, fleet = small_day
    again = Fleet(spec)
    a, b = fleet.vehicle_day(2, 0), again.vehicle_day(2, 0)
    assert np.array_equal(a.values, b.values)
    assert np.array_equal(a.cell, b.cell)


def test_copy_rows_frame_the_ingest_columns(small_day: tuple[FleetSpec, Fleet]) -> None:
    _, fleet = small_day
    day = fleet.vehicle_day(0, 0)
    rows = decode_tuples(copy_rows(day))
    assert len(rows) == len(day)
    assert all(len(r) == len(COLUMNS) for r in rows)
    index = {name: i for i, name in enumerate(COLUMNS)}
    by_seq = {struct.unpack(">q", r[index["seq"]] or b"")[0]: r for r in rows}
    k = 100
    row = by_seq[int(day.seq[k])]
    assert row[index["vehicle"]] == b"patrol-01"
    assert row[index["time_source"]] == b"gnss"
    assert struct.unpack(">q", row[index["time"]] or b"")[0] == day.time_us[k]
    assert struct.unpack(">d", row[index["lat"]] or b"")[0] == day.lat[k]
    assert struct.unpack(">q", row[index["cell"]] or b"")[0] == day.cell[k]
    assert row[index["channel_flags"]] == b"\x01{}"
    expected = text_array(["stationary"] if day.stationary[k] else [])
    assert row[index["flags"]] == expected
    pm10 = CHANNEL_COLUMNS.index("pm10")
    assert struct.unpack(">d", row[index["pm10"]] or b"")[0] == day.values[k, pm10]
    assert COPY_HEADER.startswith(b"PGCOPY\n\xff\r\n\x00")


OPENAPI = {
    "paths": {
        "/v1/hotspots": {
            "get": {
                "parameters": [
                    {"name": "pollutant", "in": "query", "required": False},
                    {"name": "format", "in": "query", "schema": {"enum": ["json", "geojson"]}},
                ]
            }
        },
        "/v1/things/{id}": {
            "get": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True},
                    {"name": "needed", "in": "query", "required": True},
                ]
            }
        },
    }
}


def test_fit_drops_parameters_the_route_no_longer_has() -> None:
    fitted = fit(OPENAPI, Case("h", "/v1/hotspots", {"pollutant": "pm10", "from": "x"}))
    assert fitted.url == "/v1/hotspots"
    assert fitted.params == {"pollutant": "pm10"}
    assert fitted.dropped == ("from",)


def test_fit_skips_missing_routes_and_unknown_required_parameters() -> None:
    assert fit(OPENAPI, Case("x", "/v1/nothing")).problem == "no GET /v1/nothing in /openapi.json"
    fitted = fit(OPENAPI, Case("t", "/v1/things/{id}", {}, {"id": "7"}))
    assert fitted.url is None
    assert "needed" in (fitted.problem or "")
    fitted = fit(OPENAPI, Case("t", "/v1/things/{id}", {"needed": 1}, {"id": "7"}))
    assert fitted.url == "/v1/things/7"


def test_percentile_nearest_rank() -> None:
    assert percentile([5.0, 1.0, 3.0], 0.5) == 3.0
    assert percentile(list(map(float, range(1, 101))), 0.95) == 95.0
