"""A small gpsd client: fixes from gpsd's JSON protocol (TCP, port 2947 by default).

The client sends `?WATCH={"enable":true,"json":true}` and reads newline-delimited JSON objects.
TPV objects carry time, position, speed and course with a `mode` (1 no fix, 2 2D, 3 3D); SKY
objects carry HDOP and the satellites in view with a `used` mark. `GpsdDecoder` is pure (lines
in, fixes out) and counts what it could not use; `GpsdClient` is the socket and the thread, and
shares the fix filter and counters of the NMEA receiver (edge.gps.FixKeeper).
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from edge.gps import FixKeeper
from edge.nmea import Fix
from edge.quality import FixFilter

log = logging.getLogger("envpatrol.edge.gpsd")

WATCH = b'?WATCH={"enable":true,"json":true};\n'
MAX_LINE = 65536  # gpsd's own limit on a report is well under this

# gpsd TPV `status` to the NMEA GGA fix quality the rest of the agent speaks.
_QUALITY = {2: 2, 3: 4, 4: 5, 5: 6, 6: 6}


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class GpsdDecoder:
    """Turns gpsd report lines into fixes, remembering the newest SKY for HDOP and satellites."""

    def __init__(self) -> None:
        self.hdop: float | None = None
        self.satellites: int | None = None
        self.reports = 0
        self.bad_lines = 0

    def line(self, raw: bytes) -> Fix | None:
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            self.bad_lines += 1
            return None
        if not isinstance(doc, dict):
            self.bad_lines += 1
            return None
        self.reports += 1
        kind = doc.get("class")
        if kind == "SKY":
            self._sky(doc)
            return None
        if kind == "TPV":
            return self._tpv(doc)
        return None

    def _sky(self, doc: dict[str, Any]) -> None:
        hdop = _finite(doc.get("hdop"))
        if hdop is not None:
            self.hdop = hdop
        used = doc.get("uSat")
        if isinstance(used, int) and not isinstance(used, bool):
            self.satellites = used
        elif isinstance(doc.get("satellites"), list):
            self.satellites = sum(
                1 for s in doc["satellites"] if isinstance(s, dict) and s.get("used") is True
            )

    def _tpv(self, doc: dict[str, Any]) -> Fix | None:
        mode = doc.get("mode")
        if not isinstance(mode, int) or isinstance(mode, bool):
            self.bad_lines += 1
            return None
        lat, lon = _finite(doc.get("lat")), _finite(doc.get("lon"))
        moment: datetime | None = None
        stamp = doc.get("time")
        if isinstance(stamp, str):
            try:
                moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
            except ValueError:
                self.bad_lines += 1
                return None
        on_earth = lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180
        valid = mode >= 2 and on_earth
        status = doc.get("status")
        quality = 0 if not valid else _QUALITY.get(status, 1) if isinstance(status, int) else 1
        return Fix(
            time=moment,
            lat=lat if on_earth and lat is not None else 0.0,
            lon=lon if on_earth and lon is not None else 0.0,
            valid=valid,
            quality=quality,
            satellites=self.satellites,
            hdop=self.hdop,
            altitude_m=_finite(doc.get("altMSL", doc.get("alt"))),
            speed_mps=_finite(doc.get("speed")),
            course_deg=_finite(doc.get("track")),
            talker="gpsd",
        )


class GpsdClient(FixKeeper):
    """Connects to gpsd, watches its reports in a thread, reconnects with backoff."""

    def __init__(
        self,
        address: str,
        limits: FixFilter | None = None,
        clock: Callable[[], float] = time.monotonic,
        incomplete: str = "reject",
    ) -> None:
        super().__init__(limits, clock, incomplete=incomplete)
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.decoder = GpsdDecoder()
        self.reconnects = 0
        self.overlong_lines = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpsd-client", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with socket.create_connection((self.host, self.port), timeout=2.0) as sock:
                    sock.settimeout(0.5)
                    sock.sendall(WATCH)
                    self.reconnects += 1
                    backoff = 0.5
                    self._read(sock)
            except OSError as exc:
                self.last_error = f"gpsd {self.host}:{self.port}: {exc}"
                log.warning("%s; retrying in %.1fs", self.last_error, backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)

    def _read(self, sock: socket.socket) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            if not data:
                raise ConnectionError("gpsd closed the connection")
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            if len(buffer) > MAX_LINE:
                self.overlong_lines += 1
                buffer = b""
            for raw in lines:
                if raw.strip():
                    fix = self.decoder.line(raw)
                    if fix is not None:
                        self.offer(fix)

    def counters(self) -> dict[str, Any]:
        return {
            "source": "gpsd",
            "reports": self.decoder.reports,
            "bad_sentences": self.decoder.bad_lines + self.overlong_lines,
            "reopens": self.reconnects,
            "fixes": self.fixes,
            "filtered": dict(self.filtered),
        }
