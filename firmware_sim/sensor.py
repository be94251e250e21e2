"""What a box's module makes of the true field: lag, delay, noise, drift, quantisation, warm-up.

Pure apart from the seeded random generator it is given. Per channel:
- transport delay: the air reaching the cell was sampled `delay_s` earlier (inlet tubing);
- first-order lag: the cell approaches its input with time constant tau = T90 / ln 10
  (T90 is the time to reach 90 % of a step);
- drift: an offset growing linearly with time since power-on (sign drawn from the seed);
- white noise (1 sigma), then quantisation to the module's resolution;
- warm-up: for `warmup_s` after power-on the module reads low, rising to its settled response.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from firmware_sim.field import NOISE_SIGMA

LN10 = math.log(10.0)


@dataclass(frozen=True, slots=True)
class SensorSpec:
    t90_s: float = 0.0
    delay_s: float = 0.0
    noise: float = 0.0  # 1 sigma, canonical units
    drift_per_h: float = 0.0  # canonical units per hour since power-on
    quantum: float = 0.0  # resolution; 0 leaves the value unquantised
    warmup_s: float = 0.0
    floor: float | None = 0.0  # physical lower bound (None for temperature)

    def __post_init__(self) -> None:
        for name in ("t90_s", "delay_s", "noise", "quantum", "warmup_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


# Typical response of the modules of a patrol box (see the hotspot reference: optical PM about
# 10 s, electrochemical cells 30-90 s, NDIR CO2 60-120 s).
DEFAULT_SENSORS: dict[str, SensorSpec] = {
    "temperature": SensorSpec(t90_s=60, noise=NOISE_SIGMA["temperature"], quantum=0.1, floor=None),
    "humidity": SensorSpec(t90_s=30, noise=NOISE_SIGMA["humidity"], quantum=0.1),
    "noise": SensorSpec(t90_s=1, noise=NOISE_SIGMA["noise"], quantum=0.1),
    "pm25": SensorSpec(t90_s=10, delay_s=2, noise=NOISE_SIGMA["pm25"], quantum=1, warmup_s=30),
    "pm10": SensorSpec(t90_s=10, delay_s=2, noise=NOISE_SIGMA["pm10"], quantum=1, warmup_s=30),
    "co2": SensorSpec(t90_s=90, delay_s=3, noise=NOISE_SIGMA["co2"], quantum=1, warmup_s=180),
    "o3": SensorSpec(t90_s=60, delay_s=3, noise=NOISE_SIGMA["o3"], drift_per_h=0.5, warmup_s=600),
    "no2": SensorSpec(t90_s=45, delay_s=3, noise=NOISE_SIGMA["no2"], drift_per_h=0.5, warmup_s=600),
    "so2": SensorSpec(t90_s=60, delay_s=3, noise=NOISE_SIGMA["so2"], drift_per_h=0.2, warmup_s=600),
    "co": SensorSpec(t90_s=45, delay_s=3, noise=NOISE_SIGMA["co"], quantum=0.01, warmup_s=600),
    "hcho": SensorSpec(t90_s=60, delay_s=3, noise=NOISE_SIGMA["hcho"], quantum=1, warmup_s=600),
    "tvoc": SensorSpec(t90_s=30, delay_s=3, noise=NOISE_SIGMA["tvoc"], quantum=1, warmup_s=300),
    "odor": SensorSpec(t90_s=30, delay_s=3, noise=NOISE_SIGMA["odor"], quantum=0.1, warmup_s=300),
    "cooking_fume": SensorSpec(
        t90_s=20, delay_s=3, noise=NOISE_SIGMA["cooking_fume"], quantum=0.01, warmup_s=120
    ),
    "pollen": SensorSpec(t90_s=10, delay_s=2, noise=NOISE_SIGMA["pollen"], quantum=1),
}


def lag_step(state: float, target: float, dt: float, t90_s: float) -> float:
    """One step of a first-order lag: exact for a target held constant over `dt`."""
    if t90_s <= 0:
        return target
    return target + (state - target) * math.exp(-dt * LN10 / t90_s)


def quantise(value: float, quantum: float) -> float:
    if quantum <= 0:
        return value
    return round(round(value / quantum) * quantum, 10)


def warmup_factor(since_power_on_s: float, warmup_s: float) -> float:
    """1 when settled; during warm-up the response rises from 0.5 to 1."""
    if warmup_s <= 0 or since_power_on_s >= warmup_s:
        return 1.0
    return 0.5 + 0.5 * max(0.0, since_power_on_s) / warmup_s


@dataclass
class SensorArray:
    """The modules of one box, stepped through simulated time.

    `truth(t)` gives the true field values at simulated time t (seconds, any origin) where the
    vehicle's inlet was at that moment. `read(t)` integrates the lags from the previous reading
    to t in steps of at most `max_step_s` and returns the measured values.
    """

    specs: Mapping[str, SensorSpec]
    rng: random.Random
    power_on_s: float = 0.0
    max_step_s: float = 1.0
    _state: dict[str, float] = field(default_factory=dict, init=False)
    _last: float | None = field(default=None, init=False)
    drift_sign: dict[str, float] = field(default_factory=dict, init=False)  # per channel, +-1

    def __post_init__(self) -> None:
        self.drift_sign = {ch: self.rng.choice((-1.0, 1.0)) for ch in sorted(self.specs)}

    def warming_up(self, t: float, channels: Collection[str] | None = None) -> bool:
        """Any module (of `channels`, if given: those the box serves) still warming up."""
        return any(
            t - self.power_on_s < s.warmup_s
            for ch, s in self.specs.items()
            if channels is None or ch in channels
        )

    def read(self, t: float, truth: Callable[[float], Mapping[str, float]]) -> dict[str, float]:
        delays = sorted({s.delay_s for s in self.specs.values()})
        if self._last is None or t - self._last > 600 or t < self._last:
            inputs = {d: truth(t - d) for d in delays}
            self._state = {ch: inputs[s.delay_s][ch] for ch, s in self.specs.items()}
        else:
            steps = max(1, math.ceil((t - self._last) / self.max_step_s))
            dt = (t - self._last) / steps
            for k in range(1, steps + 1):
                tk = self._last + k * dt
                inputs = {d: truth(tk - d) for d in delays}
                for ch, spec in self.specs.items():
                    self._state[ch] = lag_step(
                        self._state[ch], inputs[spec.delay_s][ch], dt, spec.t90_s
                    )
        self._last = t
        since = t - self.power_on_s
        out: dict[str, float] = {}
        for ch, spec in self.specs.items():
            value = self._state[ch] * warmup_factor(since, spec.warmup_s)
            value += self.drift_sign[ch] * spec.drift_per_h * max(0.0, since) / 3600.0
            value += self.rng.gauss(0.0, spec.noise) if spec.noise else 0.0
            if spec.floor is not None:
                value = max(spec.floor, value)
            out[ch] = quantise(value, spec.quantum)
        return out
