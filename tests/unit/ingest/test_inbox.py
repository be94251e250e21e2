"""The inbox between the MQTT network thread and the parsing thread: nothing lost, nothing
reordered, and a waiting consumer woken by a put; bounded in bytes, QoS 0 dropped oldest first
and counted, QoS 1 never."""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

import pytest
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


# -- the bound in bytes ------------------------------------------------------------------------


class Message(NamedTuple):
    """An item with a size and a QoS, numbered in the order put."""

    number: int
    qos: int
    size: int


def bounded(max_bytes: int, drops: list[int] | None = None) -> Inbox[Message]:
    return Inbox(
        max_bytes,
        size=lambda m: m.size,
        droppable=lambda m: m.qos == 0,
        on_drop=None if drops is None else drops.append,
    )


class Model:
    """The bound as plainly as it can be said: append; while over the bound, remove the oldest
    QoS 0 message."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.items, self.dropped = max_bytes, list[Message](), list[Message]()

    def put_many(self, items: list[Message]) -> None:
        self.items += items
        while sum(m.size for m in self.items) > self.max_bytes:
            oldest = next((m for m in self.items if m.qos == 0), None)
            if oldest is None:
                break
            self.items.remove(oldest)
            self.dropped.append(oldest)

    def take(self, limit: int) -> list[Message]:
        taken, self.items = self.items[:limit], self.items[limit:]
        return taken


# One step: a put of messages given as (QoS, size), or a take of up to n.
PUT = st.lists(st.tuples(st.sampled_from([0, 1]), st.integers(1, 400)), min_size=1, max_size=8)
STEPS = st.lists(st.one_of(PUT, st.integers(1, 20)), max_size=60)


@given(max_bytes=st.integers(1, 2_000), steps=STEPS)
def test_bound_drops_the_oldest_qos0_and_never_qos1(
    max_bytes: int, steps: list[list[tuple[int, int]] | int]
) -> None:
    """Against the model: the same messages come out in the same order and the same are
    dropped; QoS 1 never is. A producer that puts only while the inbox is not full keeps it
    within the bound plus its last put; the drops are counted, each put's at once."""
    drops: list[int] = []
    inbox, model = bounded(max_bytes, drops), Model(max_bytes)
    number, out, expected = 0, list[Message](), list[Message]()
    put: list[Message] = []
    for step in steps:
        if isinstance(step, int):
            out += inbox.take(step)
            expected += model.take(step)
            continue
        if inbox.full():
            assert not inbox.wait_for_room(0)
            continue  # holding: the producer reads nothing
        put = [Message(number + i, qos, size) for i, (qos, size) in enumerate(step)]
        number += len(put)
        inbox.put_many(put)
        model.put_many(put)
        assert inbox.bytes <= max_bytes + sum(m.size for m in put)
        assert inbox.bytes == sum(m.size for m in model.items)
        assert inbox.full() == (inbox.bytes > max_bytes)
    out += inbox.take(10_000)
    expected += model.take(10_000)
    assert out == expected
    assert all(m.qos == 0 for m in model.dropped)
    assert inbox.dropped == sum(drops) == len(model.dropped) == number - len(out)
    assert inbox.bytes == 0
    assert len(inbox) == 0


@given(
    max_bytes=st.integers(100, 5_000),
    sizes=st.lists(st.tuples(st.sampled_from([0, 1]), st.integers(1, 300)), max_size=300),
)
def test_a_message_at_a_time_stays_within_the_bound_plus_one(
    max_bytes: int, sizes: list[tuple[int, int]]
) -> None:
    """One message per put and nothing taken (the database is down): the inbox holds at most
    the bound plus one message, and all the QoS 1 messages put until it was full."""
    inbox = bounded(max_bytes)
    put: list[Message] = []
    for number, (qos, size) in enumerate(sizes):
        if inbox.full():
            break
        inbox.put(Message(number, qos, size))
        put.append(Message(number, qos, size))
        assert inbox.bytes <= max_bytes + size
    kept = inbox.take(len(put))
    assert [m for m in put if m.qos == 1] == [m for m in kept if m.qos == 1]
    qos0 = [m for m in put if m.qos == 0]
    # what is left of the QoS 0 messages is their newest part
    assert [m for m in kept if m.qos == 0] == qos0[inbox.dropped :]


