"""Channels, their canonical units, and conversions between the units boxes report in.

Every value leaves the vehicle in the canonical unit of its channel, so the rest of the system
never guesses a unit. Gas conversions use the molar volume at 25 C and 1013.25 hPa, the reference
state of GB 3095-2012 since its 2018 amendment. Particles are never converted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edge.errors import EnvpatrolError

MOLAR_VOLUME_25C = 24.465  # L/mol at 298.15 K, 1013.25 hPa


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """A measured quantity as the system knows it, whatever box measured it."""

    name: str
    unit: str
    label: str
    label_zh: str
    low: float  # physically plausible range, for validation
    high: float
    molar_mass: float | None = None  # g/mol, for gases converted between mixing ratio and mass
    energy_mean: bool = False  # logarithmic (decibels): averaged by `energy_mean`


CHANNELS: dict[str, ChannelSpec] = {
    spec.name: spec
    for spec in (
        ChannelSpec("temperature", "degC", "Temperature", "温度", -40.0, 70.0),
        ChannelSpec("humidity", "%", "Relative humidity", "湿度", 0.0, 100.0),
        ChannelSpec("noise", "dBA", "Noise level", "噪声", 20.0, 140.0, energy_mean=True),
        ChannelSpec("pm25", "ug/m3", "PM2.5", "PM2.5", 0.0, 2000.0),
        ChannelSpec("pm10", "ug/m3", "PM10", "PM10", 0.0, 5000.0),
        ChannelSpec("co2", "ppm", "CO2", "二氧化碳", 250.0, 10000.0, molar_mass=44.01),
        ChannelSpec("o3", "ug/m3", "O3", "臭氧", 0.0, 2000.0, molar_mass=48.00),
        ChannelSpec("no2", "ug/m3", "NO2", "二氧化氮", 0.0, 4000.0, molar_mass=46.01),
        ChannelSpec("so2", "ug/m3", "SO2", "二氧化硫", 0.0, 5000.0, molar_mass=64.07),
        ChannelSpec("co", "mg/m3", "CO", "一氧化碳", 0.0, 200.0, molar_mass=28.01),
        ChannelSpec("hcho", "ug/m3", "Formaldehyde", "甲醛", 0.0, 5000.0, molar_mass=30.03),
        ChannelSpec("tvoc", "ppb", "TVOC", "总挥发性有机物", 0.0, 60000.0),
        ChannelSpec("odor", "index", "Odor index", "异味指数", 0.0, 1000.0),
        ChannelSpec("cooking_fume", "mg/m3", "Cooking fume", "油烟", 0.0, 100.0),
        ChannelSpec("pollen", "grains/m3", "Pollen", "花粉", 0.0, 100000.0),
    )
}


def to_energy(level: float) -> float:
    """A decibel level as energy, 10^(L/10): the quantity that adds up and averages.

    hotspots.analysis.standards has its array form, for numpy columns of levels.
    """
    energy: float = 10.0 ** (level / 10.0)
    return energy


def energy_to_level(energy: float) -> float:
    """The decibel level of an energy, 10*log10(E): the inverse of `to_energy`."""
    return 10.0 * math.log10(energy)


def energy_mean(levels: Iterable[float]) -> float:
    """10*log10(mean(10^(L/10))): how decibel levels (noise) are averaged.

    The one rule for every mean of a logarithmic channel: the ingest's passes and the SQL of
    store.pass_columns and ingest.pass_store, the rollups, the analysis and the API all follow it.
    """
    energies = [to_energy(level) for level in levels]
    if not energies:
        raise ValueError("no levels to average")
    return energy_sum_mean(math.fsum(energies), len(energies))


def energy_sum_mean(energy_sum: float, n: int) -> float:
    """The energy mean of `n` levels whose energies add up to `energy_sum` (`energy_sum` > 0).

    Passes and rollups keep the sum, not the mean, so that groups merge exactly.
    """
    return energy_to_level(energy_sum / n)


class UnitError(EnvpatrolError, ValueError):
    """A unit that cannot be converted to a channel's canonical unit."""

    def __init__(self, channel: str, unit: str) -> None:
        canonical = CHANNELS[channel].unit if channel in CHANNELS else "?"
        super().__init__(f"channel {channel!r}", f"cannot convert {unit!r} to {canonical!r}")
        self.channel = channel
        self.unit = unit


_SCALE = {
    ("ug/m3", "mg/m3"): 1e-3,
    ("mg/m3", "ug/m3"): 1e3,
    ("ppb", "ppm"): 1e-3,
    ("ppm", "ppb"): 1e3,
}


def converter(channel: str, unit: str) -> Callable[[float], float]:
    """A function taking a value in `unit` to the channel's canonical unit."""
    if channel not in CHANNELS:
        raise UnitError(channel, unit)
    spec = CHANNELS[channel]
    factor = _factor(spec, unit, spec.unit)
    if factor == 1.0:
        return _identity
    return lambda value: value * factor


def inverse_converter(channel: str, unit: str) -> Callable[[float], float]:
    """A function taking a canonical value back to `unit` (what a box would send)."""
    if channel not in CHANNELS:
        raise UnitError(channel, unit)
    spec = CHANNELS[channel]
    factor = _factor(spec, unit, spec.unit)
    return lambda value: value / factor


def _identity(value: float) -> float:
    return value


def _factor(spec: ChannelSpec, source: str, target: str) -> float:
    if source == target:
        return 1.0
    if (source, target) in _SCALE:
        return _SCALE[(source, target)]
    if spec.molar_mass is not None:
        # ppb -> ug/m3 and ppm -> mg/m3 share the factor M / Vm.
        mass_per_ratio = spec.molar_mass / MOLAR_VOLUME_25C
        ratio_to_ppb = {"ppb": 1.0, "ppm": 1e3}
        mass_from_ugm3 = {"ug/m3": 1.0, "mg/m3": 1e-3}
        if source in ratio_to_ppb and target in mass_from_ugm3:
            return ratio_to_ppb[source] * mass_per_ratio * mass_from_ugm3[target]
        if source in mass_from_ugm3 and target in ratio_to_ppb:
            return 1.0 / (ratio_to_ppb[target] * mass_per_ratio * mass_from_ugm3[source])
    raise UnitError(spec.name, source)
