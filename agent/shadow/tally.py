"""Agreement between the active model and the shadow, overall and per class, with the shadow's latency.

Written by the shadow thread, read by the main loop (health, the per-window summary), hence
the lock; a window is a copy of the counts taken and cleared at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import numpy as np


class Tally:
    """Counts since a start (``totals``) and since the last ``take_window`` (the window)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = _Counts()
        self._window = _Counts()

    def add(self, active: str, shadow: str, active_defect: bool, shadow_defect: bool, ms: float) -> None:
        with self._lock:
            for counts in (self._total, self._window):
                counts.add(active, shadow, active_defect, shadow_defect, ms)

    def totals(self) -> dict[str, Any]:
        with self._lock:
            return self._total.summary()

    def take_window(self) -> dict[str, Any]:
        """The window's figures; the next window starts empty."""
        with self._lock:
            window, self._window = self._window, _Counts()
        return window.summary()

    def reset(self) -> None:
        """Another active model: its agreement with the shadow starts from zero."""
        with self._lock:
            self._total, self._window = _Counts(), _Counts()


class _Counts:
    def __init__(self) -> None:
        self.frames = 0
        self.agree = 0
        self.defect_agree = 0
        self.by_class: Counter[str] = Counter()  # frames per active label
        self.agree_by_class: Counter[str] = Counter()
        self.pairs: Counter[tuple[str, str]] = Counter()  # (active, shadow) where they differ
        self.latency: list[float] = []

    def add(self, active: str, shadow: str, active_defect: bool, shadow_defect: bool, ms: float) -> None:
        self.frames += 1
        same = active == shadow
        self.agree += same
        self.defect_agree += active_defect == shadow_defect
        self.by_class[active] += 1
        self.agree_by_class[active] += same
        if not same:
            self.pairs[(active, shadow)] += 1
        if len(self.latency) < 100_000:  # a window of a few minutes; bounded whatever the rate
            self.latency.append(ms)

    def summary(self) -> dict[str, Any]:
        """``frames``, ``agreement`` (share of frames with the same label), ``defect_agreement``
        (same ok/defect verdict), ``per_class`` (by the active model's label), the most frequent
        disagreeing pairs and the shadow's latency percentiles (null without frames)."""
        return {
            "frames": self.frames,
            "agreement": _share(self.agree, self.frames),
            "defect_agreement": _share(self.defect_agree, self.frames),
            "per_class": {
                label: {"frames": n, "agreement": _share(self.agree_by_class[label], n)}
                for label, n in sorted(self.by_class.items())
            },
            "disagreements": [
                {"active": a, "shadow": s, "frames": n} for (a, s), n in self.pairs.most_common(10)
            ],
            "latency_ms": _percentiles(self.latency),
        }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99])
    return {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2)}
