from __future__ import annotations

import pytest

from edge.units import converter, energy_mean
from hotspots.analysis.standards import category, colour_scale, iaqi, iaqi_band, noise_band


@pytest.mark.parametrize(
    ("pollutant", "value", "expected"),
    [
        ("pm25", 0.0, 0),
        ("pm25", 35.0, 50),
        ("pm25", 75.0, 100),
        ("pm25", 50.0, 69),  # 50 + 50/40 x 15 = 68.75, rounded up
        ("pm10", 150.0, 100),
        ("no2", 200.0, 100),  # 1 h breakpoints
        ("co", 5.0, 50),  # mg/m3, 1 h
        ("o3", 300.0, 150),
        ("so2", 900.0, 213),  # no 1 h IAQI above 800: 24 h, 200 + 100/800 x 100 = 212.5
        ("pm25", 600.0, None),
    ],
)
def test_iaqi_by_hand(pollutant: str, value: float, expected: int | None) -> None:
    assert iaqi(pollutant, value) == expected


def test_categories_and_colours() -> None:
    assert category(50) == ("excellent", (0, 228, 0))
    assert category(101)[0] == "lightly polluted"
    assert category(None)[0] == "severely polluted"


def test_band_is_marked_indicative() -> None:
    band = iaqi_band("pm25", 80.0)
    assert band is not None
    assert band.indicative
    assert "not a compliance" in band.note
    assert (band.iaqi, band.category, band.basis, band.unit) == (
        107,
        "lightly polluted",
        "24h",
        "ug/m3",
    )
    assert iaqi_band("odor", 5.0) is None


def test_ppb_readings_convert_at_25c_before_the_band() -> None:
    no2_ugm3 = converter("no2", "ppb")(100.0)  # 100 ppb x 46.01 / 24.465
    assert no2_ugm3 == pytest.approx(188.07, abs=0.01)
    assert iaqi("no2", no2_ugm3) == 95


def test_noise_limits() -> None:
    day = noise_band(63.0, "2", "day")
    assert (day.limit, day.excess) == (60.0, 3.0)
    assert noise_band(63.0, "4a", "night").limit == 55.0
    with pytest.raises(ValueError, match="class"):
        noise_band(50.0, "5")


def test_energy_mean() -> None:
    assert energy_mean([60.0, 70.0]) == pytest.approx(67.4036, abs=1e-4)
    assert energy_mean([55.0]) == pytest.approx(55.0)


def test_colour_scales_follow_the_standards() -> None:
    pm25 = colour_scale("pm25")
    assert pm25 is not None
    assert [s.upper for s in pm25] == [35, 75, 115, 150, 250, None]
    assert [s.category for s in pm25][:2] == ["excellent", "good"]
    noise = colour_scale("noise")
    assert noise is not None
    assert [s.upper for s in noise] == [55.0, 60.0, 65.0, 70.0, None]
    assert colour_scale("odor") is None
    for name in ("pm25", "pm10", "no2", "o3", "so2", "co", "noise"):
        scale = colour_scale(name)
        assert scale is not None
        uppers = [s.upper for s in scale if s.upper is not None]
        assert uppers == sorted(uppers)
        assert scale[-1].upper is None  # open-ended at the top
        # a value's colour is that of the category its IAQI falls in
        if name != "noise":
            for step in scale[:-1]:
                assert step.upper is not None
                band = iaqi_band(name, float(step.upper))
                assert band is not None
                assert band.category == step.category
