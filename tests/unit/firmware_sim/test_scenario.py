"""Scenario files: the shipped example parses; mistakes are refused naming the offending key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from firmware_sim.cli import builtin_scenarios, find_scenario
from firmware_sim.scenario import ScenarioError, parse_scenario

EXAMPLE = Path(__file__).resolve().parents[3] / "firmware_sim" / "scenarios" / "shuangjing.toml"

MINIMAL = """
start = 2026-03-02T08:00:00+08:00
[[vehicles]]
name = "p1"
"""


def test_the_worked_example_parses_into_what_it_says() -> None:
    scenario = find_scenario("shuangjing")
    assert "shuangjing" in builtin_scenarios()
    assert scenario.start == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    assert [v.name for v in scenario.vehicles] == ["patrol-01", "patrol-02"]
    assert scenario.vehicles[1].profile == "gasboard-f32"
    on, off = scenario.shift_window(scenario.vehicles[1])
    assert (on, off) == (
        datetime(2026, 3, 2, 4, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
    )
    kinds = {s.name: s.schedule.kind for s in scenario.sources}
    assert kinds == {
        "construction-gate-guangqu": "always",
        "restaurant-street-middle": "meals",
        "junction-xidawang": "share",
    }
    street = next(s for s in scenario.sources if s.end is not None)
    assert street.amplitude["cooking_fume"] == 1.2
    assert scenario.sensors["no2"].t90_s == 45
    assert scenario.sensors["co2"].t90_s > 0  # defaults kept for channels not mentioned
    assert scenario.gps.dropout_zones[0].radius_m == 30
    assert scenario.faults.crc == 0.005
    assert scenario.faults.stuck[0].channel == "o3"
    assert scenario.background.levels["pm25"] == 45.0


def test_a_minimal_scenario_gets_the_builtin_loop_and_defaults() -> None:
    scenario = parse_scenario(MINIMAL)
    assert scenario.routes["shuangjing-loop"].builtin == "shuangjing-loop"
    assert scenario.vehicles[0].route == "shuangjing-loop"
    assert scenario.duration_h == 8.0
    assert scenario.sources == ()


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ("speed_kmh = 3", "speed_kmh", "unknown key"),
        ("duration_h = 'long'", "duration_h", "must be a number"),
        ("[background]\ncorrelation_h = 0", "background.correlation_h", "at least"),
        ("[background.levels]\npm2_5 = 3", "background.levels.pm2_5", "unknown channel"),
        (
            "[[sources]]\nname='a'\nat=[39.9, 116.4]\n[sources.amplitude]\npm10='high'",
            "sources[0].amplitude.pm10",
            "must be a number",
        ),
        (
            "[[sources]]\nname='a'\n[sources.amplitude]\npm10=1",
            "sources[0].at",
            "exactly one",
        ),
        (
            "[[sources]]\nname='a'\nat=[39.9, 116.4]\nschedule='lunch'\n[sources.amplitude]\npm10=1",
            "sources[0].schedule",
            "must be",
        ),
        (
            "[[sources]]\nname='a'\nat=[39.9, 116.4]\nschedule={kind='share', share=2}\n"
            "[sources.amplitude]\npm10=1",
            "sources[0].schedule.share",
            "between 0 and 1",
        ),
        ("[sensors.no2]\nt90 = 4", "sensors.no2.t90", "unknown key"),
        ("[sensors.no2]\nnoise = -1", "sensors.no2.noise", "at least"),
        ("[gps]\nerror_m = [8]", "gps.error_m", "pair of numbers"),
        ("[faults]\ndrop = 0.8\ncrc = 0.8", "faults", "sum to at most 1"),
        ("[[faults.stuck]]\nchannel = 'o3'\nhours = [2, 1]", "faults.stuck[0].hours", "from < to"),
        ("[[routes]]\nname = 'r'\nbuiltin = 'nowhere'", "routes[0].builtin", "unknown route"),
    ],
)
def test_mistakes_name_the_offending_key(extra: str, key: str, problem: str) -> None:
    text = MINIMAL.replace("[[vehicles]]", extra + "\n[[vehicles]]", 1)
    if extra.startswith("[") and "[[vehicles]]" in text:
        # Tables must come after the top-level keys: append them instead.
        text = MINIMAL + "\n" + extra
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "test.toml")
    assert info.value.subject == key, str(info.value)
    assert problem in info.value.problem
    assert str(info.value).startswith(f"scenario test.toml: {key}: ")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[[vehicles]]\nname='p'", "start"),
        ("start = 2026-03-02T08:00:00\n[[vehicles]]\nname='p'", "start"),
        ("start = 2026-03-02T08:00:00Z", "vehicles"),
        ("start = 2026-03-02T08:00:00Z\n[[vehicles]]\nname='p'\nroute='x'", "vehicles[0].route"),
        (
            "start = 2026-03-02T08:00:00Z\n[[vehicles]]\nname='p'\nshift=['8h', '9h']",
            "vehicles[0].shift",
        ),
        (
            "start = 2026-03-02T08:00:00Z\n[[vehicles]]\nname='p'\n[vehicles.speed]\ncruise_mps=0",
            "vehicles[0].speed.cruise_mps",
        ),
        ("start = ", "(file)"),
    ],
)
def test_structural_mistakes(text: str, key: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "x.toml")
    assert info.value.subject == key, str(info.value)


def test_a_night_shift_crosses_midnight() -> None:
    scenario = parse_scenario(
        "start = 2026-03-02T18:00:00+08:00\nduration_h = 12\n"
        "[[vehicles]]\nname='night'\nshift=['22:00', '04:00']"
    )
    on, off = scenario.shift_window(scenario.vehicles[0])
    assert (off - on).total_seconds() == 6 * 3600
    assert on == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def test_the_example_file_is_shipped_beside_the_code() -> None:
    assert EXAMPLE.is_file()


def test_a_vehicle_s_box_serial_is_set_or_derived_and_must_fit_its_profile() -> None:
    scenario = parse_scenario(
        MINIMAL + "box_serial = 'EP-BOX-7'\n[[vehicles]]\nname = 'p2'\nprofile = 'gasboard-f32'\n"
        "box_serial = '4000000000'\n[[vehicles]]\nname = 'p3'\n"
    )
    assert [v.box_serial for v in scenario.vehicles] == ["EP-BOX-7", "4000000000", None]
    for serial, profile, problem in [
        ("EP-SERIAL-LONGER-THAN-16", "default-multi", "longer than 16"),
        ("4294967296", "gasboard-f32", "does not fit"),
        ("EP7", "gasboard-f32", "invalid literal"),
        ("", "default-multi", "must not be empty"),
    ]:
        text = MINIMAL + f"profile = '{profile}'\nbox_serial = '{serial}'\n"
        with pytest.raises(ScenarioError) as info:
            parse_scenario(text, "x.toml")
        assert info.value.subject == "vehicles[0].box_serial", str(info.value)
        assert problem in info.value.problem
