"""The ingest workers of one shared subscription, as each of them sees the others.

Every worker of a `share_group` keeps a retained status on `{root}/ingest/{worker}/status`:
"online" once connected, "offline" when it stops or, through its last will, when the broker
loses it; "adopted" once another worker has drained its session and had the broker remove it.
Mosquitto keeps dealing a lost worker its share of the readings, into its session, until that
session ends (docs/reliability.md, "Ingest on several hosts"); the worker that adopts it
connects with its client id, stores what the session holds and removes it.

This module is the bookkeeping, without I/O: the status documents, and which surviving worker
adopts which lost one (`Workers.to_adopt`): the first online worker after it in name order,
going round, so that every worker reaches the same answer from the same statuses and a lost
worker is adopted by one survivor, not fought over by all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import orjson

__all__ = [
    "STATES",
    "WorkerState",
    "WorkerStatus",
    "Workers",
    "drain_topic",
    "parse_status",
    "status_topic",
    "workers_filter",
]

State = Literal["online", "offline", "adopted"]
STATES: tuple[State, ...] = ("online", "offline", "adopted")
SCHEMA_VERSION = 1
_LEVEL = "ingest"  # the workers' topic level, beside the vehicles' `v1`


def status_topic(root: str, worker: str) -> str:
    return f"{root}/{_LEVEL}/{worker}/status"


def drain_topic(root: str, worker: str) -> str:
    """Where an adopting worker sends itself a marker through the adopted session: it arrives
    after everything the session held."""
    return f"{root}/{_LEVEL}/{worker}/drain"


def workers_filter(root: str) -> str:
    return f"{root}/{_LEVEL}/+/status"


def worker_of(root: str, topic: str) -> str | None:
    """The worker a status topic is about; None for any other topic."""
    prefix = f"{root}/{_LEVEL}/"
    if not topic.startswith(prefix) or not topic.endswith("/status"):
        return None
    worker = topic[len(prefix) : -len("/status")]
    return worker if worker and "/" not in worker else None


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    worker: str
    state: State
    share_group: str
    by: str = ""  # "adopted": the worker that adopted it

    def encode(self) -> bytes:
        doc: dict[str, object] = {
            "schema_version": SCHEMA_VERSION,
            "worker": self.worker,
            "state": self.state,
            "share_group": self.share_group,
        }
        if self.by:
            doc["by"] = self.by
        return orjson.dumps(doc)


def parse_status(worker: str, payload: bytes) -> WorkerStatus | None:
    """The status `payload` of `worker` (from its topic), or None when it is not one: empty (a
    cleared retained message), not JSON, another schema, or about another worker."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        return None
    state, group, by = doc.get("state"), doc.get("share_group"), doc.get("by", "")
    if doc.get("worker") != worker or state not in STATES:
        return None
    if not isinstance(group, str) or not isinstance(by, str):
        return None
    return WorkerStatus(worker, state, group, by)


@dataclass(frozen=True, slots=True)
class WorkerState:
    state: State
    since: float  # when this worker's status was last seen to change (monotonic seconds)


class Workers:
    """The last status of every worker of `share_group`, as seen by worker `me`."""

    def __init__(self, me: str, share_group: str) -> None:
        self.me = me
        self.share_group = share_group
        self._known: dict[str, WorkerState] = {}

    def observe(self, status: WorkerStatus, now: float) -> None:
        """A status arrived; statuses of other groups are not this group's business."""
        if status.share_group != self.share_group or status.worker == self.me:
            return
        known = self._known.get(status.worker)
        if known is None or known.state != status.state:
            self._known[status.worker] = WorkerState(status.state, now)

    def postpone(self, worker: str, now: float) -> None:
        """An adoption of `worker` did not finish: its grace period starts again."""
        known = self._known.get(worker)
        if known is not None:
            self._known[worker] = WorkerState(known.state, now)

    def state(self, worker: str) -> WorkerState | None:
        return self._known.get(worker)

    def online(self) -> list[str]:
        """The workers online, this one included, in name order."""
        return sorted({w for w, s in self._known.items() if s.state == "online"} | {self.me})

    def adopter_of(self, worker: str) -> str:
        """The online worker that adopts `worker`: the first after it in name order, round."""
        online = self.online()
        return next((w for w in online if w > worker), online[0])

    def to_adopt(self, now: float, grace_s: float) -> list[str]:
        """The lost workers this one should adopt now: offline for `grace_s` at least (time to
        come back by itself, as a restarted service does), and this worker their adopter."""
        return sorted(
            w
            for w, s in self._known.items()
            if s.state == "offline" and now - s.since >= grace_s and self.adopter_of(w) == self.me
        )
