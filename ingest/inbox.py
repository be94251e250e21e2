"""The hand-over of received messages from the MQTT network thread to the parsing thread.

`queue.Queue` takes a lock and signals a condition on every `put` and `get`: draining a backlog,
that is tens of thousands of lock round trips and thread wake-ups a second. Here the network
thread appends to a deque (atomic in CPython) and sets an event only when the parsing thread may
be waiting for one; the parsing thread takes what is there without locking and waits only when
the deque is empty.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    """Single consumer, any number of producers; first in, first out."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._ready = threading.Event()

    def put(self, item: T) -> None:
        self._items.append(item)
        if not self._ready.is_set():
            self._ready.set()

    def put_many(self, items: list[T]) -> None:
        self._items.extend(items)  # one C call: atomic, and in order
        if not self._ready.is_set():
            self._ready.set()

    def get_nowait(self) -> T | None:
        try:
            return self._items.popleft()
        except IndexError:
            return None

    def get(self, timeout: float) -> T | None:
        """The oldest item, waiting up to `timeout` seconds (none: `timeout` <= 0) for one;
        None if none came."""
        deadline: float | None = None
        while True:
            try:
                return self._items.popleft()
            except IndexError:
                pass
            if deadline is None:
                deadline = time.monotonic() + timeout
            # Clear, then look again: an item put between the look above and the clear has set
            # the event before it was cleared, and is found by this second look.
            self._ready.clear()
            if self._items:
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._ready.wait(remaining):
                return self.get_nowait()

    def take(self, limit: int) -> list[T]:
        """Up to `limit` of the oldest items, without waiting."""
        items = self._items
        taken: list[T] = []
        append, popleft = taken.append, items.popleft
        try:
            for _ in range(min(limit, len(items))):
                append(popleft())
        except IndexError:  # pragma: no cover - a single consumer: len only grows meanwhile
            pass
        return taken

    def give_back(self, items: list[T]) -> None:
        """Put `items`, taken last, back in front of everything else (the consumer only)."""
        self._items.extendleft(reversed(items))

    def __len__(self) -> int:
        return len(self._items)
