"""The vehicle's disk outbox: every reading is durable here before it is published.

SQLite in WAL mode with synchronous=FULL: `append` returns only once the reading would survive a
power cut. A reading leaves the outbox only when the broker has acknowledged the message that
carried it. The sequence number is the table's key and is never reused, even after the outbox
drains, because the highest one handed out is kept in a separate row.
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
CREATE TABLE IF NOT EXISTS counter (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counter (name, value) VALUES ('last_seq', 0), ('evicted', 0);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    payload: bytes  # one reading as its JSON object (see edge.wire.reading_to_dict)


class Outbox:
    """A durable FIFO of encoded readings keyed by their sequence number. Thread-safe."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def store(self, created: float, build: Callable[[int], bytes]) -> int:
        """Assign the next sequence number and store `build(seq)` in one durable transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "UPDATE counter SET value = value + 1 WHERE name = 'last_seq' RETURNING value"
                ).fetchone()
                seq = int(row[0])
                self._db.execute(
                    "INSERT INTO pending (seq, created, payload) VALUES (?, ?, ?)",
                    (seq, created, build(seq)),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return seq

    def peek(self, after: int, limit: int) -> list[Entry]:
        """Oldest entries with seq greater than `after`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM pending WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [Entry(int(s), bytes(p)) for s, p in rows]

    def remove(self, seqs: list[int]) -> None:
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM pending WHERE seq = ?", [(s,) for s in seqs])
            self._db.execute("COMMIT")

    def depth(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM pending").fetchone()
        return int(row[0])

    def oldest_seq(self) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT min(seq) FROM pending").fetchone()
        return None if row[0] is None else int(row[0])
