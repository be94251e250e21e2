"""The publisher's pure parts: fitting readings into a message, and the reconnect backoff."""

from __future__ import annotations

import json
import random

from hypothesis import given
from hypothesis import strategies as st

from edge.mqtt import MqttSettings
from edge.outbox import Entry, Outbox
from edge.publisher import Publisher, backoff_delay, batch_head, batch_payload, fit_batch
from edge.wire import decode_message


def entry(seq: int, size: int) -> Entry:
    pad = "x" * max(0, size - 40)
    return Entry(seq, json.dumps({"seq": seq, "pad": pad}).encode())


@given(st.lists(st.integers(1, 3000), min_size=1, max_size=60), st.integers(200, 20000))
def test_a_fitted_batch_never_exceeds_the_limit_and_is_as_long_as_possible(
    sizes: list[int], limit: int
) -> None:
    entries = [entry(i + 1, n) for i, n in enumerate(sizes)]
    head = len(batch_head("v-1"))
    count = fit_batch(head, entries, limit)
    if count:
        assert len(batch_payload("v-1", entries[:count])) <= limit
    if count < len(entries):
        assert len(batch_payload("v-1", entries[: count + 1])) > limit


def test_a_batch_is_valid_json_in_the_wire_shape() -> None:
    payload = batch_payload("v-1", [Entry(1, b'{"a":1}'), Entry(2, b'{"a":2}')])
    doc = json.loads(payload)
    assert doc == {"schema_version": 1, "vehicle": "v-1", "readings": [{"a": 1}, {"a": 2}]}


def test_real_readings_round_trip() -> None:
    reading = (
        b'{"seq":1,"time":"2026-11-21T08:00:00.000Z","time_source":"host","position":null,'
        b'"values":{"pm25":30.0},"units":{"pm25":"ug/m3"},"flags":["no_fix","host_time"],'
        b'"channel_flags":{"pm25":["warmup","spike"]},"profile":"default-multi"}'
    )
    vehicle, readings = decode_message(batch_payload("v-1", [Entry(1, reading)]))
    assert vehicle == "v-1"
    assert readings[0].channel_flags == {"pm25": ("warmup", "spike")}


@given(st.integers(0, 100), st.floats(0.1, 10), st.floats(10, 600), st.integers(0, 2**32))
def test_backoff_is_capped_and_jittered_within_half(
    attempt: int, low: float, high: float, seed: int
) -> None:
    delay = backoff_delay(attempt, low, high, random.Random(seed))
    cap = min(high, low * 2**attempt)
    assert cap / 2 <= delay <= cap
    assert delay <= high


def test_backoff_grows_then_stays_at_the_cap() -> None:
    rng = random.Random(1)
    caps = [backoff_delay(n, 1.0, 60.0, rng) for n in range(12)]
    assert caps[0] <= 1.0
    assert 4.0 <= caps[3] <= 8.0
    assert all(30.0 <= c <= 60.0 for c in caps[6:])


def test_catch_up_alternates_live_and_backlog_oldest_first() -> None:
    outbox = Outbox(":memory:")
    for _ in range(7):  # the backlog of an outage
        outbox.store(0.0, lambda s: b'{"seq":%d}' % s)
    publisher = Publisher(
        MqttSettings(), "v-1", outbox, lambda state: {"state": state}, max_batch=3
    )  # never connected: only the choice of the next batch is exercised
    publisher._start_catch_up()
    for _ in range(4):  # live readings arriving during the drain
        outbox.store(0.0, lambda s: b'{"seq":%d}' % s)

    order = []
    while batch := publisher._next_batch():
        seqs = [e.seq for e in batch]
        order.append(seqs)
        publisher._inflight[len(order)] = seqs
        publisher._advance(seqs[0] > publisher._boundary, seqs[-1])
    assert order == [[8, 9, 10], [1, 2, 3], [11], [4, 5, 6], [7]]
    outbox.close()
