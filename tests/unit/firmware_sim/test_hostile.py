"""The hostile traffic generator: its messages reach the ingest (topics a broker accepts and the
ingest's subscriptions match), and the ingest's decoders decide each of them without raising,
with the invariants of `tests/unit/ingest/test_hostile_payloads.py`. Driven by hypothesis'
`randoms()`, so a failing draw shrinks."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.hostile import HostileMessage, Pairs, Raw, dump, hostile_message
from ingest.validate import REASONS, Rejection, check_document
from tests.unit.ingest.test_hostile_payloads import check_invariants, storable_text

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)  # the decoders' clock in test_hostile_payloads
ROOT = "envpatrol"

messages = st.builds(
    hostile_message, st.randoms(use_true_random=False), st.just("car-1"), st.just(NOW)
)


def broker_accepts(topic: str) -> bool:
    """What Mosquitto 2.0 takes in a PUBLISH topic: no wildcard, no control character or
    non-character (it disconnects the client otherwise)."""
    return not any(
        c in "+#" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or (ord(c) & 0xFFFE) == 0xFFFE
        for c in topic
    )


@settings(max_examples=300)
@given(messages)
def test_every_message_reaches_the_ingest_and_is_decided(message: HostileMessage) -> None:
    root, version, _vehicle, kind = message.topic.split("/")
    assert (root, version, kind in ("readings", "status", "health")) == (ROOT, "v1", True)
    assert broker_accepts(message.topic)
    if kind == "readings":
        check_invariants(message.payload)
        return
    got = check_document(message.payload, orjson.loads, "car-1")
    if isinstance(got, Rejection):
        assert got.reason in REASONS, got
        assert got.reason != "undecodable", got
        assert storable_text(got.detail)


def test_a_seed_repeats_its_corpus() -> None:
    def corpus(seed: int) -> list[HostileMessage]:
        rng = random.Random(seed)
        return [hostile_message(rng, f"h-{i}", NOW) for i in range(200)]

    assert corpus(7) == corpus(7) != corpus(8)


def test_dump_writes_raw_tokens_and_repeated_keys_as_given() -> None:
    assert dump(Pairs((("a", 1), ("a", Raw("NaN"))))) == '{"a":1,"a":NaN}'
    assert dump({"é": ["x"]}, ascii_only=False) == '{"é":["x"]}'
