"""Helpers every capture backend shares: pacing, frame stamps and the live/lossless choice."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from agent.capture.base import Frame
from agent.config.schema import CameraConfig


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
