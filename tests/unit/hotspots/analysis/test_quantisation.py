"""Register steps of box profiles in canonical units, and the rounding error they add."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.profile import BoxProfile, builtin_profiles, load_profile, parse_profile
from hotspots.analysis.quantisation import effective_noise, quanta_of_profiles, register_step

SHIPPED = [load_profile(name) for name in builtin_profiles()]


def _profile(name: str, channels: str) -> str:
    return f'name = "{name}"\nstart = 0\ncount = 4\n{channels}'


ONE = _profile(
    "one",
    """
[[channels]]
channel = "so2"
register = 0
unit = "ppb"

[[channels]]
channel = "co"
register = 1
scale = 0.01
unit = "ppm"

[[channels]]
channel = "pm25"
register = 2
type = "f32"
""",
)
TWO = _profile(
    "two",
    """
[[channels]]
channel = "so2"
register = 0
scale = 0.1
unit = "ug/m3"

[[channels]]
channel = "pm25"
register = 1
scale = 2
unit = "ug/m3"
""",
)


def test_a_step_in_ppb_is_converted_to_mass_concentration() -> None:
    steps = {c.channel: register_step(c) for c in parse_profile(ONE).channels}
    assert steps["so2"] == pytest.approx(64.07 / 24.465)  # 1 ppb of SO2 at 25 C
    assert steps["co"] == pytest.approx(0.01 * 28.01 / 24.465)  # 0.01 ppm in mg/m3
    assert steps["pm25"] == 0.0  # float registers have no grid worth counting


def test_the_fleet_takes_the_coarsest_step_of_each_channel() -> None:
    fleet = quanta_of_profiles([parse_profile(ONE), parse_profile(TWO)])
    assert fleet["so2"] == pytest.approx(64.07 / 24.465)  # whole ppb is coarser than 0.1 ug/m3
    assert fleet["pm25"] == 2.0  # the float box does not make the grid finer
    assert fleet["co"] == pytest.approx(0.01 * 28.01 / 24.465)
    assert quanta_of_profiles([]) == {}


def test_the_shipped_default_box_reports_whole_units() -> None:
    shipped = quanta_of_profiles(SHIPPED)
    assert shipped["pm25"] == 1.0
    assert shipped["noise"] == pytest.approx(0.1)
    assert shipped["no2"] == pytest.approx(46.01 / 24.465)


@given(st.permutations([*SHIPPED, parse_profile(ONE), parse_profile(TWO)]), st.integers(1, 4))
def test_adding_a_box_never_makes_a_step_finer(profiles: list[BoxProfile], keep: int) -> None:
    some = quanta_of_profiles(profiles[:keep])
    every = quanta_of_profiles(profiles)
    for channel, step in some.items():
        assert step >= 0.0
        assert every[channel] >= step


@given(st.floats(0.0, 1e3), st.floats(0.0, 1e3))
def test_rounding_adds_a_uniform_error_of_variance_q2_over_12(noise: float, step: float) -> None:
    total = effective_noise(noise, step)
    assert total == pytest.approx(math.sqrt(noise**2 + step**2 / 12.0))
    assert total >= max(noise, step / math.sqrt(12.0)) - 1e-9
