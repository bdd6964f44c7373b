"""Progress of a long evaluation: a bar on a terminal, a line now and then in a log.

Written to stderr so ``--json`` output on stdout stays one clean object.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_BAR = 30


class Progress:
    """``step()`` per item; a TTY gets a redrawn bar, anything else a line every ``every_s`` seconds."""

    def __init__(self, total: int, what: str, *, stream: TextIO | None = None, every_s: float = 10.0) -> None:
        self.total = max(1, total)
        self.what = what
        self.done = 0
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._every = every_s
        self._started = self._last = time.monotonic()

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self._tty:
            if now - self._last >= 0.1 or self.done >= self.total:
                filled = _BAR * self.done // self.total
                self._stream.write(
                    f"\r{self.what} [{'#' * filled}{' ' * (_BAR - filled)}] {self.done}/{self.total}"
                )
                self._stream.flush()
                self._last = now
        elif now - self._last >= self._every:
            rate = self.done / max(now - self._started, 1e-9)
            self._stream.write(f"{self.what}: {self.done}/{self.total} ({rate:.0f}/s)\n")
            self._stream.flush()
            self._last = now

    def close(self) -> None:
        if self._tty:
            self._stream.write("\n")
        elif self.done:
            elapsed = time.monotonic() - self._started
            self._stream.write(f"{self.what}: {self.done}/{self.total} done in {elapsed:.1f} s\n")
        self._stream.flush()
