"""The simulator's pure models: pollution field, sensors, GPS error, faults, speed profile."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.modbus import crc_ok, decode_response, encode_read_response
from edge.profile import load_profile
from edge.quality import segment_distance_m
from firmware_sim.faults import ChannelWindow, FaultPlan, FaultSpec, corrupt_crc
from firmware_sim.field import PollutionField, Schedule, Source
from firmware_sim.geo import haversine_m
from firmware_sim.gps_model import DropoutZone, GpsErrorModel, GpsSpec
from firmware_sim.motion import PatrolDrive, SpeedProfile
from firmware_sim.route import SHUANGJING_LOOP, Route
from firmware_sim.sensor import SensorArray, SensorSpec, lag_step, quantise, warmup_factor

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # 08:00 in Beijing
moments = st.integers(0, 7 * 24 * 3600).map(lambda s: T0 + timedelta(seconds=s))


# -- field ------------------------------------------------------------------------------------


@given(moments)
def test_field_is_a_pure_function_of_seed_place_and_time(moment: datetime) -> None:
    a = PollutionField([], seed=3).true_values(39.89, 116.47, moment)
    b = PollutionField([], seed=3).true_values(39.89, 116.47, moment)
    assert a == b
    assert all(math.isfinite(v) for v in a.values())
    assert all(v > 0 for k, v in a.items() if k != "temperature")


def test_background_varies_slowly_and_differs_between_seeds() -> None:
    field = PollutionField([], seed=1)
    pm = [field.background_at(T0 + timedelta(minutes=m))["pm25"] for m in range(0, 600, 1)]
    steps = [abs(b - a) for a, b in itertools.pairwise(pm)]
    assert max(steps) < 0.02 * max(pm)  # minute to minute: smooth
    assert max(pm) - min(pm) > 0.1 * min(pm)  # over hours: it moves
    other = PollutionField([], seed=2).background_at(T0)["pm25"]
    assert other != pm[0]


def test_traffic_pollutants_peak_in_the_rush_hour() -> None:
    field = PollutionField([], seed=1, variability=0.0)
    rush = field.background_at(T0)["no2"]  # 08:00 local
    night = field.background_at(T0 - timedelta(hours=4, minutes=30))["no2"]  # 03:30 local
    assert rush > 1.3 * night


@given(st.floats(0, 500))
def test_a_point_source_decays_exponentially_with_distance(distance: float) -> None:
    source = Source("s", "dust", 39.89, 116.47, {"pm10": 100.0}, decay_m=40.0)
    lat = 39.89 + distance / 111_195.0
    got = source.contribution(lat, 116.47)["pm10"]
    assert got == pytest.approx(100.0 * math.exp(-distance / 40.0), rel=1e-3, abs=1e-9)


def test_a_line_source_is_as_strong_anywhere_along_its_segment() -> None:
    a, b = (39.8898, 116.4660), (39.8898, 116.4680)
    source = Source("street", "cooking", *a, {"odor": 10.0}, decay_m=30.0, end=b)
    for f in (0.0, 0.3, 0.7, 1.0):
        lon = a[1] + f * (b[1] - a[1])
        assert source.contribution(a[0], lon)["odor"] == pytest.approx(10.0, rel=1e-6)
    beyond = segment_distance_m(a, b, (39.8898, 116.4690))
    assert beyond == pytest.approx(haversine_m(*b, 39.8898, 116.4690), rel=1e-3)


def test_meal_time_and_share_schedules() -> None:
    meals = Schedule("meals")
    assert meals.active(T0 + timedelta(hours=4), "k")  # 12:00 local
    assert not meals.active(T0 + timedelta(hours=7), "k")  # 15:00 local
    share = Schedule("share", share=0.3, window_min=15)
    on = [share.active(T0 + timedelta(minutes=15 * i), "src") for i in range(2000)]
    assert 0.25 < sum(on) / len(on) < 0.35
    assert on == [share.active(T0 + timedelta(minutes=15 * i), "src") for i in range(2000)]


def test_an_inactive_source_adds_nothing() -> None:
    source = Source("s", "cooking", 39.89, 116.47, {"odor": 10.0}, schedule=Schedule("meals"))
    field = PollutionField([source], seed=1)
    afternoon = T0 + timedelta(hours=7)
    lunch = T0 + timedelta(hours=4)
    assert field.true_values(39.89, 116.47, afternoon)["odor"] == pytest.approx(
        field.background_at(afternoon)["odor"]
    )
    assert field.true_values(39.89, 116.47, lunch)["odor"] > field.background_at(lunch)["odor"] + 9


# -- sensors ----------------------------------------------------------------------------------


@given(st.floats(-100, 100), st.floats(-100, 100), st.floats(0.01, 30), st.floats(0.5, 120))
def test_a_lag_moves_towards_its_input_and_never_past_it(
    state: float, target: float, dt: float, t90: float
) -> None:
    after = lag_step(state, target, dt, t90)
    assert min(state, target) - 1e-9 <= after <= max(state, target) + 1e-9
    assert abs(after - target) <= abs(state - target) + 1e-9


def test_a_step_reaches_90_percent_at_t90_whatever_the_step_size() -> None:
    for steps in (1, 10, 45):
        value = 0.0
        for _ in range(steps):
            value = lag_step(value, 1.0, 45.0 / steps, 45.0)
        assert value == pytest.approx(0.9)


@given(st.floats(-1e4, 1e4), st.sampled_from([0.01, 0.1, 1.0]))
def test_quantised_values_sit_on_the_grid(value: float, quantum: float) -> None:
    q = quantise(value, quantum)
    assert abs(q - value) <= quantum / 2 + 1e-9
    assert abs(q / quantum - round(q / quantum)) < 1e-6


def test_warm_up_starts_low_and_settles() -> None:
    assert warmup_factor(0, 600) == 0.5
    assert warmup_factor(300, 600) == 0.75
    assert warmup_factor(600, 600) == 1.0


def test_warming_up_counts_only_the_modules_a_box_serves() -> None:
    specs = {"pm25": SensorSpec(warmup_s=30), "no2": SensorSpec(warmup_s=600)}
    sensors = SensorArray(specs, random.Random(1), power_on_s=0.0)
    assert sensors.warming_up(100.0)
    assert not sensors.warming_up(100.0, {"pm25"})
    assert sensors.warming_up(10.0, {"pm25"})
    assert not sensors.warming_up(700.0)


def test_the_sensor_array_lags_a_step_and_shows_the_transport_delay() -> None:
    specs = {"no2": SensorSpec(t90_s=30, delay_s=5)}
    sensors = SensorArray(specs, random.Random(1), power_on_s=-1000.0)

    def truth(t: float) -> dict[str, float]:
        return {"no2": 100.0 if t >= 0 else 0.0}

    assert sensors.read(-10.0, truth)["no2"] == 0.0
    assert sensors.read(4.0, truth)["no2"] == 0.0  # the step has not reached the cell yet
    assert sensors.read(35.0, truth)["no2"] == pytest.approx(90.0, abs=1.0)
    assert sensors.read(200.0, truth)["no2"] == pytest.approx(100.0, abs=0.01)


def test_sensor_noise_is_seeded() -> None:
    specs = {"pm25": SensorSpec(noise=2.0, quantum=1.0)}

    def truth(_t: float) -> dict[str, float]:
        return {"pm25": 40.0}

    def run(seed: int) -> list[float]:
        sensors = SensorArray(specs, random.Random(seed))
        return [sensors.read(10.0 * i, truth)["pm25"] for i in range(50)]

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert 1.0 < (max(run(1)) - min(run(1))) < 20.0


# -- GPS --------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.floats(0, 30 * 24 * 3600))
def test_gps_error_stays_in_its_band_or_is_a_multipath_jump(t: float) -> None:
    spec = GpsSpec(dropouts_per_h=0.0)
    model = GpsErrorModel(spec, seed=5)
    seen = model.observe(T0.timestamp() + t, 39.89, 116.47)
    error = haversine_m(39.89, 116.47, seen.lat, seen.lon)
    assert seen.valid
    assert error == pytest.approx(seen.error_m, abs=0.05)
    if not seen.multipath:
        assert 3.0 - 0.05 <= error <= 8.0 + 0.05
    else:
        assert error <= 8.0 + 50.0 + 0.05
        assert seen.hdop > spec.hdop
    assert model.observe(T0.timestamp() + t, 39.89, 116.47) == seen


def test_gps_multipath_jumps_and_dropouts_happen_at_their_rates() -> None:
    model = GpsErrorModel(GpsSpec(multipath_per_h=6, dropouts_per_h=2), seed=9)
    hours = 20
    seen = [model.observe(T0.timestamp() + s, 39.89, 116.47) for s in range(0, hours * 3600, 2)]
    jumps = sum(1 for a, b in itertools.pairwise(seen) if b.multipath and not a.multipath)
    outages = sum(1 for a, b in itertools.pairwise(seen) if a.valid and not b.valid)
    assert 3 * hours < jumps < 9 * hours
    assert 1 * hours < outages < 3 * hours


def test_no_fix_inside_a_dropout_zone() -> None:
    zone = DropoutZone(39.8935, 116.4618, 30.0)
    model = GpsErrorModel(GpsSpec(dropout_zones=(zone,), dropouts_per_h=0), seed=1)
    assert not model.observe(T0.timestamp(), 39.8935, 116.4618).valid
    assert model.observe(T0.timestamp(), 39.8950, 116.4618).valid


# -- faults -----------------------------------------------------------------------------------


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125), st.integers(0, 2**32))
def test_a_crc_fault_always_breaks_the_crc(registers: list[int], seed: int) -> None:
    frame = encode_read_response(1, 3, registers)
    bad = corrupt_crc(frame, random.Random(seed))
    assert len(bad) == len(frame)
    assert not crc_ok(bad)


@given(st.integers(0, 2**32))
def test_garbage_before_an_answer_is_skipped_by_the_agent(seed: int) -> None:
    profile = load_profile("default-multi")
    plan = FaultPlan(FaultSpec(garbage=1.0), seed)
    frame = encode_read_response(1, 3, list(range(16)))
    assert plan.next_action() == "garbage"
    decoded = decode_response(plan.shape("garbage", frame), profile.request)
    assert decoded.frame is not None
    assert getattr(decoded.frame, "registers", None) == tuple(range(16))


def test_fault_actions_follow_their_probabilities_and_the_seed() -> None:
    spec = FaultSpec(drop=0.1, crc=0.05, garbage=0.05, late=0.02)
    plan = FaultPlan(spec, 3)
    actions = [plan.next_action() for _ in range(20000)]
    share = {a: actions.count(a) / len(actions) for a in set(actions)}
    assert share["drop"] == pytest.approx(0.1, abs=0.01)
    assert share["crc"] == pytest.approx(0.05, abs=0.01)
    assert share["ok"] == pytest.approx(0.78, abs=0.015)
    again = FaultPlan(spec, 3)
    assert [again.next_action() for _ in range(20000)] == actions


def test_stuck_and_sentinel_windows() -> None:
    plan = FaultPlan(
        FaultSpec(
            stuck=(ChannelWindow("o3", 1.0, 2.0),), sentinel=(ChannelWindow("so2", 1.5, 2.0),)
        ),
        1,
    )
    assert plan.channels(0.5, {"o3": 10.0, "so2": 5.0}) == ({"o3": 10.0, "so2": 5.0}, [])
    assert plan.channels(1.0, {"o3": 20.0, "so2": 5.0})[0] == {"o3": 20.0, "so2": 5.0}
    values, applied = plan.channels(1.6, {"o3": 33.0, "so2": 6.0})
    assert values == {"o3": 20.0, "so2": None}
    assert applied == ["stuck:o3", "sentinel:so2"]
    assert plan.channels(2.0, {"o3": 40.0, "so2": 7.0})[0] == {"o3": 40.0, "so2": 7.0}


def test_fault_probabilities_are_checked() -> None:
    with pytest.raises(ValueError, match="sum to at most 1"):
        FaultSpec(drop=0.7, crc=0.5)


# -- speed profile ----------------------------------------------------------------------------


def test_a_patrol_stops_at_junctions_and_idles_and_is_reproducible() -> None:
    profile = SpeedProfile(idle_every_s=(1200, 1800), idle_s=(300, 300))
    drive = PatrolDrive(SHUANGJING_LOOP, T0, profile, seed=4, horizon_s=4 * 3600)
    states = [drive.state(T0 + timedelta(seconds=s)) for s in range(0, 4 * 3600, 5)]
    stopped = [s for s in states if s.speed_mps == 0]
    assert 0.05 < len(stopped) / len(states) < 0.5
    assert max(s.speed_mps for s in states) <= profile.cruise_mps * 1.2 + 1e-9
    # Long stands (idling) occur: 300 s is 60 samples of 5 s in a row.
    run, longest = 0, 0
    for s in states:
        run = run + 1 if s.speed_mps == 0 else 0
        longest = max(longest, run)
    assert longest >= 55
    again = PatrolDrive(SHUANGJING_LOOP, T0, profile, seed=4, horizon_s=4 * 3600)
    assert again.state(T0 + timedelta(seconds=5000)) == drive.state(T0 + timedelta(seconds=5000))


@given(st.floats(0, 6 * 3600), st.floats(0.1, 60))
def test_a_patrol_never_moves_faster_than_its_profile_allows(start: float, dt: float) -> None:
    profile = SpeedProfile()
    drive = PatrolDrive(SHUANGJING_LOOP, T0, profile, seed=1, horizon_s=8 * 3600)
    a = drive.state(T0 + timedelta(seconds=start))
    b = drive.state(T0 + timedelta(seconds=start + dt))
    assert haversine_m(a.lat, a.lon, b.lat, b.lon) <= profile.cruise_mps * 1.2 * dt + 0.5


def test_junctions_are_the_turns_of_the_route() -> None:
    square = Route("sq", [(0.0, 0.0), (0.0, 0.001), (0.0, 0.002), (0.001, 0.002), (0.001, 0.0)])
    assert len(square.junctions()) == 4  # the straight-through waypoint is no junction
    track = Route("track", [(0.0, 0.0), (0.0, 0.001), (0.001, 0.001)], closed=False)
    assert track.length_m == pytest.approx(2 * (111.2 + 111.2), rel=0.01)
    assert track.at(track.length_m / 2).lat == pytest.approx(0.001)
