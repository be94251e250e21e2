"""One simulated patrol vehicle: its drive, its box and its GPS, sharing one clock and field."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from edge.profile import BoxProfile
from firmware_sim.box import Served, SimulatedBox
from firmware_sim.drive import Motion, SimClock, VehicleState
from firmware_sim.field import NOISE_SIGMA, PollutionField
from firmware_sim.gps import SimulatedGps


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """What the box served, where the vehicle truly was, and the field value before sensor noise."""

    vehicle: str
    served: Served
    state: VehicleState
    true_values: dict[str, float]


class SerialDevices:
    """A simulated vehicle's two serial devices, the box and the GPS receiver, as an agent sees
    them: two pseudo-terminal paths, started and stopped together."""

    box: SimulatedBox
    gps: SimulatedGps

    @property
    def box_path(self) -> str:
        return self.box.path

    @property
    def gps_path(self) -> str:
        return self.gps.path

    def start(self) -> None:
        self.box.start()
        self.gps.start()

    def stop(self) -> None:
        self.box.stop()
        self.gps.stop()


class SimVehicle(SerialDevices):
    def __init__(
        self,
        name: str,
        profile: BoxProfile,
        drive: Motion,
        clock: SimClock,
        field: PollutionField,
        *,
        seed: int = 0,
        noise: bool = True,
        on_truth: Callable[[TruthRecord], None] | None = None,
    ) -> None:
        self.name = name
        self.drive = drive
        self.clock = clock
        self.field = field
        self._rng = random.Random(seed)
        self._noise = noise
        self._on_truth = on_truth
        self._lock = threading.Lock()
        self._pending: tuple[VehicleState, dict[str, float]] | None = None
        self.box = SimulatedBox(profile, self._sample, self._served)
        self.gps = SimulatedGps(drive, clock)

    def _sample(self) -> tuple[datetime, dict[str, float | None]]:
        moment = self.clock.now()
        state = self.drive.state(moment)
        truth = self.field.true_values(state.lat, state.lon, moment)
        measured: dict[str, float | None] = {}
        for ch, value in truth.items():
            sigma = NOISE_SIGMA.get(ch, 0.0) if self._noise else 0.0
            measured[ch] = (
                max(0.0, value + self._rng.gauss(0.0, sigma)) if ch != "temperature" else value
            )
        with self._lock:
            self._pending = (state, truth)
        return moment, measured

    def _served(self, served: Served) -> None:
        with self._lock:
            pending = self._pending
        if pending is not None and self._on_truth is not None:
            self._on_truth(TruthRecord(self.name, served, pending[0], pending[1]))
