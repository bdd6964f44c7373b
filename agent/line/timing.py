"""The timing logic of the line, independent of any chip: debounce, delayed pulses, late detection, jitter.

Everything works on ``time.monotonic()`` seconds, the clock of the kernel's edge timestamps, so a
reject is placed relative to when the photo-eye switched, not to when a thread woke up.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Debouncer:
    """Accepts an edge only when it comes ``period_s`` or more after the last accepted one.

    A mechanical contact or a photo-eye at the edge of a part chatters for a few ms; those
    extra edges are counted as ``bounced`` and never become triggers.
    """

    period_s: float
    last: float = -math.inf
    bounced: int = 0

    def accept(self, mono: float) -> bool:
        if mono - self.last < self.period_s:
            self.bounced += 1
            return False
        self.last = mono
        return True


@dataclass(slots=True)
class Jitter:
    """How late scheduled output changes really happened (ms): count, mean, max, p99 of the last 1000."""

    samples: list[float] = field(default_factory=list)
    count: int = 0

    def add(self, late_ms: float) -> None:
        self.count += 1
        self.samples.append(late_ms)
        if len(self.samples) > 1000:
            del self.samples[:500]

    def summary(self) -> dict[str, float | None]:
        """count since start; p50/p99/max/mean of the last samples (None before the first)."""
        if not self.samples:
            return {"count": self.count, "p50_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
        ordered = sorted(self.samples)
        n = len(ordered)
        return {
            "count": self.count,
            "p50_ms": round(ordered[n // 2], 3),
            "p99_ms": round(ordered[min(n - 1, int(n * 0.99))], 3),
            "max_ms": round(ordered[-1], 3),
            "mean_ms": round(sum(ordered) / n, 3),
        }


class PulseScheduler:
    """Sets output lines at given monotonic times on one thread; measures how late each change was.

    ``pulse`` refuses (returns False) a pulse whose start is already more than ``late_s`` past:
    a reject that comes late hits the wrong part, so it is better not fired at all.
    """

    def __init__(self, set_line: Callable[[int, bool], None], *, clock: Callable[[], float] = time.monotonic):
        self._set = set_line
        self._clock = clock
        self._heap: list[tuple[float, int, int, bool]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self.jitter = Jitter()
        self._thread = threading.Thread(target=self._run, name="line-pulses", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def pulse(self, line: int, at: float, width_s: float, late_s: float) -> bool:
        if self._clock() > at + late_s:
            return False
        with self._cond:
            heapq.heappush(self._heap, (at, next(self._order), line, True))
            heapq.heappush(self._heap, (at + width_s, next(self._order), line, False))
            self._cond.notify()
        return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > self._clock()):
                    wait = self._heap[0][0] - self._clock() if self._heap else None
                    self._cond.wait(wait)
                if self._stopped:
                    return
                at, _, line, active = heapq.heappop(self._heap)
            self._set(line, active)
            if active:
                self.jitter.add((self._clock() - at) * 1000.0)
