"""Scenario files: the shipped example parses; mistakes are refused naming the offending key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware_sim.cli import builtin_scenarios, find_scenario
from firmware_sim.scenario import ScenarioError, load_scenario, parse_scenario

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "firmware_sim" / "scenarios" / "shuangjing.toml"
PROFILES = REPO / "edge" / "profiles"

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
    (window,) = scenario.windows(scenario.vehicles[1])
    assert (window.on, window.off, window.route) == (
        datetime(2026, 3, 2, 4, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
        "loop",
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
    (window,) = scenario.windows(scenario.vehicles[0])
    assert (window.off - window.on).total_seconds() == 6 * 3600
    assert window.on == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


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


# -- weeks of shifts ------------------------------------------------------------------------------

WEEKS = """
start = 2026-03-02T00:00:00+08:00
duration_days = 14
[[routes]]
name = "north"
points = [[39.89, 116.46], [39.891, 116.462]]
[[routes]]
name = "south"
points = [[39.886, 116.46], [39.886, 116.47], [39.885, 116.47]]
closed = true
[[vehicles]]
name = "patrol-01"
route = "north"
profile = "default-multi"
[[vehicles.shifts]]
start = "08:00"
end = "11:30"
weekdays = [0, 1, 2, 3, 4]
share = 0.8
jitter_min = 20
routes = ["north", "south"]
[[vehicles.shifts]]
start = "22:00"
end = "02:00"
weekdays = [5]
[[sources]]
name = "yard"
at = [39.89, 116.46]
radius_m = 25
schedule = { kind = "meals", days = 0.6 }
[sources.amplitude]
pm10 = 100
"""


def test_shift_patterns_inline_routes_and_area_sources_parse() -> None:
    scenario = parse_scenario(WEEKS, "weeks.toml")
    assert scenario.duration_h == 14 * 24
    north, south = scenario.routes["north"], scenario.routes["south"]
    assert north.points == ((39.89, 116.46), (39.891, 116.462))
    assert not north.closed
    assert south.points is not None
    assert len(south.points) == 3
    assert south.closed
    morning, night = scenario.vehicles[0].shifts
    assert morning.weekdays == (0, 1, 2, 3, 4)
    assert (morning.share, morning.jitter_min, morning.routes) == (0.8, 20.0, ("north", "south"))
    assert night.weekdays == (5,)
    assert night.length.total_seconds() == 4 * 3600
    (yard,) = scenario.sources
    assert (yard.radius_m, yard.schedule.kind, yard.schedule.days) == (25.0, "meals", 0.6)
    windows = scenario.windows(scenario.vehicles[0])
    saturdays = [w for w in windows if (w.on + timedelta(hours=8)).weekday() == 5]
    assert len(saturdays) == 2  # the night shifts, from Saturday 22:00 into Sunday
    assert all(w.off - w.on == timedelta(hours=4) for w in saturdays)
    mornings = [w for w in windows if w not in saturdays]
    assert 4 <= len(mornings) < 10  # about 80 % of ten weekdays
    assert {w.route for w in mornings} <= {"north", "south"}


def test_each_schedule_kind_takes_a_share_of_days() -> None:
    for schedule in ("{kind = 'always', days = 0.5}", "{kind = 'share', share = 0.3, days = 0}"):
        text = MINIMAL + (
            f"[[sources]]\nname='s'\nat=[39.9, 116.4]\nschedule={schedule}\n"
            "[sources.amplitude]\npm10=1\n"
        )
        (source,) = parse_scenario(text).sources
        assert source.schedule.days in (0.5, 0.0)


def test_duration_in_days_is_an_alternative_to_hours() -> None:
    assert parse_scenario(MINIMAL.replace("[[v", "duration_days = 2.5\n[[v", 1)).duration_h == 60
    assert parse_scenario(MINIMAL.replace("[[v", "duration_h = 400\n[[v", 1)).duration_h == 400


def test_the_shipped_fortnight_covers_two_weeks_with_several_boxes() -> None:
    scenario = find_scenario("shuangjing-fortnight")
    assert "shuangjing-fortnight" in builtin_scenarios()
    assert scenario.duration_h == 14 * 24
    assert {v.profile for v in scenario.vehicles} == {"default-multi", "gasboard-f32"}
    assert {s.name for s in scenario.sources} == {
        s.name for s in find_scenario("shuangjing").sources
    }
    tz = timedelta(hours=scenario.timezone_h)
    for vehicle in scenario.vehicles:
        windows = scenario.windows(vehicle)
        days = {(w.on + tz).date() for w in windows}
        assert len(days) >= 4, vehicle.name  # the analysis needs passes on several days
    weekend = [
        w for v in scenario.vehicles for w in scenario.windows(v) if (w.on + tz).weekday() >= 5
    ]
    assert weekend


def test_a_profile_file_is_found_beside_the_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boxes = tmp_path / "boxes"
    boxes.mkdir()
    (boxes / "mine.toml").write_text(
        (PROFILES / "gasboard-f32.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (tmp_path / "s.toml").write_text(
        MINIMAL
        + "profile = 'boxes/mine.toml'\n[[vehicles]]\nname = 'p2'\nprofile = 'gasboard-f32'\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(boxes)  # not where the scenario is
    own, builtin = load_scenario(tmp_path / "s.toml").vehicles
    assert own.profile == str((boxes / "mine.toml").resolve())
    assert builtin.profile == "gasboard-f32"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(MINIMAL + "profile = 'boxes/other.toml'\n", "x.toml", tmp_path)
    assert info.value.subject == "vehicles[0].profile"
    assert "cannot read" in info.value.problem
    with pytest.raises(ScenarioError) as info:
        parse_scenario(MINIMAL + "profile = 'acme-9000'\n", "x.toml", tmp_path)
    assert info.value.subject == "vehicles[0].profile"
    assert "no such built-in profile" in info.value.problem


SHIFT = "[[vehicles.shifts]]\nstart = '08:00'\nend = '12:00'\n"


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ("shift = ['08:00', '12:00']\n" + SHIFT, "vehicles[0].shift", "not both"),
        ("shift = ['08:00', '08:00']", "vehicles[0].shift", "another time"),
        ("shifts = []", "vehicles[0].shifts", "at least one"),
        ("[[vehicles.shifts]]\nend = '12:00'", "vehicles[0].shifts[0].start", "required"),
        ("[[vehicles.shifts]]\nstart = '08:00'", "vehicles[0].shifts[0].end", "required"),
        (
            "[[vehicles.shifts]]\nstart = '8am'\nend = '12:00'",
            "vehicles[0].shifts[0].start",
            "HH:MM",
        ),
        (
            "[[vehicles.shifts]]\nstart = '08:00'\nend = '08:00'",
            "vehicles[0].shifts[0].end",
            "differ",
        ),
        (
            "[[vehicles.shifts]]\nstart = '08:00+08:00'\nend = '12:00'",
            "vehicles[0].shifts[0].start",
            "local time",
        ),
        *(
            (
                f"[[vehicles.shifts]]\nstart = '{odd}'\nend = '12:00'",
                "vehicles[0].shifts[0].start",
                "HH:MM",
            )
            for odd in ("07", "0700", "T07:00", "07:00:00.5", "7:00", "24:00", "07:60")
        ),
        (SHIFT + "weekdays = [7]", "vehicles[0].shifts[0].weekdays", "0 (Monday) .. 6"),
        (SHIFT + "weekdays = []", "vehicles[0].shifts[0].weekdays", "non-empty"),
        (SHIFT + "weekdays = ['mon']", "vehicles[0].shifts[0].weekdays", "non-empty list"),
        (SHIFT + "share = 0", "vehicles[0].shifts[0].share", "(0, 1]"),
        (SHIFT + "share = 1.5", "vehicles[0].shifts[0].share", "(0, 1]"),
        (SHIFT + "jitter_min = -1", "vehicles[0].shifts[0].jitter_min", "at least"),
        (SHIFT + "jitter_min = 721", "vehicles[0].shifts[0].jitter_min", "at most 720"),
        (SHIFT + "routes = ['nowhere']", "vehicles[0].shifts[0].routes", "no route named"),
        (SHIFT + "routes = []", "vehicles[0].shifts[0].routes", "non-empty list"),
        (SHIFT + "crew = 2", "vehicles[0].shifts[0].crew", "unknown key"),
    ],
)
def test_shift_mistakes_name_the_key(extra: str, key: str, problem: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(MINIMAL + extra + "\n", "x.toml")
    assert info.value.subject == key, str(info.value)
    assert problem in info.value.problem, str(info.value)


ROUTE = "[[routes]]\nname = 'r'\n"
SOURCE = "[[sources]]\nname = 's'\nat = [39.9, 116.4]\n"


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ("duration_h = 8\nduration_days = 1", "duration_days", "exactly one"),
        ("duration_days = 0", "duration_days", "at least"),
        ("duration_days = 400", "duration_days", "at most 366"),
        ("duration_h = 9000", "duration_h", "at most 366"),
        (ROUTE + "points = [[39.9, 116.4]]", "routes[0].points", "at least two"),
        (ROUTE + "points = [[39.9, 116.4], [39.9, 116.4]]", "routes[0].points", "distinct"),
        (ROUTE + "points = [[39.9, 116.4], [99, 116.4]]", "routes[0].points[1]", "on Earth"),
        (ROUTE + "points = [[39.9, 116.4], [39.9]]", "routes[0].points[1]", "pair of numbers"),
        (ROUTE + "points = 'a'", "routes[0].points", "at least two"),
        (
            ROUTE + "builtin = 'shuangjing-loop'\npoints = [[39.9, 116.4], [39.8, 116.4]]",
            "routes[0].points",
            "exactly one",
        ),
        (
            ROUTE + "points = [[39.9, 116.4], [39.8, 116.4]]\nformat = 'gpx'",
            "routes[0].format",
            "file",
        ),
        (
            SOURCE + "radius_m = -1\n[sources.amplitude]\npm10 = 1",
            "sources[0].radius_m",
            "at least",
        ),
        (
            SOURCE + "schedule = {kind = 'meals', days = 1.5}\n[sources.amplitude]\npm10 = 1",
            "sources[0].schedule.days",
            "between 0 and 1",
        ),
        (
            SOURCE + "schedule = {kind = 'always', days = 'often'}\n[sources.amplitude]\npm10 = 1",
            "sources[0].schedule.days",
            "must be a number",
        ),
    ],
)
def test_new_top_route_and_source_keys_name_the_key(extra: str, key: str, problem: str) -> None:
    if extra.startswith("duration"):
        text = MINIMAL.replace("[[vehicles]]", extra + "\n[[vehicles]]", 1)
    else:
        text = MINIMAL + "\n" + extra + "\n"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "x.toml")
    assert info.value.subject == key, str(info.value)
    assert problem in info.value.problem, str(info.value)
