"""Pipeline counters and per-stage latency windows, read by status, health and the benchmark.

Writers are the stage threads (one writer per counter); readers take snapshots.
Plain ints under the GIL are enough: a health report tolerates a count that is
one frame behind.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

STAGES = ("capture", "queue", "preprocess", "infer", "postprocess", "total")


@dataclass(slots=True)
class Counters:
    captured: int = 0
    dropped: int = 0  # replaced in the latest-frame slot before inference took them
    stale: int = 0  # older than the budget when inference would have started
    skipped: int = 0  # passed over by the skip overrun policy
    inspected: int = 0
    over_budget: int = 0
    defects: int = 0
    errors: int = 0
    camera_restarts: int = 0
    inference_restarts: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


class LatencyWindow:
    """The last N per-stage latencies in a ring buffer (no allocation per frame)."""

    def __init__(self, size: int = 1024) -> None:
        self._data = np.zeros((size, len(STAGES)), np.float64)
        self._n = 0
        self._mark = 0  # _n at the last drain_interval()
        self._size = size

    def add(self, values: tuple[float, ...]) -> None:
        self._data[self._n % self._size] = values
        self._n += 1

    def percentiles(self, q: tuple[int, ...] = (50, 95, 99)) -> dict[str, dict[str, float]]:
        return _percentiles(self._data[: min(self._n, self._size)], q)

    def drain_interval(self, q: tuple[int, ...] = (50, 95, 99)) -> tuple[dict[str, dict[str, float]], int]:
        """Percentiles of the frames added since the previous call, and how many there were.

        Health reports latency per interval. The rows are already in the ring, so this costs
        nothing per frame: only a mark of where the last interval ended. An interval longer
        than the ring covers its last ``size`` frames. One reader (the health reporter).
        """
        end = self._n
        count = end - self._mark
        self._mark = end
        rows = np.arange(end - min(count, self._size), end) % self._size
        return _percentiles(self._data[rows], q), count


def _percentiles(filled: np.ndarray, q: tuple[int, ...]) -> dict[str, dict[str, float]]:
    if not len(filled):
        return {}
    pct = np.percentile(filled, q, axis=0)
    return {
        stage: {f"p{p}": round(float(pct[i, j]), 3) for i, p in enumerate(q)}
        for j, stage in enumerate(STAGES)
    }


class RateMeter:
    """Frames per second over a sliding interval, from a counter sampled now and then."""

    def __init__(self) -> None:
        self._last_t = time.monotonic()
        self._last_n = 0
        self.rate = 0.0

    def update(self, count: int) -> float:
        now = time.monotonic()
        dt = now - self._last_t
        if dt >= 0.5:
            self.rate = (count - self._last_n) / dt
            self._last_t, self._last_n = now, count
        return self.rate
