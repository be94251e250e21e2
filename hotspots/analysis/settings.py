"""Every parameter of the hotspot method, with its default and the reason for it.

Numbers come from docs/hotspots.md (which cites the mobile-monitoring literature). Settings are
built once by the caller and passed down; nothing here is read at import time or from the
environment. Invalid values raise `SettingsError` naming the field.
"""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from edge.errors import SettingsError
from edge.quality import STATS_EXCLUDED_FLAGS
from edge.units import converter
from hotspots.analysis.quantisation import effective_noise
from hotspots.floors import HOTSPOT_FLOORS

# Absolute floors of delta (the enhancement that counts as "above"). The store's table
# (hotspots.floors.HOTSPOT_FLOORS: PM2.5 10 ug/m3, NO2 10 ug/m3, noise 3 dB, ...) is 5-20 sensor
# sigma for most channels, so a source of 3-5 sigma could never count as above. The analysis
# therefore expresses delta against sensor noise alone (delta = delta_noise_factor x noise) and
# keeps no absolute floor by default; pass `floors=HOTSPOT_FLOORS` to restore the store's floors.
# The keys say which channels have hotspots.
DEFAULT_FLOORS: Mapping[str, float] = MappingProxyType(dict.fromkeys(HOTSPOT_FLOORS, 0.0))

# White-noise standard deviation of a single 10 s reading, per channel (canonical units): the
# box's default modules (firmware_sim.sensor.DEFAULT_SENSORS, the same figures). On a box with
# other modules, measure it: the spread of readings while the vehicle stands in clean air.
DEFAULT_SENSOR_NOISE: Mapping[str, float] = MappingProxyType(
    {
        "pm25": 2.0,
        "pm10": 3.0,
        "no2": 3.0,
        "noise": 1.0,
        "cooking_fume": 0.01,
        "odor": 0.2,
        "co": 0.03,
        "so2": 1.0,
        "o3": 3.0,
        "hcho": 1.0,
        "tvoc": 10.0,
        "co2": 5.0,
        "pollen": 2.0,
    }
)

# Register step of each channel in canonical units (hotspots.analysis.quantisation): the coarsest
# over the shipped box profiles (edge/profiles), so a default run is safe on any shipped box.
# default-multi reports gases in whole ppb (SO2: 2.62 ug/m3 a step), PM in whole ug/m3, CO in
# 0.01 ppm; gasboard-f32 sends floats. `quanta_of_profiles` gives the figures for a fleet's own
# profiles (a unit test keeps this table equal to it over the shipped ones).
DEFAULT_QUANTUM: Mapping[str, float] = MappingProxyType(
    {
        "pm25": 1.0,
        "pm10": 1.0,
        "no2": converter("no2", "ppb")(1.0),
        "o3": converter("o3", "ppb")(1.0),
        "so2": converter("so2", "ppb")(1.0),
        "co": converter("co", "ppm")(0.01),
        "hcho": converter("hcho", "ppb")(1.0),
        "tvoc": 1.0,
        "co2": 1.0,
        "noise": 0.1,
        "odor": 0.1,
        "cooking_fume": 0.01,
        "pollen": 1.0,
        "temperature": 0.1,
        "humidity": 0.1,
    }
)

# Response delay of each channel in seconds: the inlet's transport delay (2-3 s) plus the time
# constant of a first-order sensor, T90 / ln 10 (the mean delay of its step response), with the
# default modules' T90: optical PM 10 s, electrochemical NO2/CO 45 s, O3/SO2/HCHO 60 s, NDIR CO2
# 90 s, odor/TVOC 30 s, cooking fume 20 s. The T90 itself is not the delay: a shift of T90 moves
# a peak past the source (the earlier default of 40 s for NO2/CO put it ~100 m upstream).
# Estimate the real ones per box with hotspots.analysis.lag.
DEFAULT_LAGS_S: Mapping[str, float] = MappingProxyType(
    {
        "pm25": 6.0,
        "pm10": 6.0,
        "no2": 23.0,
        "o3": 29.0,
        "co": 23.0,
        "so2": 29.0,
        "hcho": 29.0,
        "co2": 42.0,
        "noise": 0.0,
        "tvoc": 16.0,
        "odor": 16.0,
        "cooking_fume": 12.0,
        "pollen": 6.0,
    }
)

# Reading-level flags (edge.wire.READING_FLAGS) that keep a reading out of the statistics.
# host_time is allowed: the time is the host clock, still good to 10 s buckets.
DEFAULT_EXCLUDED_FLAGS: tuple[str, ...] = STATS_EXCLUDED_FLAGS


@dataclass(frozen=True, slots=True)
class Stratum:
    """A time-of-day window in local time, [start, end) in minutes after midnight.

    A window with start > end wraps midnight (night: 22:00-06:00).
    """

    name: str
    start_min: int
    end_min: int
    more: tuple[tuple[int, int], ...] = ()  # further [start, end) windows of the same stratum

    def __post_init__(self) -> None:
        for bound in (self.start_min, self.end_min, *(b for w in self.more for b in w)):
            if not 0 <= bound <= 1440:
                raise SettingsError(f"strata.{self.name}", f"minute {bound} outside 0..1440")

    def windows(self) -> tuple[tuple[int, int], ...]:
        return ((self.start_min, self.end_min), *self.more)


