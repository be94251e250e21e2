from __future__ import annotations

import pytest

from edge.errors import SettingsError
from hotspots.analysis.settings import AnalysisSettings, Stratum
from hotspots.floors import HOTSPOT_FLOORS


def test_defaults_follow_the_reference_method() -> None:
    s = AnalysisSettings()
    assert s.pass_gap_s == 120.0
    assert s.background_quantile == 0.10
    assert s.background_window_s == 1200.0
    assert s.background_smooth_s == 600.0
    assert (s.candidate_min_passes, s.candidate_min_days, s.confirmed_min_passes) == (8, 4, 20)
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
    s = AnalysisSettings()
    assert s.delta_for("pm25") == 4.0  # no absolute floor by default: 2 x 2 ug/m3
    assert set(s.pollutants()) == set(HOTSPOT_FLOORS)  # every channel of the store's table
    assert AnalysisSettings(floors=HOTSPOT_FLOORS).delta_for("pm25") == 10.0  # floor 10 > 2 x 2
    noisy = AnalysisSettings(sensor_noise={"pm25": 8.0})
    assert noisy.delta_for("pm25") == 16.0
    with pytest.raises(SettingsError):
        AnalysisSettings(floors={}, sensor_noise={}).delta_for("pm25")


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
