"""Keeps a live camera coming back: reconnects with backoff, never gives up, never spins.

A factory camera drops off the network, a USB cable gets knocked, an RTSP encoder
reboots. The agent must ride through that without a restart and say what is
happening (``offline``/``online`` go to the health topic through ``on_state``).
:class:`ResilientSource` wraps the sources built by a factory and, for a live
source, turns every :class:`CameraError` into a wait-and-reopen; ``read()`` simply
blocks until frames flow again. File replays are finite and their errors final:
a corrupt file will not fix itself, so those are raised as they are.

Problems found by the factory itself (a library not installed, an OpenCV without
GStreamer) are permanent: :meth:`ResilientSource.open` raises them at start-up.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import structlog

from agent.capture.base import Frame, FrameSource
from agent.capture.common import is_live
from agent.capture.opencv_source import redact_url
from agent.config.schema import CameraConfig
from agent.errors import CameraError

log = structlog.get_logger(__name__)

ONLINE = "online"
OFFLINE = "offline"


class Backoff:
    """Exponential delays from ``initial`` doubling up to ``maximum``, each shortened by up to ``jitter``.

    The jitter keeps a line of cameras that lost the same switch from reconnecting in lockstep.
    """

    def __init__(
        self, initial: float, maximum: float, jitter: float = 0.2, rng: random.Random | None = None
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._base = initial

    def next(self) -> float:
        """The next delay in seconds; the one after it is twice as long, up to the maximum."""
        base = self._base
        self._base = min(self.maximum, base * 2.0)
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self._base = self.initial


class ResilientSource:
    """A :class:`FrameSource` that reopens a lost live camera with backoff; see the module docstring.

    ``reconnects`` counts the successful reopenings after a loss. Frame sequence
    numbers are renumbered here so that they keep increasing across reconnects.
    :meth:`stop` (any thread) makes a waiting :meth:`read` return ``None`` promptly;
    a read blocked inside the camera returns within ``camera.read_timeout_s``.
    """

    def __init__(
        self,
        inner_factory: Callable[[], FrameSource],
        camera_cfg: CameraConfig,
        on_state: Callable[[str], None],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.live = is_live(camera_cfg)
        self.description = redact_url(camera_cfg.source)
        self.reconnects = 0
        self.state: str | None = None  # None until the first frame or the first failure
        self._factory = inner_factory
        self._on_state = on_state
        self._final = camera_cfg.spec.finite
        self._backoff = Backoff(camera_cfg.reconnect_initial_s, camera_cfg.reconnect_max_s, rng=rng)
        self._inner: FrameSource | None = None
        self._lock = threading.Lock()  # held while the inner source is read or closed
        self._stop = threading.Event()
        self._seq = 0

    def open(self) -> None:
        self._stop.clear()
        inner = self._factory()  # a permanent problem (missing library, bad source) raises here
        self.description = inner.description
        try:
            inner.open()
        except CameraError as exc:
            self._close_quietly(inner)
            if self._final:
                raise
            self._lost(exc)  # a camera that is off at start-up is waited for like a lost one
            return
        self._inner = inner

    def read(self) -> Frame | None:
        while not self._stop.is_set():
            inner = self._inner or self._reconnect()
            if inner is None:
                continue
            try:
                with self._lock:
                    frame = inner.read()
            except CameraError as exc:
                if self._final:
                    raise
                self._lost(exc)
                continue
            if frame is None:
                if self._final:
                    return None
                self._lost(CameraError(f"{self.description}: the stream ended"))
                continue
            if self.state != ONLINE:
                self._backoff.reset()
                self._set_state(ONLINE)
            frame.seq = self._seq
            self._seq += 1
            return frame
        return None

    def stop(self) -> None:
        """Make a waiting :meth:`read` return ``None`` now; safe from any thread."""
        self._stop.set()

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._close_inner()

    def _reconnect(self) -> FrameSource | None:
        """Wait out the next backoff delay, then try a fresh source; ``None`` when it failed or we stop."""
        delay = self._backoff.next()
        if self._stop.wait(delay):
            return None
        inner: FrameSource | None = None
        try:
            inner = self._factory()
            inner.open()
        except CameraError as exc:
            log.info(
                "camera_still_offline", source=self.description, error=str(exc), waited_s=round(delay, 3)
            )
            if inner is not None:
                self._close_quietly(inner)
            return None
        self._inner = inner
        self.reconnects += 1
        log.info("camera_reopened", source=self.description, reconnects=self.reconnects)
        return inner

    def _lost(self, exc: CameraError) -> None:
        with self._lock:
            self._close_inner()
        if self.state != OFFLINE:
            log.warning("camera_offline", source=self.description, error=str(exc))
            self._set_state(OFFLINE)

    def _close_inner(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            self._close_quietly(inner)

    def _close_quietly(self, inner: FrameSource) -> None:
        try:
            inner.close()
        except CameraError as exc:  # closing a lost camera often fails; it is gone either way
            log.debug("camera_close_failed", source=self.description, error=str(exc))

    def _set_state(self, state: str) -> None:
        self.state = state
        self._on_state(state)
