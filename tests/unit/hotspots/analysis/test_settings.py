from __future__ import annotations

import math

import pytest

from edge.errors import SettingsError
from edge.profile import builtin_profiles, load_profile
from hotspots.analysis.quantisation import quanta_of_profiles
from hotspots.analysis.settings import DEFAULT_QUANTUM, AnalysisSettings, Stratum
from hotspots.floors import HOTSPOT_FLOORS


def test_defaults_follow_the_reference_method() -> None:
    s = AnalysisSettings()
    assert s.pass_gap_s == 120.0
    assert s.background_quantile == 0.10
    assert s.background_window_s == 1200.0
    assert s.background_smooth_s == 600.0
    assert (s.candidate_min_passes, s.candidate_min_days, s.confirmed_min_passes) == (8, 2, 20)
    assert s.few_days == 4
    assert s.design_effect
    assert s.fdr_q == 0.05
    assert s.spatial_band_m == 150.0
    assert s.persistent_min_share == 0.5
    assert s.episodic_max_share == 0.25
    assert s.episodic_factor == 3.0
    assert [x.name for x in s.strata] == ["all_day", "meals", "lunch", "dinner", "night"]
    assert s.strata[1].windows() == ((630, 810), (990, 1200))
    # The lag is transport delay + T90 / ln 10 of the default modules, not T90 itself.
    assert s.lags_s["no2"] == s.lags_s["co"] == 23.0
    assert s.pass_lag


def test_delta_is_the_larger_of_twice_the_noise_and_the_floor() -> None:
    s = AnalysisSettings(quantum={})
    assert s.delta_for("pm25") == 4.0  # no absolute floor by default: 2 x 2 ug/m3
    assert set(s.pollutants()) == set(HOTSPOT_FLOORS)  # every channel of the store's table
    assert AnalysisSettings(floors=HOTSPOT_FLOORS).delta_for("pm25") == 10.0  # floor 10 > 2 x 2
    noisy = AnalysisSettings(sensor_noise={"pm25": 8.0}, quantum={})
    assert noisy.delta_for("pm25") == 16.0
    with pytest.raises(SettingsError):
        AnalysisSettings(floors={}, sensor_noise={}, quantum={}).delta_for("pm25")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pass_gap_s", 0.0),
        ("background_quantile", 1.0),
        ("fdr_q", 0.0),
        ("candidate_min_passes", 0),
        ("confirmed_min_passes", 4),
        ("reference", "mean"),
        ("timezone", "Mars/Olympus"),
        ("floors", {"pm25": -1.0}),
        ("cluster_rings", 0),
        ("pass_lag_max_gap_s", 0.0),
        ("quantum", {"so2": -1.0}),
        ("lattice_steps", 0.0),
        ("episode_off_factor", 1.0),
        ("episodic_min_days", 0),
        ("few_days", 0),
    ],
)
def test_invalid_settings_name_their_field(field: str, value: object) -> None:
    with pytest.raises(SettingsError) as caught:
        AnalysisSettings(**{field: value})  # type: ignore[arg-type]
    assert caught.value.subject.startswith(field)


def test_strata_are_checked() -> None:
    with pytest.raises(SettingsError):
        Stratum("late", 0, 1500)
    with pytest.raises(SettingsError):
        Stratum("meals", 630, 810, more=((990, 1441),))
    with pytest.raises(SettingsError):
        AnalysisSettings(strata=(Stratum("lunch", 600, 800),))


def test_the_register_grid_enters_delta() -> None:
    s = AnalysisSettings()
    # SO2 in whole ppb is 2.62 ug/m3 a step: more than 2 x sqrt(1 + 2.62^2 / 12) = 2.51.
    step = 64.07 / 24.465
    assert s.quantum["so2"] == pytest.approx(step)
    assert s.noise_for("so2") == pytest.approx(math.sqrt(1.0 + step**2 / 12))
    assert s.delta_for("so2") == pytest.approx(step)
    # PM2.5 in whole ug/m3 under 2 ug/m3 of noise: the rounding adds 1 / 12 to the variance.
    assert s.delta_for("pm25") == pytest.approx(2 * math.sqrt(4 + 1 / 12))


def test_the_default_grid_is_the_coarsest_of_the_shipped_profiles() -> None:
    shipped = quanta_of_profiles(load_profile(name) for name in builtin_profiles())
    assert set(shipped) == set(DEFAULT_QUANTUM)
    for channel, step in shipped.items():
        assert DEFAULT_QUANTUM[channel] == pytest.approx(step), channel
