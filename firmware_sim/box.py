"""The simulated box: answers Modbus RTU read requests on a pseudo-terminal from a profile.

It reuses the edge's codec from the device's side. Every response it sends is reported to
`on_served` with the values it encodes and the bytes it writes, in the order written: the ground
truth the end-to-end tests compare the database, and the agent's discards, against.

A box whose profile names identity registers also answers them, with its own model, serial
number and firmware (`box_identity`: the serial derived from the vehicle's name unless given).
Identity answers carry no readings: they are not reported to `on_served`, and the fault plan
neither shapes them nor counts them, so a vehicle's faults fall on the same polls as before.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from edge.modbus import (
    ReadRequest,
    decode_request,
    encode_exception_response,
    encode_read_response,
)
from edge.profile import BoxIdentity, BoxProfile
from firmware_sim.faults import Action, FaultPlan
from firmware_sim.pty import PseudoTerminal

log = logging.getLogger("envpatrol.sim.box")

ILLEGAL_DATA_ADDRESS = 2

SIM_MODEL = "EP-SIM"
SIM_FIRMWARE = "2.1"


def box_identity(profile: BoxProfile, vehicle: str, serial: str | None = None) -> BoxIdentity:
    """The identity a vehicle's simulated box serves: `serial`, else one derived from the
    vehicle's name (the same name, the same box). ValueError when `serial` does not fit the
    profile's serial register."""
    identity_map = profile.identity
    serial_field = None if identity_map is None else identity_map.field("serial")
    model_field = None if identity_map is None else identity_map.field("model")
    digest = hashlib.sha256(vehicle.encode()).hexdigest()
    numeric = serial_field is not None and serial_field.type != "ascii"
    if serial is None:
        if numeric:
            assert serial_field is not None
            serial = str(int(digest, 16) % (10**9 if serial_field.type == "u32" else 60000))
        else:
            serial = f"EP{digest[:10].upper()}"
    model = "1" if model_field is not None and model_field.type != "ascii" else SIM_MODEL
    identity = BoxIdentity(model, serial, SIM_FIRMWARE)
    if identity_map is not None:
        identity_map.encode(identity)  # raises when a field does not fit
    return identity


@dataclass(frozen=True, slots=True)
class Served:
    """One response the box sent: when (simulated), the raw registers, the decoded values, and
    the bytes written for it (with any fault applied)."""

    time: datetime
    registers: tuple[int, ...]
    values: dict[str, float | None]
    fault: str = "ok"  # what the box did to this answer: ok, late, crc, garbage
    frame: bytes = b""


class SimulatedBox:
    def __init__(
        self,
        profile: BoxProfile,
        sample: Callable[[], tuple[datetime, dict[str, float | None]]],
        on_served: Callable[[Served], None] | None = None,
        *,
        faults: FaultPlan | None = None,
        powered: Callable[[], bool] | None = None,
        identity: BoxIdentity | None = None,
    ) -> None:
        self.profile = profile
        self.identity = identity or box_identity(profile, "")
        self.faults = faults
        self._powered = powered
        self.pty = PseudoTerminal()
        self._sample = sample
        self._on_served = on_served
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-box", daemon=True)
        self.requests = 0
        self.ignored_bytes = 0

    @property
    def path(self) -> str:
        return self.pty.path

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.pty.close()

    def respond(
        self, request_start: int, count: int, function: int, *, fault: Action = "ok"
    ) -> bytes:
        """The bytes for a request that is answered: the register block, or an exception when
        the request is not the profile's block, shaped by `fault` (corrupted, garbled)."""
        p = self.profile
        if function != p.function or request_start != p.start or count != p.count:
            return self._shape(
                fault, encode_exception_response(p.address, function, ILLEGAL_DATA_ADDRESS)
            )
        moment, values = self._sample()
        registers = tuple(p.encode(values))
        frame = self._shape(fault, encode_read_response(p.address, p.function, registers))
        if self._on_served is not None:
            self._on_served(Served(moment, registers, p.decode(registers).values, fault, frame))
        return frame

    def _shape(self, fault: Action, frame: bytes) -> bytes:
        return frame if self.faults is None else self.faults.shape(fault, frame)

    def identity_answer(self) -> bytes | None:
        """The bytes of the answer to the identity request; None for a profile without one."""
        request = self.profile.identity_request
        if request is None or self.profile.identity is None:
            return None
        registers = self.profile.identity.encode(self.identity)
        return encode_read_response(request.address, request.function, registers)

    def answer(self, request: ReadRequest) -> bytes:
        """The bytes the box sends for one request: nothing while powered off or when the
        fault plan drops it; otherwise the response, possibly late, corrupted or garbled."""
        if self._powered is not None and not self._powered():
            return b""
        if request == self.profile.identity_request:
            return self.identity_answer() or b""
        action = self.faults.next_action() if self.faults is not None else "ok"
        if action == "drop":
            return b""
        frame = self.respond(request.start, request.count, request.function, fault=action)
        if action == "late" and self.faults is not None:
            self._stop.wait(self.faults.spec.late_s)
        return frame

    def _run(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            data = self.pty.read(0.1)
            if not data:
                continue
            buffer += data
            while True:
                decoded = decode_request(buffer, self.profile.address)
                self.ignored_bytes += decoded.skipped
                buffer = buffer[decoded.consumed :]
                if decoded.frame is None:
                    break
                self.requests += 1
                reply = self.answer(decoded.frame)
                if reply:
                    self.pty.write(reply)