DEFAULT_STRATA: tuple[Stratum, ...] = (
    Stratum("all_day", 0, 1440),
    # Meal times when cooking fume and odor sources run (hotspots.md, "Time of day"), both
    # windows together: a restaurant runs at lunch and at dinner, and a patrol at a random daytime
    # hour meets either window on only a fraction of its passes, so each window alone rarely
    # gathers the candidate's passes by 20; together they hold about twice as many.
    Stratum("meals", 10 * 60 + 30, 13 * 60 + 30, more=((16 * 60 + 30, 20 * 60),)),
    Stratum("lunch", 10 * 60 + 30, 13 * 60 + 30),
    Stratum("dinner", 16 * 60 + 30, 20 * 60),
    # GB 3096 night (22-06): the noise limits change, and night construction is a known source.
    Stratum("night", 22 * 60, 6 * 60),
)


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise SettingsError(name, f"must be a positive number, got {value}")


def _fraction(name: str, value: float, *, open_low: bool = True) -> None:
    low_ok = value > 0 if open_low else value >= 0
    if not (math.isfinite(value) and low_ok and value < 1):
        raise SettingsError(name, f"must be a fraction in (0, 1), got {value}")


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    """The hotspot method's parameters. See docs/hotspots.md for each reason.

    The H3 resolution of cells is not one of them: the analysis takes the cells it is given, at
    the resolution the database stores (store.analysis_meta); the ingest's `h3_resolution` sets
    it for a fresh database and `envpatrol rebuild` changes it.
    """

    # --- cells and passes
    pass_gap_s: float = 120.0  # a longer gap between qualifying readings ends a pass
    trip_gap_s: float = 1800.0  # a longer gap between a vehicle's passes ends a trip
    excluded_flags: tuple[str, ...] = DEFAULT_EXCLUDED_FLAGS
    stationary_speed_mps: float = 1.0  # speed under which a vehicle counts as stopped ...
    stationary_min_s: float = 60.0  # ... for longer than this: readings flagged stationary
    lags_s: Mapping[str, float] = field(default_factory=lambda: DEFAULT_LAGS_S)
    lag_max_gap_s: float = 20.0  # a lag-shifted value is interpolated across at most 2 polls
    # detect shifts each vehicle's pass values back by lags_s (the ingest stores passes of
    # uncorrected values); switch off when the passes were built from lag-corrected readings
    pass_lag: bool = True
    pass_lag_max_gap_s: float = 60.0  # ... interpolating between passes at most this far apart

    # --- background and enhancement
    background_quantile: float = 0.10  # rolling low percentile of a trip's values
    background_window_s: float = 1200.0  # centred window of the percentile (20 min)
    background_smooth_s: float = 600.0  # running median smoothing the percentile (10 min)
    background_step_s: float = 120.0  # the background is evaluated on this grid and interpolated

    # --- cell statistics
    floors: Mapping[str, float] = field(default_factory=lambda: DEFAULT_FLOORS)
    sensor_noise: Mapping[str, float] = field(default_factory=lambda: DEFAULT_SENSOR_NOISE)
    # register step per channel (canonical units), the coarsest over the fleet's box profiles
    quantum: Mapping[str, float] = field(default_factory=lambda: DEFAULT_QUANTUM)
    delta_noise_factor: float = 2.0  # delta = max(2 x noise with rounding, one step, floor)
    reference: str = "area_median"  # what E is compared with: "area_median" or "zero"
    bootstrap_resamples: int = 1000
    confidence: float = 0.95
    timezone: str = "Asia/Shanghai"  # local days and time-of-day strata
    strata: tuple[Stratum, ...] = DEFAULT_STRATA

    # --- eligibility and tests
    candidate_min_passes: int = 8
    stratum_min_passes: int = 6  # ... in a time stratum (meals, lunch, dinner, night)
    candidate_min_days: int = 2
    # a cell seen on fewer days than this must show its effect without its strongest day
    few_days: int = 4
    # passes of one cell on one day share a background error: the tests count a cell's passes
    # at their effective number, inflated by the design effect of the estimated correlation
    design_effect: bool = True
    # a cell's median within this many register steps of the area's is also tested against the
    # area's own distribution of excesses, which ties on the register grid
    lattice_steps: float = 2.0
    confirmed_min_passes: int = 20
    fdr_q: float = 0.05  # Benjamini-Hochberg false discovery rate, each test across cells
    fdr_across_strata: bool = True  # ... of all strata of a pollutant at once (False: per stratum)
    margin_factor: float = 0.1  # magnitude and share tests: excess above 0.1 x delta, not just 0
    share_quantile: float = 0.75  # share test: passes above the area's upper quartile
    magnitude_test: str = "median_z"  # "median_z" or "signed_rank", see significance.py
    # ... and the winsorised mean of the cell's excesses (Bonferroni over the two)
    mean_test: bool = True
    winsor_sigmas: float = 3.0
    exact_wilcoxon_max_n: int = 25  # exact signed-rank p-values up to this many passes
    spatial_band_m: float = 150.0  # Gi* / local Moran neighbourhood: cells within this band
    spatial_min_passes: int = 3  # cells with fewer passes stay out of the spatial tests
    spatial_permutations: int = 999
    seed: int = 20_240_601  # permutations and bootstrap are reproducible

    # --- hotspots
    cluster_rings: int = 2  # labelled cells this many H3 rings apart (or closer) are one hotspot

    # --- labels
    persistent_min_share: float = 0.5  # persistence f for a persistent hotspot
    episodic_max_share: float = 0.25  # f below this ...
    episodic_factor: float = 3.0  # ... but passes with E above 3 x delta ...
    episodic_min_spikes: int = 3  # ... at least this many of them: episodic
    # day-level episodes: days whose passes' median excess is above delta are 'on', below
    # episode_off_factor x delta 'off'; episodic needs this many on days and one off day
    episodic_min_days: int = 2
    episode_off_factor: float = 0.5

    # --- before/after
    before_after_min_passes: int = 5  # on each side of a treatment date

    def __post_init__(self) -> None:
        for name in (
            "pass_gap_s",
            "trip_gap_s",
            "stationary_min_s",
            "lag_max_gap_s",
            "pass_lag_max_gap_s",
            "background_window_s",
            "background_smooth_s",
            "background_step_s",
            "delta_noise_factor",
            "spatial_band_m",
            "episodic_factor",
            "lattice_steps",
            "winsor_sigmas",
        ):
            _positive(name, getattr(self, name))
        if not (math.isfinite(self.stationary_speed_mps) and self.stationary_speed_mps >= 0):
            raise SettingsError("stationary_speed_mps", "must be a number >= 0")
        _fraction("background_quantile", self.background_quantile)
        _fraction("confidence", self.confidence)
        _fraction("fdr_q", self.fdr_q)
        _fraction("persistent_min_share", self.persistent_min_share)
        _fraction("share_quantile", self.share_quantile)
        _fraction("episodic_max_share", self.episodic_max_share)
        _fraction("episode_off_factor", self.episode_off_factor)
        if not (math.isfinite(self.margin_factor) and self.margin_factor >= 0):
            raise SettingsError("margin_factor", f"must be a number >= 0, got {self.margin_factor}")
        if self.magnitude_test not in ("median_z", "signed_rank"):
            raise SettingsError(
                "magnitude_test", f"'median_z' or 'signed_rank', got {self.magnitude_test!r}"
            )
        if self.reference not in ("area_median", "zero"):
            raise SettingsError("reference", f"'area_median' or 'zero', got {self.reference!r}")
        for name in (
            "bootstrap_resamples",
            "candidate_min_passes",
            "stratum_min_passes",
            "candidate_min_days",
            "confirmed_min_passes",
            "spatial_min_passes",
            "episodic_min_spikes",
            "episodic_min_days",
            "few_days",
            "cluster_rings",
            "before_after_min_passes",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(name, f"must be at least 1, got {getattr(self, name)}")
        if self.spatial_permutations < 0 or self.exact_wilcoxon_max_n < 0:
            raise SettingsError("spatial_permutations", "must be >= 0")
        if self.confirmed_min_passes < self.candidate_min_passes:
            raise SettingsError("confirmed_min_passes", "must be >= candidate_min_passes")
        self._check_tables()

    def _check_tables(self) -> None:
        for mapping_name in ("floors", "sensor_noise", "quantum", "lags_s"):
            for channel, value in getattr(self, mapping_name).items():
                if not (math.isfinite(value) and value >= 0):
                    raise SettingsError(f"{mapping_name}.{channel}", f"must be >= 0, got {value}")
        if not self.strata or self.strata[0].name != "all_day":
            raise SettingsError("strata", "the first stratum must be all_day")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise SettingsError("timezone", f"unknown time zone {self.timezone!r}") from exc

    def noise_for(self, pollutant: str) -> float:
        """Noise of one reading with the register's rounding: sqrt(noise^2 + q^2 / 12)."""
        return effective_noise(
            self.sensor_noise.get(pollutant, 0.0), self.quantum.get(pollutant, 0.0)
        )

    def delta_for(self, pollutant: str) -> float:
        """The enhancement that counts as 'above': 2 x the noise with rounding, at least one
        register step and at least the floor."""
        floor = self.floors.get(pollutant, 0.0)
        step = self.quantum.get(pollutant, 0.0)
        delta = max(self.delta_noise_factor * self.noise_for(pollutant), step, floor)
        if delta <= 0:
            raise SettingsError("floors", f"no floor or sensor noise for {pollutant!r}")
        return delta

    def pollutants(self) -> tuple[str, ...]:
        """Channels that have hotspots: those with a floor."""
        return tuple(self.floors)
