"""Frames and the small interface every capture source implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(slots=True)
class Frame:
    """One captured image, BGR uint8 (H, W, 3), with when it was taken."""

    image: np.ndarray
    seq: int  # sequence number from the source, starting at 0
    ts_ms: int  # capture wall-clock time, epoch milliseconds
    mono: float  # time.monotonic() at capture, for ages and latencies
    ref: str | None = None  # where it came from (a file name for dir: sources), if meaningful
    capture_ms: float = 0.0  # time spent inside the source producing it
    # The frame as the model saw it (its input size and colour, uint8), set by the pipeline after
    # preprocessing so observers (drift statistics) need not resize the full frame again.
    view: np.ndarray | None = None


class FrameSource(Protocol):
    """A camera or a replay.

    ``live`` sources are joined to the pipeline by a one-slot latest-frame hand-off
    (older frames are dropped); replays by a bounded lossless queue.
    """

    live: bool
    description: str

    def open(self) -> None:
        """Open the device or file; raise :class:`agent.errors.CameraError` when impossible."""
        ...

    def read(self) -> Frame | None:
        """Block until the next frame. ``None``: a finite source has ended.

        Raises :class:`agent.errors.CameraError` when the camera is lost; the
        caller reconnects with backoff.
        """
        ...

    def close(self) -> None: ...
