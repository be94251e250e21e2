"""MQTT topics of the v1 contract: `{root}/v1/{vehicle}/{kind}`."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from edge.errors import EnvpatrolError

CONTRACT = "v1"
TopicKind = Literal["readings", "status", "health"]
KINDS: tuple[TopicKind, ...] = ("readings", "status", "health")
# Anchored with \A and \Z: `$` also matches before a trailing newline.
_VEHICLE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_ROOT = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,63})*\Z")


class TopicError(EnvpatrolError, ValueError):
    """A topic, topic root or vehicle id outside the contract; `subject` quotes it."""

    def __init__(self, value: str, problem: str) -> None:
        # Quoted: an empty id or one with spaces must still show in the message.
        super().__init__(repr(value), problem)


@functools.lru_cache(maxsize=16384)  # a fleet's ids, checked once each; failures never cached
def check_vehicle(vehicle: str) -> str:
    """A vehicle id is one topic level: letters, digits, '_', '-', '.'; at most 64 characters."""
    if not _VEHICLE.match(vehicle):
        raise TopicError(vehicle, "a vehicle id must be 1-64 letters, digits, '_', '-' or '.'")
    return vehicle


def check_root(root: str) -> str:
    if not _ROOT.match(root):
        raise TopicError(root, "a topic root must be plain topic levels without wildcards")
    return root


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics one deployment uses, under a root (default `envpatrol`)."""

    root: str = "envpatrol"

    def __post_init__(self) -> None:
        check_root(self.root)

    def of(self, vehicle: str, kind: TopicKind) -> str:
        return f"{self.root}/{CONTRACT}/{check_vehicle(vehicle)}/{kind}"

    def all_of(self, kind: TopicKind) -> str:
        """The subscription filter for one kind from every vehicle."""
        return f"{self.root}/{CONTRACT}/+/{kind}"

    def parse(self, topic: str) -> tuple[str, TopicKind]:
        """(vehicle, kind) of a topic of this contract; raises TopicError for any other."""
        return _parse(self.root, topic)


@functools.lru_cache(maxsize=16384)  # an ingest sees each vehicle's few topics again and again
def _parse(root: str, topic: str) -> tuple[str, TopicKind]:
    prefix = f"{root}/{CONTRACT}/"
    if not topic.startswith(prefix):
        raise TopicError(topic, f"not under {prefix}")
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 2 or parts[1] not in KINDS:
        raise TopicError(topic, "expected {vehicle}/readings|status|health")
    vehicle = check_vehicle(parts[0])
    kind: TopicKind = parts[1]  # type: ignore[assignment]
    return vehicle, kind
