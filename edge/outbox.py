"""The vehicle's disk outbox: every reading is durable here before it is published.

SQLite in WAL mode with synchronous=FULL: `store` returns only once the reading would survive a
power cut. A reading leaves the outbox only when the broker has acknowledged the message that
carried it. The sequence number is the table's key and is never reused, even after the outbox
drains, because the highest one handed out is kept in a separate row.

Bounds and eviction (docs/edge.md): the outbox holds at most `max_bytes` of encoded readings and
nothing older than `max_age_s`. When a new reading would break either bound, the oldest readings
are deleted first until both hold again; each one is counted in the persistent `evicted`
counter, which status and health report. The newest readings are kept because a vehicle that has
been offline for weeks is better served by its recent patrols than by a hole at the end.

A reading that can never be delivered (larger than any message the broker takes) is moved to the
`rejected` table with the reason: kept for an operator, counted, and out of the queue's way.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    rejected_at REAL NOT NULL,
    reason TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counter (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counter (name, value) VALUES ('last_seq', 0), ('evicted', 0);
"""

UNBOUNDED = 2**62


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    payload: bytes  # one reading as its JSON object (see edge.wire.reading_to_dict)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int  # readings waiting for the broker
    bytes: int  # their encoded size
    evicted: int  # readings ever deleted unsent to keep the bounds
    rejected: int  # readings kept aside as undeliverable
    oldest_created: float | None  # host time the oldest waiting reading was stored


class Outbox:
    """A durable, bounded FIFO of encoded readings keyed by their sequence number. Thread-safe."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_bytes: int = UNBOUNDED,
        max_age_s: float = float("inf"),
    ) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        depth, size = self._db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM pending"
        ).fetchone()
        self._depth = int(depth)
        self._bytes = int(size)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def store(self, created: float, build: Callable[[int], bytes]) -> int:
        """Assign the next sequence number and store `build(seq)` in one durable transaction,
        evicting the oldest readings first if the bounds require it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "UPDATE counter SET value = value + 1 WHERE name = 'last_seq' RETURNING value"
                ).fetchone()
                seq = int(row[0])
                payload = build(seq)
                self._db.execute(
                    "INSERT INTO pending (seq, created, payload) VALUES (?, ?, ?)",
                    (seq, created, payload),
                )
                evicted, freed = self._evict(created, len(payload))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._depth += 1 - evicted
            self._bytes += len(payload) - freed
        return seq

    def _evict(self, now: float, incoming: int) -> tuple[int, int]:
        """Delete the oldest readings while the age or size bound is broken (in a transaction).

        The new reading itself is never evicted by its own insertion.
        """
        evicted = freed = 0
        oldest_allowed = now - self.max_age_s
        while True:
            row = self._db.execute(
                "SELECT seq, created, length(payload) FROM pending ORDER BY seq LIMIT 2"
            ).fetchall()
            if len(row) < 2:
                break
            seq, created, size = row[0]
            too_big = self._bytes + incoming - freed > self.max_bytes
            if not too_big and created >= oldest_allowed:
                break
            self._db.execute("DELETE FROM pending WHERE seq = ?", (seq,))
            evicted += 1
            freed += int(size)
        if evicted:
            self._db.execute(
                "UPDATE counter SET value = value + ? WHERE name = 'evicted'", (evicted,)
            )
        return evicted, freed

    def peek(self, after: int, limit: int, before: int | None = None) -> list[Entry]:
        """Oldest entries with `after` < seq (< `before` when given)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM pending WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?",
                (after, UNBOUNDED if before is None else before, limit),
            ).fetchall()
        return [Entry(int(s), bytes(p)) for s, p in rows]

    def remove(self, seqs: list[int]) -> None:
        """Delete readings the broker acknowledged (unknown seqs are ignored)."""
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN")
            freed = removed = 0
            for seq in seqs:
                row = self._db.execute(
                    "DELETE FROM pending WHERE seq = ? RETURNING length(payload)", (seq,)
                ).fetchone()
                if row is not None:
                    removed += 1
                    freed += int(row[0])
            self._db.execute("COMMIT")
            self._depth -= removed
            self._bytes -= freed

    def reject(self, seqs: list[int], reason: str, now: float) -> int:
        """Move readings that can never be delivered to the `rejected` table; how many moved."""
        moved = 0
        with self._lock:
            self._db.execute("BEGIN")
            for seq in seqs:
                row = self._db.execute(
                    "DELETE FROM pending WHERE seq = ? RETURNING created, payload", (seq,)
                ).fetchone()
                if row is None:
                    continue
                self._db.execute(
                    "INSERT OR REPLACE INTO rejected (seq, created, rejected_at, reason, payload)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (seq, row[0], now, reason, row[1]),
                )
                moved += 1
                self._depth -= 1
                self._bytes -= len(row[1])
            self._db.execute("COMMIT")
        return moved

    def rejected(self, limit: int = 100) -> list[tuple[int, str, bytes]]:
        """The kept-aside readings, oldest first: (seq, reason, payload)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, reason, payload FROM rejected ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [(int(s), str(r), bytes(p)) for s, r, p in rows]

    def depth(self) -> int:
        with self._lock:
            return self._depth

    def stats(self) -> OutboxStats:
        with self._lock:
            evicted = self._db.execute(
                "SELECT value FROM counter WHERE name = 'evicted'"
            ).fetchone()[0]
            rejected = self._db.execute("SELECT count(*) FROM rejected").fetchone()[0]
            oldest = self._db.execute("SELECT created FROM pending ORDER BY seq LIMIT 1").fetchone()
            return OutboxStats(
                depth=self._depth,
                bytes=self._bytes,
                evicted=int(evicted),
                rejected=int(rejected),
                oldest_created=None if oldest is None else float(oldest[0]),
            )

    def last_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counter WHERE name = 'last_seq'").fetchone()
        return int(row[0])
