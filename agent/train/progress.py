"""Progress of long steps: a redrawn bar on a terminal, plain periodic lines otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 30


class Progress:
    """``update(done)`` as work advances, ``close()`` at the end; what it prints depends on the stream."""

    def __init__(self, title: str, total: int, stream: TextIO | None = None, every_s: float = 10.0) -> None:
        self.title, self.total = title, max(1, total)
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s
        self._start = self._last = time.monotonic()
        self._done = 0

    def update(self, done: int, note: str = "") -> None:
        self._done = min(done, self.total)
        now = time.monotonic()
        if self.tty:
            filled = BAR_WIDTH * self._done // self.total
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r{self.title} [{bar}] {self._done}/{self.total} {note}\x1b[K")
            self.stream.flush()
        elif now - self._last >= self.every_s:
            self._last = now
            self.stream.write(f"{self.title}: {self._done}/{self.total} ({now - self._start:.0f} s) {note}\n")
            self.stream.flush()

    def close(self, note: str = "") -> None:
        line = f"{self.title}: {self._done}/{self.total} in {time.monotonic() - self._start:.1f} s {note}"
        self.stream.write(f"\r{line}\x1b[K\n" if self.tty else line.rstrip() + "\n")
        self.stream.flush()
