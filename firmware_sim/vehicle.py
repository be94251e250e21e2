"""One simulated patrol vehicle: its drive, its box and its GPS, sharing one clock and field."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from edge.profile import BoxProfile
from firmware_sim.box import Served, SimulatedBox, box_identity
from firmware_sim.drive import Motion, SimClock, VehicleState
from firmware_sim.field import NOISE_SIGMA, PollutionField
from firmware_sim.gps import SimulatedGps
from firmware_sim.sensor import DEFAULT_SENSORS, SensorArray

# The box was switched on this long before the vehicle's first reading: its modules are warm.
SETTLED_S = 600.0


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """What the box served, where the vehicle truly was, and the field value before the sensors."""

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
        box_serial: str | None = None,
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
        # the default modules' delay, lag, noise, drift and quantisation (firmware_sim.sensor)
        self._sensors = SensorArray(
            DEFAULT_SENSORS, random.Random(f"sensors:{seed}"), clock.now().timestamp() - SETTLED_S
        )
        # The box's serial follows the vehicle's name unless given: the same vehicle started
        # again is the same box, another vehicle's box is another.
        self.box = SimulatedBox(
            profile,
            self._sample,
            self._served,
            identity=box_identity(profile, name, box_serial),
        )
        self.gps = SimulatedGps(drive, clock)

    def _sample(self) -> tuple[datetime, dict[str, float | None]]:
        moment = self.clock.now()
        state = self.drive.state(moment)
        truth = self.field.true_values(state.lat, state.lon, moment)
        measured: dict[str, float | None] = dict(truth)
        if self._noise:
            # what the modules report now: the field along the recent track through each
            # module's delay and lag (the inlet breathes where the vehicle was)
            sensed = self._sensors.read(moment.timestamp(), self._truth_at)
            for ch, value in truth.items():
                measured[ch] = sensed.get(ch)
                if measured[ch] is None:  # a channel without a module model: noise only
                    sigma = NOISE_SIGMA.get(ch, 0.0)
                    measured[ch] = max(0.0, value + self._rng.gauss(0.0, sigma))
        with self._lock:
            self._pending = (state, truth)
        return moment, measured

    def _truth_at(self, ts: float) -> dict[str, float]:
        moment = datetime.fromtimestamp(ts, UTC)
        state = self.drive.state(moment)
        return dict(self.field.true_values(state.lat, state.lon, moment))

    def _served(self, served: Served) -> None:
        with self._lock:
            pending = self._pending
        if pending is not None and self._on_truth is not None:
            self._on_truth(TruthRecord(self.name, served, pending[0], pending[1]))
