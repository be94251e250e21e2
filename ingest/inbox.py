"""The hand-over of received messages from the MQTT network thread to the parsing thread, bounded
in bytes.

`queue.Queue` takes a lock and signals a condition on every `put` and `get`: draining a backlog,
that is tens of thousands of lock round trips and thread wake-ups a second. Here the network
thread puts whole lists (one read of the socket) and the parsing thread takes a few hundred
items at a time, each under one lock; events are set only when the other side may be waiting.

The bound (docs/storage.md, "Ingest memory"): items that may be lost (`droppable`: QoS 0) are
dropped oldest first whenever the inbox holds more than `max_bytes`, and counted. Items that
must not be lost are always taken; once they alone fill the bound the inbox is `full`, and the
producer stops reading (`wait_for_room`) until the consumer has taken enough. The inbox then
holds at most `max_bytes` plus what the producer put in its last call.

With `until_released`, what the consumer took still counts until it says it is done with it
(`release`): the bound then covers every item between the producer and the end of its
processing (for the ingest: until its batch is committed), not only those waiting here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Inbox"]

T = TypeVar("T")
# An entry: the arrival number (the order across both queues), the item, its size in bytes.
_Entry = tuple[int, T, int]


def _never(_item: object) -> bool:
    return False


def _no_size(_item: object) -> int:
    return 0


class Inbox(Generic[T]):
    """Single consumer, any number of producers; first in, first out, minus what is dropped.

    `size` gives an item's bytes as counted against `max_bytes` (0: no bound); `droppable`
    says whether an item may be dropped when over the bound; `on_drop` is told, outside the
    lock, how many items a put dropped; `until_released`: taken items count until `release`."""

    def __init__(
        self,
        max_bytes: int = 0,
        *,
        size: Callable[[T], int] = _no_size,
        droppable: Callable[[T], bool] = _never,
        on_drop: Callable[[int], None] | None = None,
        until_released: bool = False,
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self._size = size
        self._droppable = droppable
        self._on_drop = on_drop
        self._kept: deque[_Entry[T]] = deque()  # never dropped
        self._loose: deque[_Entry[T]] = deque()  # droppable, oldest first
        self._bytes = 0  # of the items here, and of those taken and not released
        self._until_released = until_released
        self._seq = 0  # the producers' arrival numbers count up from 1 ...
        self._front = 0  # ... and those of items given back count down from 0
        self._lock = threading.Lock()
        self._ready = threading.Event()  # set when an item may be there for a waiting consumer
        self._room = threading.Event()  # set when a waiting producer may put again
        self._room.set()
        self.dropped = 0

    # -- producers -------------------------------------------------------------------------

    def put(self, item: T) -> None:
        self.put_many([item])

    def put_many(self, items: list[T]) -> None:
        """Append `items` in order; then, while over the bound, drop the oldest droppable
        items (possibly some of these)."""
        if not items:
            return
        size, droppable, limit = self._size, self._droppable, self.max_bytes
        dropped = 0
        with self._lock:
            seq, total = self._seq, self._bytes
            kept, loose = self._kept, self._loose
            for item in items:
                seq += 1
                n = size(item)
                total += n
                (loose if droppable(item) else kept).append((seq, item, n))
            if limit:
                while total > limit and loose:
                    total -= loose.popleft()[2]
                    dropped += 1
                if total > limit:
                    self._room.clear()
            self._seq, self._bytes = seq, total
            self.dropped += dropped
        if not self._ready.is_set():
            self._ready.set()
        if dropped and self._on_drop is not None:
            self._on_drop(dropped)

    def full(self) -> bool:
        """Over the bound with nothing left to drop: the producer should wait for room."""
        return bool(self.max_bytes) and self._bytes > self.max_bytes

    def wait_for_room(self, timeout: float) -> bool:
        """True at once while not `full`; else wait up to `timeout` seconds for the consumer to
        make room, and say whether it did."""
        if not self.full():
            return True
        self._room.wait(timeout)
        return not self.full()

    # -- the consumer ----------------------------------------------------------------------

    def _pop(self) -> _Entry[T] | None:
        """The oldest entry of both queues (under the lock)."""
        kept, loose = self._kept, self._loose
        if kept and (not loose or kept[0][0] < loose[0][0]):
            return kept.popleft()
        if loose:
            return loose.popleft()
        return None

    def _freed(self) -> None:
        """After the consumer removed items (under the lock): wake a producer waiting for room."""
        if not self._room.is_set() and not self.full():
            self._room.set()

    def get_nowait(self) -> T | None:
        with self._lock:
            entry = self._pop()
            if entry is None:
                return None
            if not self._until_released:
                self._bytes -= entry[2]
                self._freed()
        return entry[1]

    def get(self, timeout: float) -> T | None:
        """The oldest item, waiting up to `timeout` seconds (none: `timeout` <= 0) for one;
        None if none came."""
        deadline: float | None = None
        while True:
            if len(self):
                item = self.get_nowait()
                if item is not None:
                    return item
            if deadline is None:
                deadline = time.monotonic() + timeout
            # Clear, then look again: an item put between the look above and the clear has set
            # the event before it was cleared, and is found by this second look.
            self._ready.clear()
            if len(self):
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._ready.wait(remaining):
                return self.get_nowait()

    def take(self, limit: int) -> list[T]:
        """Up to `limit` of the oldest items, without waiting."""
        taken: list[T] = []
        append = taken.append
        with self._lock:
            kept, loose = self._kept, self._loose
            freed = 0
            while len(taken) < limit:
                if kept and (not loose or kept[0][0] < loose[0][0]):
                    _, item, n = kept.popleft()
                elif loose:
                    _, item, n = loose.popleft()
                else:
                    break
                append(item)
                freed += n
            if not self._until_released:
                self._bytes -= freed
                self._freed()
        return taken

    def release(self, items: list[T]) -> None:
        """`until_released`: the consumer is done with `items`, taken before; they no longer
        count against the bound."""
        if not self._until_released:
            return
        size = self._size
        freed = sum(size(item) for item in items)
        with self._lock:
            self._bytes -= freed
            self._freed()

    def give_back(self, items: list[T]) -> None:
        """Put `items`, taken last, back in front of everything else (the consumer only). They
        count against the bound again, but are not dropped for it here."""
        size, droppable = self._size, self._droppable
        with self._lock:
            front = self._front
            for item in reversed(items):
                front -= 1
                n = size(item)
                if not self._until_released:  # else still counted since taken
                    self._bytes += n
                (self._loose if droppable(item) else self._kept).appendleft((front, item, n))
            self._front = front
            if self.full():
                self._room.clear()

    def __len__(self) -> int:
        return len(self._kept) + len(self._loose)

    @property
    def bytes(self) -> int:
        """What the items held (and, `until_released`, those taken) count against the bound."""
        return self._bytes
