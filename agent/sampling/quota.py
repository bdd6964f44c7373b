"""Token buckets per minute/hour/day: how many samples a policy (or the device) may send.

A bucket of capacity N refills at N per period, so a burst of N is allowed and the long-run
rate is N per period. The clock is injected so tests are exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.config.observers import QuotaConfig

Clock = Callable[[], float]
MAX_QUOTA = 10_000_000  # samples per period at most: beyond it a float bucket loses meaning
_PERIODS = (("per_minute", 60.0), ("per_hour", 3600.0), ("per_day", 86400.0))


class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``capacity / period_s`` per second."""

    __slots__ = ("_last", "_tokens", "capacity", "clock", "period_s")

    def __init__(self, capacity: int, period_s: float, clock: Clock = time.monotonic) -> None:
        self.capacity = float(capacity)
        self.period_s = period_s
        self.clock = clock
        self._tokens = float(capacity)
        self._last = clock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.capacity / self.period_s)
        self._last = now

    def available(self) -> bool:
        self._refill()
        return self._tokens >= 1.0

    def take(self) -> None:
        self._refill()
        self._tokens = max(0.0, self._tokens - 1.0)


class Quota:
    """The per-minute, per-hour and per-day buckets of one policy; a sample needs a token in each."""

    __slots__ = ("buckets", "config")

    def __init__(self, cfg: QuotaConfig, clock: Clock = time.monotonic) -> None:
        self.config = cfg
        self.buckets = [
            TokenBucket(limit, period, clock)
            for name, period in _PERIODS
            if (limit := getattr(cfg, name)) is not None
        ]

    def available(self) -> bool:
        return all(b.available() for b in self.buckets)

    def take(self) -> None:
        for b in self.buckets:
            b.take()
