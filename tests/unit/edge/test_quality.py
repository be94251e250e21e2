"""Quality flags: each rule alone, the tracker over a sequence, and properties that always hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from edge.nmea import Fix
from edge.quality import (
    FixFilter,
    QualitySettings,
    QualityTracker,
    distance_m,
    fix_problem,
    is_spike,
)
from edge.units import CHANNELS
from edge.wire import CHANNEL_FLAGS, READING_FLAGS

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
PM25 = CHANNELS["pm25"]


def fix(
    lat: float = 39.89,
    lon: float = 116.46,
    *,
    valid: bool = True,
    quality: int | None = 1,
    satellites: int | None = 10,
    hdop: float | None = 0.9,
    at: datetime = T0,
) -> Fix:
    return Fix(at, lat, lon, valid, quality, satellites, hdop, 40.0, 5.0, 90.0, "GN")


def test_every_flag_the_rules_can_emit_is_on_the_wire() -> None:
    assert {"warmup", "out_of_range", "sentinel", "stuck", "spike"} <= CHANNEL_FLAGS
    assert {"no_fix", "stale_fix", "stationary", "host_time"} <= READING_FLAGS


def test_warmup_flags_values_until_the_sensors_settled() -> None:
    tracker = QualityTracker(QualitySettings(warmup_s=120))
    _, early = tracker.assess({"pm25": 30.0, "no2": None}, (), 0.0, 119.0, None)
    assert early == {"pm25": ("warmup",)}  # a missing value has nothing to warm up
    _, late = tracker.assess({"pm25": 31.0}, (), 10.0, 120.0, None)
    assert late == {}


def test_sentinel_and_out_of_range() -> None:
    tracker = QualityTracker()
    _, flags = tracker.assess(
        {"humidity": None, "co2": 20000.0, "pm25": 10.0}, ("humidity",), 0.0, 1e9, None
    )
    assert flags == {"humidity": ("sentinel",), "co2": ("out_of_range",)}


def test_stuck_after_the_value_stayed_identical_long_enough() -> None:
    tracker = QualityTracker(QualitySettings(stuck_s=60))
    seen = [tracker.assess({"pm25": 12.0}, (), t, 1e9, None)[1] for t in range(0, 80, 10)]
    assert [("stuck" in f.get("pm25", ())) for f in seen] == [False] * 6 + [True] * 2
    _, moved = tracker.assess({"pm25": 12.5}, (), 80.0, 1e9, None)
    assert moved == {}


def test_an_isolated_spike_is_flagged_and_the_return_is_not() -> None:
    tracker = QualityTracker()
    flags = [
        tracker.assess({"pm25": v}, (), i * 10.0, 1e9, None)[1]
        for i, v in enumerate((30.0, 1900.0, 31.0))
    ]
    assert flags == [{}, {"pm25": ("spike",)}, {}]


def test_a_lasting_level_change_is_accepted_after_a_few_readings() -> None:
    tracker = QualityTracker(QualitySettings(spike_accept_after=3))
    values = (30.0, 1900.0, 1900.5, 1901.0, 1901.5)
    flags = [tracker.assess({"pm25": v}, (), i * 10.0, 1e9, None)[1] for i, v in enumerate(values)]
    assert flags == [{}, {"pm25": ("spike",)}, {"pm25": ("spike",)}, {}, {}]


def test_a_source_peak_is_not_a_spike() -> None:
    # A patrol car passing a restaurant: cooking fume rises 15-fold within a few readings.
    tracker = QualityTracker()
    values = (0.08, 0.2, 0.7, 1.25, 0.6, 0.15, 0.08)
    flags = [
        tracker.assess({"cooking_fume": v}, (), i * 10.0, 1e9, 6.0)[1] for i, v in enumerate(values)
    ]
    assert all(f == {} for f in flags)


def test_stationary_after_standing_still_long_enough() -> None:
    tracker = QualityTracker(QualitySettings(stationary_speed_mps=0.5, stationary_s=60))
    speeds = [5.0, 0.1, 0.0, 0.2, 0.1, 0.0, 0.1, 0.3, 0.2, 4.0]
    flags = [tracker.assess({}, (), i * 10.0, 1e9, v)[0] for i, v in enumerate(speeds)]
    assert flags == [()] * 7 + [("stationary",)] * 2 + [()]


def test_no_speed_means_not_known_to_be_stationary() -> None:
    tracker = QualityTracker(QualitySettings(stationary_s=0))
    assert tracker.assess({}, (), 0.0, 1e9, None)[0] == ()
    assert tracker.assess({}, (), 1.0, 1e9, 0.0)[0] == ("stationary",)


def test_fix_filters() -> None:
    limits = FixFilter(max_hdop=5.0, min_satellites=4, max_speed_mps=70.0)
    assert fix_problem(fix(), None, limits) is None
    assert fix_problem(fix(valid=False), None, limits) == "status"
    assert fix_problem(fix(quality=0), None, limits) == "quality"
    assert fix_problem(fix(hdop=9.9), None, limits) == "hdop"
    assert fix_problem(fix(satellites=3), None, limits) == "satellites"
    one_second_later = T0 + timedelta(seconds=1)
    near = fix(39.8903, 116.46, at=one_second_later)  # ~33 m in 1 s: a car
    far = fix(39.90, 116.46, at=one_second_later)  # ~1.1 km in 1 s: a jump
    assert fix_problem(near, fix(), limits) is None
    assert fix_problem(far, fix(), limits) == "jump"
    # The same epoch again (RMC then GGA) is not a jump.
    assert fix_problem(fix(39.90, 116.46), fix(), limits) is None


def test_distance() -> None:
    assert distance_m(39.9, 116.4, 39.9, 116.4) == 0.0
    assert abs(distance_m(0.0, 0.0, 1.0, 0.0) - 111195) < 10


values_strategy = st.dictionaries(
    st.sampled_from(sorted(CHANNELS)),
    st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
    max_size=6,
)


@given(
    st.lists(
        st.tuples(values_strategy, st.one_of(st.none(), st.floats(0, 60))), min_size=1, max_size=30
    ),
    st.floats(0, 1e5),
)
def test_flags_are_always_known_to_the_wire_and_never_drop_a_value(
    readings: list[tuple[dict[str, float | None], float | None]], uptime: float
) -> None:
    tracker = QualityTracker()
    for i, (values, speed) in enumerate(readings):
        sentinel = tuple(k for k, v in values.items() if v is None)
        reading_flags, channel_flags = tracker.assess(values, sentinel, i * 10.0, uptime + i, speed)
        assert set(reading_flags) <= READING_FLAGS
        assert set(channel_flags) <= set(values)
        for names in channel_flags.values():
            assert set(names) <= CHANNEL_FLAGS
            assert len(set(names)) == len(names)


@given(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4))
def test_spike_is_symmetric(a: float, b: float) -> None:
    s = QualitySettings()
    assert is_spike(PM25, a, b, s) == is_spike(PM25, b, a, s)


@given(st.floats(-89, 89), st.floats(-179, 179), st.floats(-89, 89), st.floats(-179, 179))
def test_distance_is_a_symmetric_non_negative_bounded_metric(
    lat1: float, lon1: float, lat2: float, lon2: float
) -> None:
    d = distance_m(lat1, lon1, lat2, lon2)
    assert d >= 0
    assert abs(d - distance_m(lat2, lon2, lat1, lon1)) < 1e-6
    assert d <= 20_040_000
