"""The shadow's place among the observers: it stays, the runner inside changes on a reload.

The pipeline's observer list is fixed when the agent starts, but the shadow model is not: a
technician (``store shadow``, ``deploy/flash-model --shadow``) points the store's ``shadow``
link at another version and sends SIGHUP. :meth:`ShadowSlot.reload` only raises a flag (it is
called from the signal handler); the next :meth:`tick` on the main loop looks the shadow up
again and, when it names another package (or the last one failed), starts a new
:class:`ShadowRunner` for it and closes the old one. A link removed stops the shadow.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from agent.capture.base import Frame
from agent.model.result import InferenceResult
from agent.model.store import CURRENT, SHADOW
from agent.observer import FrameObserver
from agent.protocol.payloads import ModelSummary, ResultPayload
from agent.shadow.runner import ShadowRunner

log = structlog.get_logger(__name__)

CLOSE_S = 5.0  # an old shadow finishes the frame in hand within this


def shadow_path(configured: Path | None, active: Path) -> Path | None:
    """The shadow package: ``model.shadow`` when set, else the store's ``shadow`` link beside
    ``model.path`` when that is a store's ``current`` and the link exists."""
    if configured is not None:
        return configured
    if active.name == CURRENT and os.path.lexists(active.parent / SHADOW):
        return active.parent / SHADOW
    return None


class ShadowSlot(FrameObserver):
    """Holds the running :class:`ShadowRunner` (or none) and hands every hook to it."""

    name = "shadow"

    def __init__(self, locate: Callable[[], Path | None], start: Callable[[Path], ShadowRunner]) -> None:
        self._locate = locate
        self._start = start
        self.runner: ShadowRunner | None = None
        self._target: Path | None = None
        self._reload = threading.Event()
        self._follow()

    def reload(self) -> None:
        """Look the shadow up again on the next tick (safe from a signal handler)."""
        self._reload.set()

    def _follow(self) -> None:
        path = self._locate()
        target = path.resolve() if path is not None else None
        runner = self.runner
        if runner is not None and target == self._target and runner.state not in ("failed", "too_slow"):
            return
        if runner is None and target is None:
            return
        self.runner, self._target = (self._start(path) if path is not None else None), target
        if runner is not None:
            runner.close(CLOSE_S)
        log.info("shadow_changed", path=str(path) if path else None, target=str(target) if target else None)

    # -- FrameObserver: each hook goes to the runner of the moment ---------------------------
    def observe(self, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        runner = self.runner
        if runner is not None:
            runner.observe(frame, result, payload)

    def failed(self, frame: Frame, model: ModelSummary, error: str) -> None:
        runner = self.runner
        if runner is not None:
            runner.failed(frame, model, error)

    def tick(self) -> None:
        if self._reload.is_set():
            self._reload.clear()
            self._follow()
        if self.runner is not None:
            self.runner.tick()

    def close(self, timeout: float) -> None:
        if self.runner is not None:
            self.runner.close(timeout)

    def health(self) -> dict[str, Any] | None:
        return self.runner.health() if self.runner is not None else None

    # -- promotion and tools -----------------------------------------------------------------
    def promotable(self) -> Path:
        """The package to promote; ValueError when no shadow runs or it is not fit."""
        if self.runner is None:
            raise ValueError("no shadow model loaded (set model.shadow, or the store's shadow link)")
        return self.runner.promotable()

    def wait_idle(self, timeout: float) -> bool:
        return self.runner.wait_idle(timeout) if self.runner is not None else True
