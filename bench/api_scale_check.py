"""The fleet-scale API benchmark checks its own instruments before it fills or times anything.

    .venv/bin/python -m bench.api_scale_check

`bench.api_scale` runs these first: a generator that drifted from the edge's stationary rule or
from the ingest's columns, or a fitting that sends parameters a route no longer has, would make
an hour of filling and timing measure the wrong thing. They cover the fleet-month generator
(bench.api_scale_data: stationary flags, route walking, one small vehicle-day, its binary COPY
rows) and the OpenAPI fitting and percentile of bench.api_scale_http. They live with the
benchmark because that is their only user: the product has no fleet generator to test.
"""

from __future__ import annotations

import math
import random
import struct
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

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
from store.reading_columns import CHANNEL_COLUMNS, COLUMNS

__all__ = ["CHECKS", "SelfCheckError", "run"]


class SelfCheckError(Exception):
    """One of the benchmark's instruments does not do what its check expects."""

    def __init__(self, check: str, problem: str) -> None:
        self.check = check
        self.problem = problem
        super().__init__(f"bench self-check {check}: {problem}")


class _ExpectationError(Exception):
    """A check's expectation not met; `run` names the check."""


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise _ExpectationError(problem)


def _close(a: float, b: float, *, rel: float = 1e-6, abs_tol: float = 0.0) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


# --- the generator -------------------------------------------------------------------------------


def stationary_after_a_minute_below_half_a_metre_per_second() -> None:
    speed = np.array([5.0] + [0.1] * 8 + [3.0] + [0.0] * 5 + [4.0])
    flags = stationary(speed, 10.0).tolist()
    # slow from index 1: still for 60 s at index 7 (six steps later)
    _expect(flags == [False] * 7 + [True, True] + [False] * 7, f"flags {flags}")


def stationary_from_the_start() -> None:
    flags = stationary(np.zeros(8), 10.0).tolist()
    _expect(flags == [False] * 6 + [True, True], f"flags {flags}")


def route_arrays_walk_like_the_route() -> None:
    rng = random.Random(7)
    for route in ROUTES:
        arrays = RouteArrays.of(route)
        distances = [0.0, arrays.length_m, *(rng.uniform(0, 50_000) for _ in range(50))]
        lat, lon, _ = arrays.at(np.array(distances))
        for d, a, b in zip(distances, lat, lon, strict=True):
            point = route.at(d)
            _expect(
                _close(a, point.lat, rel=0, abs_tol=1e-9)
                and _close(b, point.lon, rel=0, abs_tol=1e-9),
                f"{route.name} at {d:.1f} m: ({a}, {b}), the route says ({point.lat}, {point.lon})",
            )
        _expect(
            _close(arrays.length_m, route.length_m),
            f"{route.name}: length {arrays.length_m} m, the route's {route.length_m} m",
        )


def text_array_binary_layout() -> None:
    _expect(text_array([]) == struct.pack(">iii", 0, 0, 25), "empty text[]")
    _expect(
        text_array(["ab"]) == struct.pack(">iiiiii", 1, 0, 25, 1, 1, 2) + b"ab", "text[] of one"
    )


def _small_fleet() -> tuple[FleetSpec, Fleet]:
    spec = FleetSpec(datetime(2026, 5, 1, tzinfo=UTC), vehicles=3, days=2, step_s=60)
    return spec, Fleet(spec)


def vehicle_day_is_a_patrol_in_the_sub_district() -> None:
    spec, fleet = _small_fleet()
    day = fleet.vehicle_day(1, 1)
    _expect(len(day) == 1440, f"{len(day)} readings in a day of 60 s steps")
    _expect(day.vehicle == "patrol-02", f"vehicle {day.vehicle}")
    _expect(day.seq.tolist() == list(range(1441, 2881)), "seq of the second day")
    _expect(bool(np.all(np.diff(day.time_us) == 60_000_000)), "readings 60 s apart")
    first = PG_EPOCH + timedelta(microseconds=int(day.time_us[0]))
    _expect(
        spec.day_start(1) <= first < spec.day_start(1) + timedelta(seconds=60), f"first {first}"
    )
    _expect(39.884 < float(day.lat.min()) < float(day.lat.max()) < 39.895, "latitudes off the area")
    _expect(
        116.460 < float(day.lon.min()) < float(day.lon.max()) < 116.476, "longitudes off the area"
    )
    shape = (1440, len(CHANNEL_COLUMNS))
    _expect(day.values.shape == shape, f"values of shape {day.values.shape}, not {shape}")
    _expect(bool(np.all(np.isfinite(day.values))), "values not all finite")
    # parked at night (local time UTC+8: 22:00-06:00 is 14:00-22:00 UTC), driving by day
    share = float(day.stationary.mean())
    _expect(0.3 < share < 0.7, f"stationary share {share:.2f}")
    _expect(len(set(day.cell.tolist())) > 5, "fewer than six cells in a day")


