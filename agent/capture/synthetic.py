"""``synthetic:`` and ``synthetic:SEED``: a conveyor of rendered parts, no camera needed.

It lets the whole agent run (demo, soak test, CI) on a laptop: the parts come
from the same renderer the demo model was trained on, so the model has something
meaningful to say about them. The stream is deterministic given the seed (0 when
omitted), and ``Frame.ref`` carries the true label so tests and drift checks can
compare the model's answer with the truth.
"""

from __future__ import annotations

import time

import numpy as np

from agent.capture.base import Frame
from agent.capture.common import Pacer, stamp
from agent.config.schema import CameraConfig
from agent.errors import CameraError

DEFAULT_SIZE = (640, 480)


class SyntheticSource:
    """Endless rendered parts; a share ``camera.synthetic_defect_rate`` of them defective."""

    def __init__(self, camera: CameraConfig, live: bool) -> None:
        from agent.synthetic.parts import DEFECT_LABELS, render_part  # renderer pulls in cv2

        target = camera.spec.target.strip()
        try:
            self.seed = int(target) if target else 0
        except ValueError:
            raise CameraError(f"synthetic:{target}: the seed must be an integer") from None
        self.live = live
        self.description = f"synthetic:{self.seed}"
        self._render = render_part
        self._defects = DEFECT_LABELS
        self._rate = camera.synthetic_defect_rate
        self._width = camera.width or DEFAULT_SIZE[0]
        self._height = camera.height or DEFAULT_SIZE[1]
        self._pacer = Pacer(camera.fps if camera.realtime else None)
        self._rng = np.random.default_rng(self.seed)
        self._seq = 0
        try:  # a size the renderer refuses is a configuration mistake: fail at start, not per frame
            render_part(np.random.default_rng(0), "ok", self._width, self._height)
        except ValueError as exc:
            raise CameraError(f"{self.description}: {exc}") from exc

    def open(self) -> None:
        """Restart the stream from its seed, so reopening replays the same parts."""
        self._rng = np.random.default_rng(self.seed)
        self._seq = 0
        self._pacer.reset()

    def read(self) -> Frame:
        self._pacer.wait()
        started = time.monotonic()
        rng = self._rng
        label = "ok"
        if rng.random() < self._rate:
            label = self._defects[int(rng.integers(len(self._defects)))]
        image = self._render(rng, label, self._width, self._height)
        frame = stamp(image, self._seq, started, ref=label)
        self._seq += 1
        return frame

    def close(self) -> None:
        """Nothing to release."""
