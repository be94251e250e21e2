"""Ground truth of a simulated run, written beside it: gzip-compressed JSON lines.

Format `envpatrol-truth`, version 1 (documented in docs/scenarios.md). One JSON object per line:
- `{"type": "header", "format": "envpatrol-truth", "version": 1, "scenario": ..., "seed": ...,
  "start": ISO, "end": ISO, "timezone_h": 8}` first;
- one `{"type": "source", ...}` per source: name, kind, GeoJSON geometry, amplitude, decay_m,
  schedule;
- one `{"type": "reading", ...}` per box answer: vehicle, request number, sim time, true
  position and speed, the GPS report at that second, the true field before the sensor model,
  the values the box served, active sources, faults applied, warm-up.

Matching a stored reading to its truth: same vehicle, and the served values equal the stored
values (the box's answer is what the agent decodes), nearest in time.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from firmware_sim.field import Source

TRUTH_FORMAT = "envpatrol-truth"
TRUTH_VERSION = 1


def source_record(source: Source) -> dict[str, Any]:
    if source.end is None:
        geometry: dict[str, Any] = {"type": "Point", "coordinates": [source.lon, source.lat]}
    else:
        geometry = {
            "type": "LineString",
            "coordinates": [[source.lon, source.lat], [source.end[1], source.end[0]]],
        }
    return {
        "type": "source",
        "name": source.name,
        "kind": source.kind,
        "geometry": geometry,
        "amplitude": source.amplitude,
        "decay_m": source.decay_m,
        "schedule": asdict(source.schedule),
    }


class TruthWriter:
    """Appends truth records; thread-safe (every vehicle's box thread writes here)."""

    def __init__(self, path: str | Path, header: dict[str, Any], sources: list[Source]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = gzip.open(self.path, "wt", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._lock = threading.Lock()
        self.records = 0
        self._write({"type": "header", "format": TRUTH_FORMAT, "version": TRUTH_VERSION, **header})
        for source in sources:
            self._write(source_record(source))

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")

    def write(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._write(record)
            self.records += 1

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_truth(path: str | Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
