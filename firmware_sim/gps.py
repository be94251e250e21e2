"""The simulated GPS receiver: RMC and GGA once per simulated second on a pseudo-terminal."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from edge.nmea import format_gga, format_rmc
from firmware_sim.drive import Motion, SimClock, VehicleState
from firmware_sim.gps_model import GpsObservation
from firmware_sim.pty import PseudoTerminal

Observe = Callable[[datetime, VehicleState], GpsObservation | None]


class SimulatedGps:
    def __init__(
        self,
        drive: Motion,
        clock: SimClock,
        talker: str = "GN",
        on_epoch: Callable[[datetime], None] | None = None,
        *,
        observe: Observe | None = None,
    ) -> None:
        # `observe` turns the true state into what the receiver reports (error model, dropouts);
        # returning None means the receiver is powered off and sends nothing.
        self._observe = observe
        self.drive = drive
        self.clock = clock
        self.talker = talker
        self.pty = PseudoTerminal()
        self._on_epoch = on_epoch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-gps", daemon=True)
        self.epochs = 0

    @property
    def path(self) -> str:
        return self.pty.path

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.pty.close()

    def sentences(self, moment: datetime) -> bytes:
        state = self.drive.state(moment)
        if self._observe is not None:
            seen = self._observe(moment, state)
            if seen is None:
                return b""
            if not seen.valid:
                return (
                    format_gga(
                        moment,
                        None,
                        None,
                        quality=0,
                        satellites=seen.satellites,
                        hdop=seen.hdop,
                        talker=self.talker,
                    )
                    + format_rmc(moment, None, None, valid=False, talker=self.talker)
                ).encode("ascii")
            rmc = format_rmc(
                moment,
                seen.lat,
                seen.lon,
                speed_mps=state.speed_mps,
                course_deg=state.heading_deg,
                talker=self.talker,
            )
            gga = format_gga(
                moment,
                seen.lat,
                seen.lon,
                quality=seen.quality,
                satellites=seen.satellites,
                hdop=seen.hdop,
                talker=self.talker,
            )
            return (gga + rmc).encode("ascii")
        rmc = format_rmc(
            moment,
            state.lat,
            state.lon,
            speed_mps=state.speed_mps,
            course_deg=state.heading_deg,
            talker=self.talker,
        )
        gga = format_gga(moment, state.lat, state.lon, talker=self.talker)
        return (gga + rmc).encode("ascii")

    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            now = self.clock.now().replace(microsecond=0)
            if now != last:
                data = self.sentences(now)
                if data:
                    self.pty.write(data, timeout=0.05)
                self.epochs += 1
                last = now
                if self._on_epoch is not None:
                    self._on_epoch(now)
            wait = min(1.0 / self.clock.speed, 0.2)
            self._stop.wait(wait)
