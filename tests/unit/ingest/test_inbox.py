"""The inbox between the MQTT network thread and the parsing thread: nothing lost, nothing
reordered, and a waiting consumer woken by a put."""

from __future__ import annotations

import threading
import time

from hypothesis import given
from hypothesis import strategies as st

from ingest.inbox import Inbox


@given(st.lists(st.integers(), max_size=200))
def test_first_in_first_out(items: list[int]) -> None:
    inbox: Inbox[int] = Inbox()
    for item in items:
        inbox.put(item)
    assert len(inbox) == len(items)
    out: list[int] = []
    while (taken := inbox.get_nowait()) is not None:
        out.append(taken)
    assert out == items
    assert inbox.get(timeout=0) is None


def test_get_waits_for_a_put() -> None:
    inbox: Inbox[str] = Inbox()
    threading.Timer(0.05, inbox.put, args=("late",)).start()
    started = time.monotonic()
    assert inbox.get(timeout=5) == "late"
    assert time.monotonic() - started < 4  # woken by the put, not by the timeout


def test_get_times_out_empty() -> None:
    inbox: Inbox[int] = Inbox()
    started = time.monotonic()
    assert inbox.get(timeout=0.05) is None
    assert time.monotonic() - started >= 0.05


def test_producers_and_a_consumer_lose_nothing() -> None:
    inbox: Inbox[tuple[int, int]] = Inbox()
    producers, per_producer = 4, 20_000

    def produce(p: int) -> None:
        for i in range(per_producer):
            inbox.put((p, i))

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    got: list[tuple[int, int]] = []
    deadline = time.monotonic() + 60
    while len(got) < producers * per_producer and time.monotonic() < deadline:
        item = inbox.get(timeout=1)
        if item is not None:
            got.append(item)
    for t in threads:
        t.join()
    assert len(got) == producers * per_producer
    for p in range(producers):  # each producer's items in its own order
        assert [i for q, i in got if q == p] == list(range(per_producer))


@given(
    st.lists(st.lists(st.integers(), max_size=20), max_size=20),
    st.lists(st.integers(0, 30), min_size=1, max_size=20),
    st.lists(st.integers(0, 5), min_size=1, max_size=20),
)
def test_lists_put_taken_and_given_back_keep_their_order(
    chunks: list[list[int]], limits: list[int], backs: list[int]
) -> None:
    """The network thread puts lists; the parsing thread takes a few at a time and may give
    the last ones it took back (a batch full of readings): the order is the order received."""
    inbox: Inbox[int] = Inbox()
    for chunk in chunks:
        inbox.put_many(chunk)
    expected = [item for chunk in chunks for item in chunk]
    out: list[int] = []
    i = 0
    while len(inbox):
        taken = inbox.take(limits[i % len(limits)] + 1)
        back = min(backs[i % len(backs)], len(taken) - 1)
        i += 1
        if back:
            inbox.give_back(taken[-back:])
            taken = taken[:-back]
        out += taken
    assert out == expected
    assert inbox.take(5) == []
