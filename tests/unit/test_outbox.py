"""The disk outbox keeps readings across restarts and never reuses a sequence number."""

from __future__ import annotations

from pathlib import Path

import pytest

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
