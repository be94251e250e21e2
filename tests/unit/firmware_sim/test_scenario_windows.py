"""A vehicle's shift windows over weeks: sorted, disjoint, inside the scenario, each where its
shift pattern allows it, the same for the same seed, and unchanged by a longer run."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.scenario import (
    MAX_JITTER_MIN,
    Scenario,
    ShiftSpec,
    ShiftWindow,
    VehicleSpec,
    parse_scenario,
)

BASE = parse_scenario(
    "start = 2026-03-02T00:00:00+08:00\n"
    "[[routes]]\nname = 'a'\npoints = [[39.89, 116.46], [39.891, 116.462]]\n"
    "[[routes]]\nname = 'b'\npoints = [[39.886, 116.46], [39.886, 116.47]]\n"
    "[[vehicles]]\nname = 'p'\nroute = 'a'\n"
)
EPSILON = timedelta(microseconds=1)


@st.composite
def shifts(draw: st.DrawFn) -> ShiftSpec:
    start = time(draw(st.integers(0, 23)), draw(st.integers(0, 59)))
    end = time(draw(st.integers(0, 23)), draw(st.integers(0, 59)))
    if end == start:
        end = time((start.hour + 1) % 24, start.minute)
    weekdays = draw(st.none() | st.sets(st.integers(0, 6), min_size=1).map(sorted).map(tuple))
    return ShiftSpec(
        start,
        end,
        weekdays=weekdays,
        share=draw(st.floats(0.05, 1.0)),
        jitter_min=draw(st.floats(0.0, MAX_JITTER_MIN)),
        routes=tuple(draw(st.lists(st.sampled_from(["a", "b"]), max_size=3))),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(0, 365 * 24 * 60))
    )
    vehicle = VehicleSpec("p", "a", shifts=tuple(draw(st.lists(shifts(), min_size=1, max_size=3))))
    return replace(
        BASE,
        seed=draw(st.integers(0, 2**31)),
        start=start,
        duration_h=draw(st.floats(0.5, 21 * 24.0)),
        timezone_h=draw(st.integers(-24, 28)) / 2,
        vehicles=(vehicle,),
    )


def nominal(scenario: Scenario, shift: ShiftSpec, day: date) -> tuple[datetime, datetime]:
    """The shift of `day` without jitter, in UTC."""
    on = datetime.combine(day, shift.start, UTC) - timedelta(hours=scenario.timezone_h)
    return on, on + shift.length


def local_days(scenario: Scenario) -> list[date]:
    tz = timedelta(hours=scenario.timezone_h)
    first = (scenario.start + tz).date() - timedelta(days=3)
    return [first + timedelta(days=i) for i in range((scenario.end - scenario.start).days + 6)]


def allowed(scenario: Scenario, moment: datetime, edge: int) -> bool:
    """`moment` is a start (`edge` 0) or an end (1) some shift of some day may have."""
    for shift in scenario.vehicles[0].shifts:
        jitter = timedelta(minutes=shift.jitter_min) + EPSILON
        for day in local_days(scenario):
            if shift.weekdays is not None and day.weekday() not in shift.weekdays:
                continue
            if abs(moment - nominal(scenario, shift, day)[edge]) <= jitter:
                return True
    return False


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_windows_are_sorted_disjoint_inside_and_where_their_shifts_allow(
    scenario: Scenario,
) -> None:
    vehicle = scenario.vehicles[0]
    windows = scenario.windows(vehicle)
    assert [w.index for w in windows] == list(range(len(windows)))
    for w in windows:
        assert w.vehicle == "p"
        assert scenario.start <= w.on < w.off <= scenario.end
        assert w.on == scenario.start or allowed(scenario, w.on, 0)
        assert w.off == scenario.end or allowed(scenario, w.off, 1)
        assert w.route in {"a", *(r for s in vehicle.shifts for r in s.routes)}
        if scenario.start < w.on and w.off < scenario.end:
            assert w.off - w.on >= min(s.length for s in vehicle.shifts) - EPSILON
    for before, after in itertools.pairwise(windows):
        assert before.off < after.on  # touching windows were joined: the box stays on


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_windows_are_the_same_for_the_same_seed(scenario: Scenario) -> None:
    vehicle = scenario.vehicles[0]
    again = replace(scenario, vehicles=(replace(vehicle),))
    assert scenario.windows(vehicle) == again.windows(again.vehicles[0])


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.floats(1.0, 7 * 24.0))
def test_a_longer_run_keeps_the_windows_it_had(scenario: Scenario, more_h: float) -> None:
    vehicle = scenario.vehicles[0]
    longer = replace(scenario, duration_h=scenario.duration_h + more_h)
    kept = {(w.on, w.off, w.route) for w in longer.windows(vehicle)}
    for w in scenario.windows(vehicle):
        if w.off < scenario.end:
            assert (w.on, w.off, w.route) in kept


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_every_day_of_a_fixed_shift_is_worked(scenario: Scenario) -> None:
    vehicle = scenario.vehicles[0]
    fixed = tuple(replace(s, share=1.0, jitter_min=0.0) for s in vehicle.shifts)
    scenario = replace(scenario, vehicles=(replace(vehicle, shifts=fixed),))
    windows = scenario.windows(scenario.vehicles[0])
    for shift in fixed:
        for day in local_days(scenario):
            if shift.weekdays is not None and day.weekday() not in shift.weekdays:
                continue
            on, off = nominal(scenario, shift, day)
            on, off = max(on, scenario.start), min(off, scenario.end)
            if on < off:
                assert any(w.on <= on and off <= w.off for w in windows), (shift, day)


def test_a_vehicle_without_shifts_is_on_for_the_whole_run() -> None:
    vehicle = BASE.vehicles[0]
    assert BASE.windows(vehicle) == (ShiftWindow("p", 0, BASE.start, BASE.end, "a"),)
