"""The disk outbox keeps readings across restarts and never reuses a sequence number."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.outbox import Outbox


def test_readings_survive_reopen_and_leave_only_when_removed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path)
    seqs = [box.store(0.0, lambda s: b'{"seq":%d}' % s) for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    box.remove([1, 2])
    box.close()
    again = Outbox(path)
    assert [e.seq for e in again.peek(0, 10)] == [3, 4, 5]
    assert again.peek(3, 10)[0].payload == b'{"seq":4}'
    again.remove([3, 4, 5])
    assert again.depth() == 0
    # Drained, reopened: numbering continues.
    again.close()
    third = Outbox(path)
    assert third.store(0.0, lambda _seq: b"x") == 6
    third.close()


def test_a_failed_build_stores_nothing_and_consumes_no_number(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")

    def broken(_seq: int) -> bytes:
        raise ValueError("encoding failed")

    with pytest.raises(ValueError, match="encoding failed"):
        box.store(0.0, broken)
    assert box.depth() == 0
    assert box.store(0.0, lambda _seq: b"ok") == 1
    box.close()


def test_size_bound_evicts_the_oldest_and_counts_them(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=1000)
    for _ in range(25):
        box.store(0.0, lambda s: b"x" * 90 + b"%010d" % s)  # 100 bytes each
    stats = box.stats()
    assert stats.bytes <= 1000
    assert stats.depth == 10
    assert stats.evicted == 15
    assert [e.seq for e in box.peek(0, 100)] == list(range(16, 26))
    box.close()
    again = Outbox(tmp_path / "o.sqlite3", max_bytes=1000)
    assert again.stats().evicted == 15  # the counter is kept across restarts
    assert again.stats().bytes == 1000
    again.close()


def test_age_bound_evicts_what_is_too_old(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_age_s=100.0)
    for t in (0.0, 50.0, 120.0, 160.0):
        box.store(t, lambda _s: b"r")
    # At t=120 the reading of t=0 is too old, at t=160 the one of t=50.
    assert [e.seq for e in box.peek(0, 10)] == [3, 4]
    assert box.stats().evicted == 2
    box.close()


def test_the_newest_reading_is_never_evicted_by_its_own_insertion(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=10)
    box.store(0.0, lambda _s: b"y" * 50)
    box.store(0.0, lambda _s: b"z" * 50)
    assert [e.payload for e in box.peek(0, 10)] == [b"z" * 50]
    box.close()


def test_rejected_readings_are_kept_aside_and_counted(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    for _ in range(3):
        box.store(0.0, lambda s: b"%d" % s)
    assert box.reject([2, 99], "too_large", 5.0) == 1
    assert [e.seq for e in box.peek(0, 10)] == [1, 3]
    assert box.rejected() == [(2, "too_large", b"2")]
    stats = box.stats()
    assert (stats.depth, stats.rejected) == (2, 1)
    box.close()


def test_peek_before_bounds_the_backlog(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    for _ in range(6):
        box.store(0.0, lambda _s: b"r")
    assert [e.seq for e in box.peek(1, 10, before=5)] == [2, 3, 4]
    assert box.last_seq() == 6
    box.close()


def sized(size: int, _seq: int) -> bytes:
    return b"r" * size


@given(
    st.lists(st.tuples(st.integers(1, 400), st.floats(0, 50)), min_size=1, max_size=60),
    st.integers(100, 3000),
    st.floats(1, 500),
)
def test_bounds_always_hold_and_every_reading_is_accounted_for(
    items: list[tuple[int, float]], max_bytes: int, max_age: float
) -> None:
    box = Outbox(":memory:", max_bytes=max_bytes, max_age_s=max_age)
    now = 0.0
    for size, step in items:
        now += step
        box.store(now, functools.partial(sized, size))
        stats = box.stats()
        newest = box.peek(box.last_seq() - 1, 1)
        assert newest[0].seq == box.last_seq()  # the new reading is always kept
        if stats.depth > 1:
            assert stats.bytes <= max_bytes
            assert stats.oldest_created is not None
            assert stats.oldest_created >= now - max_age
        assert stats.depth == len(box.peek(0, 10_000))
        assert stats.bytes == sum(len(e.payload) for e in box.peek(0, 10_000))
    assert box.stats().depth + box.stats().evicted == len(items)
    box.close()
