"""Near-duplicate suppression with a 64-bit difference hash (dHash).

A stopped line shows the same part for minutes; every frame of it would be "unsure" in
the same way. dHash (grayscale 9x8, one bit per horizontal gradient sign) is robust to
JPEG noise and small brightness changes, costs ~0.1 ms, and is only computed once a
policy has fired.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from agent.config.observers import DedupConfig


def dhash(image: np.ndarray) -> int:
    """The 64-bit difference hash of a BGR (or grayscale) image."""
    small = cv2.resize(image, (9, 8), interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    bits = (small[:, 1:] > small[:, :-1]).reshape(-1)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class DuplicateFilter:
    """Remembers the hashes sampled in the last ``window_s`` seconds (at most ``history``)."""

    def __init__(self, cfg: DedupConfig) -> None:
        self.cfg = cfg
        self._seen: deque[tuple[float, int]] = deque(maxlen=cfg.history)

    def is_duplicate(self, value: int, now: float) -> bool:
        """True when ``value`` is close to a recent hash; otherwise remember it and return False."""
        if not self.cfg.enabled:
            return False
        horizon = now - self.cfg.window_s
        seen = self._seen
        while seen and seen[0][0] < horizon:
            seen.popleft()
        limit = self.cfg.max_distance
        if any((value ^ h).bit_count() <= limit for _, h in seen):
            return True
        seen.append((now, value))
        return False
