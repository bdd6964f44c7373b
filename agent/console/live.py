"""What the console shows, kept by a :class:`FrameObserver` and drawn on the console's own thread.

The publish thread only stores references (``observe`` is O(1): two attribute assignments); the
``console-preview`` thread wakes at most ``preview_fps`` times a second and, only while someone
watches (a stream is open or a frame/status was asked for in the last seconds), draws and
encodes the latest frame and measures the setup aids. A new defect is turned into a thumbnail
and a frame JPEG at the same rate at most, whoever watches, so the recent-defects list is ready
when a technician opens the page.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import structlog

from agent.capture.base import Frame
from agent.config.schema import WebConsoleConfig
from agent.console import draw
from agent.console.setup import SetupMeter
from agent.model.manifest import InputSpec
from agent.model.result import InferenceResult
from agent.observer import FrameObserver
from agent.protocol.payloads import ResultPayload

log = structlog.get_logger(__name__)

WATCH_GRACE_S = 3.0  # a poll keeps the preview encoding this long
UNWATCHED_DEFECT_S = 1.0  # with nobody watching, at most one defect a second is kept
Inspected = tuple[Frame, InferenceResult, ResultPayload]


@dataclass(frozen=True, slots=True)
class DefectShot:
    id: str
    ts: int
    frame: int
    label: str
    score: float
    thumb: bytes
    image: bytes

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id, "ts": self.ts, "frame": self.frame, "label": self.label, "score": self.score,
            "thumb": f"/api/defects/{self.id}/thumb.jpg", "image": f"/api/defects/{self.id}/frame.jpg",
        }  # fmt: skip


@dataclass(slots=True)
class Picture:
    """One preview: the annotated JPEG, the frame as the camera gave it (scaled; encoded only when
    someone asks for ``?raw=1``), and that frame's payload."""

    seq: int
    annotated: bytes
    raw_image: np.ndarray
    payload: ResultPayload
    _raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = draw.jpeg(self.raw_image)
        return self._raw


class Viewers:
    """Open live streams, at most ``limit`` at once (the extra ones are answered 503)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._n = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self._n >= self.limit:
                return False
            self._n += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._n = max(0, self._n - 1)

    @property
    def count(self) -> int:
        return self._n


class LiveView(FrameObserver):
    """The console's frame observer and its preview thread."""

    name = "console"

    def __init__(self, cfg: WebConsoleConfig, spec: InputSpec, reference: dict[str, Any] | None) -> None:
        self.cfg = cfg
        self.spec = spec
        self.viewers = Viewers(cfg.max_viewers)
        self.setup = SetupMeter(reference)
        self.picture: Picture | None = None
        self.defects: collections.deque[DefectShot] = collections.deque(maxlen=cfg.defects_kept)
        self.encoded = 0  # previews encoded (the benchmark and tests read it)
        self._latest: Inspected | None = None
        self._defect: Inspected | None = None
        self._wanted_until = 0.0
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-preview", daemon=True)

    # -- publish thread: O(1) -----------------------------------------------------------
    def observe(self, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        self._latest = (frame, result, payload)
        if result.is_defect:
            self._defect = self._latest

    # -- web threads ------------------------------------------------------------------
    def want(self) -> None:
        """Someone looked (a poll of a frame or the status): keep the preview fresh a while."""
        self._wanted_until = time.monotonic() + WATCH_GRACE_S

    @property
    def closing(self) -> bool:
        return self._stop.is_set()

    @property
    def watched(self) -> bool:
        return self.viewers.count > 0 or time.monotonic() < self._wanted_until

    def wait_picture(self, after: int, timeout: float) -> Picture | None:
        """The next picture newer than ``after`` (a stream's loop), or None after ``timeout``."""
        with self._changed:
            self._changed.wait_for(
                lambda: (self.picture is not None and self.picture.seq > after) or self._stop.is_set(),
                timeout,
            )
            return self.picture if self.picture is not None and self.picture.seq > after else None

    def set_model(self, spec: InputSpec, reference: dict[str, Any] | None) -> None:
        if spec is not self.spec:
            self.spec = spec
            self.setup.set_reference(reference)

    # -- the preview thread ------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        period = 1.0 / self.cfg.preview_fps
        shown: Inspected | None = None
        kept: Inspected | None = None
        kept_at = 0.0
        while not self._stop.wait(period):
            try:
                defect, now = self._defect, time.monotonic()
                if (
                    defect is not None
                    and defect is not kept
                    and (self.watched or now - kept_at >= UNWATCHED_DEFECT_S)
                ):
                    kept, kept_at = defect, now
                    self._keep_defect(defect)
                latest = self._latest
                if latest is not None and latest is not shown and self.watched:
                    shown = latest
                    self._draw(latest)
            except Exception:  # a drawing bug must not end the preview (nor touch the line)
                log.exception("console_preview_failed")

    def _draw(self, item: Inspected) -> None:
        frame, result, payload = item
        raw = draw.scaled(frame.image, draw.PREVIEW_MAX_W)
        annotated = draw.annotate_in_place(raw.copy(), result, self.spec)
        self.setup.measure(frame, raw)
        seq = (self.picture.seq if self.picture else 0) + 1
        picture = Picture(seq, draw.jpeg(annotated), raw, payload)
        with self._changed:
            self.picture = picture
            self.encoded += 1
            self._changed.notify_all()

    def _keep_defect(self, item: Inspected) -> None:
        frame, result, payload = item
        annotated = draw.annotate(frame.image, result, self.spec)
        thumb = cv2.resize(annotated, (draw.THUMB_W, max(1, round(annotated.shape[0] * draw.THUMB_W
                                                                    / annotated.shape[1]))))  # fmt: skip
        self.defects.appendleft(DefectShot(
            payload["id"], payload["ts"], payload["frame"], payload["label"], payload["score"],
            draw.jpeg(thumb, 75), draw.jpeg(annotated),
        ))  # fmt: skip

    def defect(self, shot_id: str) -> DefectShot | None:
        return next((d for d in list(self.defects) if d.id == shot_id), None)

    def health(self) -> dict[str, Any]:
        return {
            "viewers": self.viewers.count,
            "previews_encoded": self.encoded,
            "defects_kept": len(self.defects),
        }


def gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