def vehicle_days_are_deterministic() -> None:
    spec, fleet = _small_fleet()
    a, b = fleet.vehicle_day(2, 0), Fleet(spec).vehicle_day(2, 0)
    _expect(np.array_equal(a.values, b.values), "values differ between two fleets")
    _expect(np.array_equal(a.cell, b.cell), "cells differ between two fleets")


def _decode_tuples(data: bytes) -> list[list[bytes | None]]:
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


def copy_rows_frame_the_ingest_columns() -> None:
    _, fleet = _small_fleet()
    day = fleet.vehicle_day(0, 0)
    rows = _decode_tuples(copy_rows(day))
    _expect(len(rows) == len(day), f"{len(rows)} rows for {len(day)} readings")
    _expect(all(len(r) == len(COLUMNS) for r in rows), "a row without every column")
    index = {name: i for i, name in enumerate(COLUMNS)}
    by_seq = {struct.unpack(">q", r[index["seq"]] or b"")[0]: r for r in rows}
    k = 100
    row = by_seq[int(day.seq[k])]

    def field(name: str, fmt: str) -> Any:
        return struct.unpack(fmt, row[index[name]] or b"")[0]

    _expect(row[index["vehicle"]] == b"patrol-01", "vehicle")
    _expect(row[index["time_source"]] == b"gnss", "time_source")
    _expect(field("time", ">q") == day.time_us[k], "time")
    _expect(field("lat", ">d") == day.lat[k], "lat")
    _expect(field("cell", ">q") == day.cell[k], "cell")
    _expect(row[index["channel_flags"]] == b"\x01{}", "channel_flags")
    expected = text_array(["stationary"] if day.stationary[k] else [])
    _expect(row[index["flags"]] == expected, "flags")
    pm10 = CHANNEL_COLUMNS.index("pm10")
    _expect(field("pm10", ">d") == day.values[k, pm10], "pm10")
    _expect(COPY_HEADER.startswith(b"PGCOPY\n\xff\r\n\x00"), "COPY signature")


# --- the HTTP timing -----------------------------------------------------------------------------

_OPENAPI = {
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


def fit_drops_parameters_the_route_no_longer_has() -> None:
    fitted = fit(_OPENAPI, Case("h", "/v1/hotspots", {"pollutant": "pm10", "from": "x"}))
    _expect(fitted.url == "/v1/hotspots", f"url {fitted.url}")
    _expect(fitted.params == {"pollutant": "pm10"}, f"params {fitted.params}")
    _expect(fitted.dropped == ("from",), f"dropped {fitted.dropped}")


def fit_skips_missing_routes_and_unknown_required_parameters() -> None:
    missing = fit(_OPENAPI, Case("x", "/v1/nothing")).problem
    _expect(missing == "no GET /v1/nothing in /openapi.json", f"problem {missing!r}")
    fitted = fit(_OPENAPI, Case("t", "/v1/things/{id}", {}, {"id": "7"}))
    _expect(fitted.url is None, f"url {fitted.url} without a required parameter")
    _expect("needed" in (fitted.problem or ""), f"problem {fitted.problem!r}")
    fitted = fit(_OPENAPI, Case("t", "/v1/things/{id}", {"needed": 1}, {"id": "7"}))
    _expect(fitted.url == "/v1/things/7", f"url {fitted.url}")


def percentile_nearest_rank() -> None:
    _expect(percentile([5.0, 1.0, 3.0], 0.5) == 3.0, "median of three")
    _expect(percentile(list(map(float, range(1, 101))), 0.95) == 95.0, "p95 of 1..100")


CHECKS: tuple[Callable[[], None], ...] = (
    stationary_after_a_minute_below_half_a_metre_per_second,
    stationary_from_the_start,
    route_arrays_walk_like_the_route,
    text_array_binary_layout,
    vehicle_day_is_a_patrol_in_the_sub_district,
    vehicle_days_are_deterministic,
    copy_rows_frame_the_ingest_columns,
    fit_drops_parameters_the_route_no_longer_has,
    fit_skips_missing_routes_and_unknown_required_parameters,
    percentile_nearest_rank,
)


def run() -> int:
    """Every check; the number run. The first that fails raises SelfCheckError."""
    for check in CHECKS:
        try:
            check()
        except _ExpectationError as failed:
            raise SelfCheckError(check.__name__, str(failed)) from None
    return len(CHECKS)


def main() -> int:
    begin = time.perf_counter()
    try:
        count = run()
    except SelfCheckError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"bench self-check: {count} checks passed in {time.perf_counter() - begin:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
