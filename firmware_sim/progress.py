"""A one-line progress bar on stderr, redrawn at most ten times a second."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(
        self, total: float, label: str = "", *, stream: TextIO | None = None, width: int = 30
    ) -> None:
        self.total = max(total, 1e-9)
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, done: float, note: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        share = min(1.0, max(0.0, done / self.total))
        filled = round(share * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = now - self.started
        self.stream.write(f"\r{self.label} [{bar}] {share:6.1%} {elapsed:6.1f}s {note}\033[K")
        self.stream.flush()

    def finish(self, note: str = "") -> None:
        self.update(self.total, note, force=True)
        self.stream.write("\n")
        self.stream.flush()
