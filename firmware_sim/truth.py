"""Ground truth of a simulated run, written beside it: gzip-compressed JSON lines.

Format `envpatrol-truth`, version 1 (documented in docs/scenarios.md). One JSON object per line:
- `{"type": "header", "format": "envpatrol-truth", "version": 1, "scenario": ..., "seed": ...,
  "start": ISO, "end": ISO, "timezone_h": 8, "vehicles": [...], "shifts": {vehicle: [{"on",
  "off", "route"}, ...]}}` first;
- one `{"type": "source", ...}` per source: name, kind, GeoJSON geometry, radius_m (an area
  source's radius, 0 for a point or line), amplitude, decay_m, schedule;
- one `{"type": "reading", ...}` per box answer: vehicle, request number, sim time, true
  position and speed, the GPS report at that second, the true field before the sensor model,
  the values the box served, active sources, faults applied, warm-up.

Matching a stored reading to its truth: same vehicle, and the served values equal the stored
values (the box's answer is what the agent decodes), nearest in time. Where the agent's box
client reports its discards (edge.box.Discard), `account` matches exactly instead: which answer
each reading was made from, which answers the agent read and discarded, which it never read.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge.box import Discard
from edge.errors import EnvpatrolError
from edge.modbus import crc_ok
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
        "radius_m": source.radius_m,
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


# ---------------------------------------------------------------------------------------------
# Accounting for every answer: which became readings, which the agent discarded


class AccountingError(EnvpatrolError, ValueError):
    """An agent's record that does not fit the bytes its box served: where, and what."""

    def __init__(self, after: int, problem: str) -> None:
        super().__init__(f"after accepted answer {after}", problem)
        self.after = after


@dataclass(frozen=True, slots=True)
class Accounting:
    """Where each answer the box served went, by its index in the order served."""

    taken: tuple[int, ...]  # the answers the agent accepted, in order: readings 1, 2, ...
    discarded: tuple[int, ...]  # answers whose bytes the agent read and discarded
    unread: tuple[int, ...]  # answers the agent had not (wholly) read when its record ended
    partial: int = 0  # bytes of the first unread answer it had read


def account(
    answers: Sequence[bytes],
    discards: Iterable[Discard],
    accepted: int,
    identity: bytes | None = None,
) -> Accounting:
    """Lay an agent's record over the bytes its box served, exactly.

    `answers` are the bytes of each answer in the order the box wrote them (Served.frame),
    `discards` what the agent's box client reported, `accepted` its successful polls. The client
    reads the line in order, so the discards with `after` 0, accepted answer 1, the discards
    with `after` 1, ... must be the served bytes from the start, each accepted answer the whole
    rest of one served answer; what follows was still on the line. Raises AccountingError at
    the first byte that does not fit. The line is one port session: bytes lost to a port
    closing or reopening do not fit.

    `identity` is the box's answer to the identity request, which is not among `answers`: the
    client asks again after a failed poll, and an identity answer that came too late is
    discarded whole between two answers (it counts as none of them).
    """
    groups: dict[int, list[bytes]] = {}
    for discard in discards:
        if not 0 <= discard.after <= accepted:
            raise AccountingError(
                discard.after, f"a discard, but only {accepted} answer(s) accepted"
            )
        groups.setdefault(discard.after, []).append(discard.data)
    taken: list[int] = []
    discarded: list[int] = []
    k = offset = 0
    for after in range(accepted + 1):
        data = b"".join(groups.get(after, ()))
        while data:
            if offset == 0 and identity and data.startswith(identity):
                data = data[len(identity) :]
                continue
            if k == len(answers):
                raise AccountingError(
                    after, f"{len(data)} byte(s) discarded beyond the {k} answer(s) served"
                )
            rest = answers[k][offset:]
            if data.startswith(rest):
                data = data[len(rest) :]
                discarded.append(k)
                k, offset = k + 1, 0
            elif rest.startswith(data):
                offset += len(data)
                data = b""
            else:
                raise AccountingError(
                    after,
                    f"discarded {data.hex()} where answer {k} from byte {offset} is {rest.hex()}",
                )
        if after == accepted:
            break
        if k == len(answers):
            raise AccountingError(after, f"an answer accepted beyond the {k} answer(s) served")
        rest = answers[k][offset:]
        if not crc_ok(rest):
            raise AccountingError(
                after, f"answer {k} from byte {offset} is no whole frame to accept: {rest.hex()}"
            )
        taken.append(k)
        k, offset = k + 1, 0
    return Accounting(tuple(taken), tuple(discarded), tuple(range(k, len(answers))), offset)