@given(
    max_bytes=st.integers(1, 500),
    first=st.lists(st.tuples(st.sampled_from([0, 1]), st.integers(1, 100)), max_size=30),
    back=st.integers(0, 30),
)
def test_given_back_messages_come_first_and_count(
    max_bytes: int, first: list[tuple[int, int]], back: int
) -> None:
    inbox = bounded(max_bytes)
    inbox.put_many([Message(n, qos, size) for n, (qos, size) in enumerate(first)])
    taken = inbox.take(len(first))
    rest = inbox.take(10_000)
    inbox.put_many(rest)
    given = taken[len(taken) - min(back, len(taken)) :]
    inbox.give_back(given)
    assert inbox.bytes == sum(m.size for m in given + rest)
    assert inbox.full() == (inbox.bytes > max_bytes)
    assert inbox.take(10_000) == given + rest


def test_unbounded_never_drops() -> None:
    inbox = Inbox[Message](0, size=lambda m: m.size, droppable=lambda _m: True)
    inbox.put_many([Message(n, 0, 10**6) for n in range(100)])
    assert not inbox.full()
    assert inbox.wait_for_room(0)
    assert len(inbox.take(1000)) == 100
    assert inbox.dropped == 0


def test_a_waiting_producer_is_woken_when_the_consumer_makes_room() -> None:
    inbox = bounded(100)
    inbox.put_many([Message(0, 1, 80), Message(1, 1, 80)])
    assert inbox.full()
    assert not inbox.wait_for_room(0.01)
    threading.Timer(0.05, inbox.take, args=(1,)).start()
    started = time.monotonic()
    assert inbox.wait_for_room(10)
    assert time.monotonic() - started < 9  # woken by the take, not by the timeout
    assert not inbox.full()


def test_qos0_alone_never_fills_the_inbox() -> None:
    """Health messages while nothing is taken: the newest stay, the rest are dropped and
    counted, and the producer never has to stop reading."""
    drops: list[int] = []
    inbox = bounded(10_000, drops)
    for n in range(1_000):
        inbox.put(Message(n, 0, 1_000))
        assert not inbox.full()
    assert [m.number for m in inbox.take(100)] == list(range(990, 1_000))
    assert inbox.dropped == sum(drops) == 990


def test_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        Inbox[int](-1)


@given(
    max_bytes=st.integers(1, 2_000),
    steps=st.lists(st.one_of(PUT, st.integers(1, 20), st.just("release")), max_size=60),
)
def test_until_released_taken_messages_count_until_released(
    max_bytes: int, steps: list[list[tuple[int, int]] | int | str]
) -> None:
    """The bound over the inbox and what its consumer still holds (a batch not yet committed):
    the producer, putting only while not full, keeps both together within the bound plus its
    last put; only messages still waiting are dropped, oldest QoS 0 first; QoS 1 never is."""
    inbox = Inbox[Message](
        max_bytes, size=lambda m: m.size, droppable=lambda m: m.qos == 0, until_released=True
    )
    number, held, out = 0, list[Message](), list[Message]()
    put_qos1: list[Message] = []
    for step in steps:
        if step == "release":
            inbox.release(held)
            held = []
        elif isinstance(step, int):
            taken = inbox.take(step)
            held += taken
            out += taken
        elif isinstance(step, list) and not inbox.full():
            put = [Message(number + i, qos, size) for i, (qos, size) in enumerate(step)]
            number += len(put)
            put_qos1 += [m for m in put if m.qos == 1]
            inbox.put_many(put)
            assert inbox.bytes <= max_bytes + sum(m.size for m in put)
        waiting = inbox.bytes - sum(m.size for m in held)
        assert waiting >= 0
        assert waiting == 0 or len(inbox)
    last = inbox.take(10_000)
    out += last
    assert [m for m in out if m.qos == 1] == put_qos1
    assert [m.number for m in out] == sorted(m.number for m in out)
    assert inbox.dropped == number - len(out)
    inbox.release(held + last)
    assert inbox.bytes == 0


def test_a_producer_waits_for_the_release_of_what_was_taken() -> None:
    inbox = Inbox[Message](100, size=lambda m: m.size, until_released=True)
    inbox.put_many([Message(0, 1, 80), Message(1, 1, 80)])
    batch = inbox.take(10)
    assert inbox.full()  # taken, not yet released
    threading.Timer(0.05, inbox.release, args=(batch,)).start()
    assert inbox.wait_for_room(10)
    assert inbox.bytes == 0
