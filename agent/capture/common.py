"""Helpers every capture backend shares: pacing, frame stamps and the live/lossless choice."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import structlog

from agent.capture.base import Frame
from agent.config.schema import CameraConfig

log = structlog.get_logger(__name__)

# Told about a file skipped for the first time: (source, file, reason, skipped so far).
SkipNotice = Callable[[str, str, str, int], None]
_REMEMBERED = 1024  # files reported once each; beyond, only counted


def is_live(camera: CameraConfig) -> bool:
    """Whether frames reach the pipeline through the latest-frame hand-off (drops) or a lossless queue.

    ``camera.live`` decides when set; otherwise devices, streams and synthetic parts are
    live and file replays are not (a replay must not lose frames unless asked to).
    """
    if camera.live is not None:
        return camera.live
    return not camera.spec.finite


def stamp(image: np.ndarray, seq: int, started: float, ref: str | None = None) -> Frame:
    """A frame stamped right now; ``started`` is the monotonic time the source began producing it."""
    mono = time.monotonic()
    return Frame(
        image=image,
        seq=seq,
        ts_ms=time.time_ns() // 1_000_000,
        mono=mono,
        ref=ref,
        capture_ms=(mono - started) * 1000.0,
    )


class Pacer:
    """Releases one frame per period against monotonic deadlines, so the rate does not drift.

    Deadlines advance by exactly one period, whatever each sleep really lasted. A
    consumer that falls more than a period behind is not repaid with a burst of
    frames: the schedule restarts from now, the way a camera drops what nobody read.
    ``fps=None`` releases frames immediately (replays read as fast as the reader asks).
    """

    def __init__(
        self,
        fps: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.period = 1.0 / fps if fps else 0.0
        self._clock = clock
        self._sleep = sleep
        self._deadline: float | None = None

    def wait(self) -> None:
        """Sleep until the next frame is due."""
        if not self.period:
            return
        now = self._clock()
        if self._deadline is None or now - self._deadline > self.period:
            self._deadline = now
        elif self._deadline > now:
            self._sleep(self._deadline - now)
        self._deadline += self.period

    def reset(self) -> None:
        """Start a fresh schedule (after a loop restart or a pause)."""
        self._deadline = None


class SkippedImages:
    """Images a replay could not use (unreadable, too large): every skip counted, each file reported once.

    A looping replay meets the same bad file on every pass; the count says how often, the
    log line and ``notice`` (the agent's event) say it once per file.
    """

    def __init__(self, notice: SkipNotice | None = None) -> None:
        self.count = 0
        self._notice = notice
        self._seen: set[str] = set()
        self._last: dict[str, str] | None = None

    def note(self, source: str, file: str, reason: str) -> None:
        self.count += 1
        self._last = {"file": file, "reason": reason}
        if file in self._seen or len(self._seen) >= _REMEMBERED:
            return
        self._seen.add(file)
        log.warning("image_skipped", source=source, file=file, reason=reason, skipped=self.count)
        if self._notice is not None:
            self._notice(source, file, reason, self.count)

    def summary(self) -> dict[str, Any]:
        """For health and status: how many skips, and the last one."""
        return {"count": self.count, "last": self._last}
