"""The scenario writer: TOML with only the keys the scenario parser accepts, which the parser
reads back into an equal Scenario (generated worlds, the shipped example, every setting)."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import replace
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.cli import find_scenario
from firmware_sim.faults import ChannelWindow, FaultSpec
from firmware_sim.field import Schedule, Source
from firmware_sim.gps_model import DropoutZone, GpsSpec
from firmware_sim.motion import SpeedProfile
from firmware_sim.scenario import (
    BackgroundSpec,
    RouteSpec,
    Scenario,
    ShiftSpec,
    load_scenario,
    parse_scenario,
)
from firmware_sim.scenario_writer import ScenarioWriteError, dump_scenario
from firmware_sim.sensor import DEFAULT_SENSORS
from firmware_sim.worlds import FAMILIES, generate_world

# The keys docs/scenarios.md documents, table by table.
KEYS: dict[str, set[str]] = {
    "": {
        "name",
        "description",
        "seed",
        "start",
        "duration_h",
        "timezone_h",
        "routes",
        "vehicles",
        "background",
        "sources",
        "sensors",
        "gps",
        "faults",
    },
    "routes": {"name", "builtin", "file", "format", "closed", "points"},
    "vehicles": {"name", "route", "profile", "box_serial", "shifts", "offset_m", "speed"},
    "shifts": {"start", "end", "weekdays", "share", "jitter_min", "routes"},
    "speed": {
        "cruise_mps",
        "cruise_spread",
        "junction_stop_share",
        "junction_stop_s",
        "idle_every_s",
        "idle_s",
    },
    "sources": {"name", "kind", "at", "line", "radius_m", "decay_m", "schedule", "amplitude"},
    "schedule": {"kind", "windows", "share", "window_min", "days"},
    "background": {"levels", "diurnal", "variability", "correlation_h"},
    "sensor": {"t90_s", "delay_s", "noise", "drift_per_h", "quantum", "warmup_s"},
    "gps": {
        "error_m",
        "multipath_per_h",
        "multipath_m",
        "multipath_s",
        "dropout_zones",
        "dropouts_per_h",
        "dropout_s",
        "hdop",
    },
    "dropout_zones": {"at", "radius_m"},
    "faults": {"drop", "late", "crc", "garbage", "late_s", "stuck", "sentinel"},
    "window": {"channel", "hours"},
}


@functools.cache
def example() -> Scenario:
    return find_scenario("shuangjing")


def assert_known_keys(doc: dict[str, Any]) -> None:
    assert set(doc) <= KEYS[""]
    for route in doc.get("routes", []):
        assert set(route) <= KEYS["routes"]
    for vehicle in doc.get("vehicles", []):
        assert set(vehicle) <= KEYS["vehicles"]
        assert set(vehicle.get("speed", {})) <= KEYS["speed"]
        for shift in vehicle.get("shifts", []):
            assert set(shift) <= KEYS["shifts"]
    for source in doc.get("sources", []):
        assert set(source) <= KEYS["sources"]
        if isinstance(source["schedule"], dict):
            assert set(source["schedule"]) <= KEYS["schedule"]
        else:
            assert source["schedule"] in ("always", "meals")
    assert set(doc.get("background", {})) <= KEYS["background"]
    for sensor in doc.get("sensors", {}).values():
        assert set(sensor) <= KEYS["sensor"]
    assert set(doc.get("gps", {})) <= KEYS["gps"]
    for zone in doc.get("gps", {}).get("dropout_zones", []):
        assert set(zone) <= KEYS["dropout_zones"]
    assert set(doc.get("faults", {})) <= KEYS["faults"]
    for name in ("stuck", "sentinel"):
        for window in doc.get("faults", {}).get(name, []):
            assert set(window) <= KEYS["window"]


def everything() -> Scenario:
    """A scenario with a value other than the default in every key the writer knows."""
    base = example()
    vehicle = replace(
        base.vehicles[0],
        box_serial="EP-0042",
        offset_m=250.5,
        speed=SpeedProfile(6.5, 0.1, 0.3, (5.0, 20.0), (900.0, 1800.0), (60.0, 300.0)),
        shifts=(
            ShiftSpec(time(7, 0), time(11, 30), weekdays=(0, 2, 4), share=0.8, jitter_min=20.0),
            ShiftSpec(time(22, 0), time(2, 15, 30), routes=("loop", "inline")),
        ),
    )
    sources = (
        *base.sources,
        Source(
            "yard",
            "dust",
            39.89,
            116.466,
            {"pm10": 90.0},
            decay_m=25.0,
            schedule=Schedule("meals", ((7.0, 12.0), (13.25, 17.75)), days=0.4),
            radius_m=30.0,
        ),
        Source("plant", "industrial", 39.887, 116.47, {"so2": 12.5}, schedule=Schedule(days=0.5)),
    )
    return replace(
        base,
        routes={
            **base.routes,
            "inline": RouteSpec("inline", points=((39.89, 116.46), (39.891, 116.462)), closed=True),
            "track": RouteSpec("track", file=Path("/srv/tracks/east.gpx"), format="gpx"),
        },
        vehicles=(vehicle, base.vehicles[1]),
        sources=sources,
        background=BackgroundSpec(
            levels={**base.background.levels, "o3": 70.0},
            diurnal=False,
            variability=0.2,
            correlation_h=3.0,
        ),
        sensors={
            **DEFAULT_SENSORS,
            "no2": replace(DEFAULT_SENSORS["no2"], t90_s=50.0, drift_per_h=-0.25, quantum=0.5),
        },
        gps=GpsSpec(
            error_m=(2.0, 6.0),
            multipath_per_h=1.0,
            dropout_zones=(DropoutZone(39.8935, 116.4618, 30.0), DropoutZone(39.886, 116.47, 45.0)),
            hdop=1.1,
        ),
        faults=FaultSpec(
            drop=0.02,
            late_s=2.0,
            stuck=(ChannelWindow("o3", 1.0, 2.0),),
            sentinel=(ChannelWindow("so2", 3.0, 3.5), ChannelWindow("pm25", 4.0, 5.0)),
        ),
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_a_generated_world_is_written_with_known_keys_and_its_values(family: str) -> None:
    scenario = generate_world(family, 3)
    doc = tomllib.loads(dump_scenario(scenario))
    assert_known_keys(doc)
    assert doc["name"] == scenario.name
    assert doc["start"] == scenario.start
    assert doc["duration_h"] == 21 * 24
    assert "sensors" not in doc  # the default modules
    assert "gps" not in doc
    for written, spec in zip(doc["routes"], scenario.routes.values(), strict=True):
        assert written["name"] == spec.name
        if spec.points is not None:
            assert [tuple(p) for p in written["points"]] == list(spec.points)
            assert written["closed"] is True
        else:
            assert written["builtin"] == spec.builtin
    for written, vehicle in zip(doc["vehicles"], scenario.vehicles, strict=True):
        assert written["route"] == vehicle.route
        assert written["profile"] == vehicle.profile
        assert len(written["shifts"]) == len(vehicle.shifts)
        for w, shift in zip(written["shifts"], vehicle.shifts, strict=True):
            assert time.fromisoformat(w["start"]) == shift.start
            assert w.get("share", 1.0) == shift.share
            weekdays = w.get("weekdays")
            assert (None if weekdays is None else tuple(weekdays)) == shift.weekdays
    for written, source in zip(doc["sources"], scenario.sources, strict=True):
        assert written["amplitude"] == source.amplitude
        assert written.get("radius_m", 0.0) == source.radius_m
        if source.end is None:
            assert tuple(written["at"]) == (source.lat, source.lon)
        else:
            assert [tuple(p) for p in written["line"]] == [(source.lat, source.lon), source.end]


def test_every_setting_is_written_with_known_keys() -> None:
    doc = tomllib.loads(dump_scenario(everything()))
    assert_known_keys(doc)
    assert doc["routes"][2]["file"] == "/srv/tracks/east.gpx"
    assert doc["vehicles"][0]["shifts"][1]["end"] == "02:15:30"
    assert doc["sources"][3]["schedule"] == {
        "kind": "meals",
        "windows": [["07:00", "12:00"], ["13:15", "17:45"]],
        "days": 0.4,
    }
    assert doc["sources"][4]["schedule"] == {"kind": "always", "days": 0.5}
    assert doc["sensors"] == {"no2": {"t90_s": 50.0, "drift_per_h": -0.25, "quantum": 0.5}}


# The parser reads these back equal. (Run against a parser without inline points, shift tables,
# area sources or day shares, these fail on exactly those keys.)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("null", [False, True])
def test_a_generated_world_reads_back_equal(family: str, null: bool) -> None:
    for seed in range(5):
        scenario = generate_world(family, seed, null=null)
        assert parse_scenario(dump_scenario(scenario)) == scenario


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(FAMILIES), st.integers(0, 2**31), st.booleans())
def test_any_world_reads_back_equal(family: str, seed: int, null: bool) -> None:
    scenario = generate_world(family, seed, null=null, days=3)
    assert parse_scenario(dump_scenario(scenario)) == scenario


def test_the_worked_example_reads_back_equal() -> None:
    shipped = example()
    assert parse_scenario(dump_scenario(shipped)) == shipped


def test_every_setting_reads_back_equal() -> None:
    scenario = everything()
    assert parse_scenario(dump_scenario(scenario), base=Path("/elsewhere")) == scenario


def test_a_written_file_loads_as_the_scenario(tmp_path: Path) -> None:
    scenario = generate_world("spurs", 8)
    path = tmp_path / "world.toml"
    path.write_text(dump_scenario(scenario), encoding="utf-8")
    assert load_scenario(path) == scenario


@settings(max_examples=200)
@given(st.text(), st.text())
def test_any_text_is_written_as_a_toml_string(name: str, description: str) -> None:
    scenario = replace(example(), name=name, description=description)
    doc = tomllib.loads(dump_scenario(scenario))
    assert doc["name"] == name
    assert doc.get("description", "") == description


@settings(max_examples=200)
@given(st.floats(allow_nan=False), st.floats(allow_nan=False, allow_infinity=False))
def test_any_number_is_written_exactly(amplitude: float, lat: float) -> None:
    base = example()
    source = replace(base.sources[0], lat=lat, amplitude={"pm10": amplitude})
    doc = tomllib.loads(dump_scenario(replace(base, sources=(source,))))
    assert doc["sources"][0]["amplitude"]["pm10"] == amplitude
    assert doc["sources"][0]["at"][0] == lat


@pytest.mark.parametrize(
    ("change", "subject"),
    [
        ({"start": datetime(2026, 3, 2, 8, 0)}, "start"),
        (
            {
                "sources": (
                    Source(
                        "s",
                        "dust",
                        39.9,
                        116.4,
                        {"pm10": 1.0},
                        schedule=Schedule("meals", ((10.1234, 12.0),)),
                    ),
                )
            },
            "sources[0].schedule.windows",
        ),
        ({"sensors": {"pm10": DEFAULT_SENSORS["pm10"]}}, "sensors.co"),
        (
            {
                "sensors": {
                    **DEFAULT_SENSORS,
                    "temperature": replace(DEFAULT_SENSORS["temperature"], floor=0.0),
                }
            },
            "sensors.temperature.floor",
        ),
        ({"routes": {"r": RouteSpec("r")}}, "routes.r"),
        ({"background": BackgroundSpec(levels={"pm25": 40.0})}, "background.levels.co"),
    ],
)
def test_what_a_file_cannot_say_is_refused(change: dict[str, Any], subject: str) -> None:
    scenario = replace(example(), **change)
    with pytest.raises(ScenarioWriteError) as caught:
        dump_scenario(scenario)
    assert caught.value.subject == subject


def test_a_shift_off_the_whole_second_is_refused() -> None:
    base = example()
    shift = ShiftSpec(time(7, 0, 0, 500), time(9, 0))
    vehicle = replace(base.vehicles[0], shifts=(shift,))
    with pytest.raises(ScenarioWriteError) as caught:
        dump_scenario(replace(base, vehicles=(vehicle,)))
    assert caught.value.subject == "vehicles[0].shifts[0].start"


def test_the_start_is_written_in_local_time() -> None:
    scenario = generate_world("grid", 1, start=datetime(2026, 5, 4, 1, 0, tzinfo=UTC))
    assert "start = 2026-05-04T09:00:00+08:00" in dump_scenario(scenario).splitlines()
