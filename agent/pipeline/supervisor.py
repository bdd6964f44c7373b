"""Watches the pipeline from the main thread: stuck stages, liveness, and what systemd is told.

A capture read or an inference call that does not return within its deadline
marks the agent degraded, is reported, and its stage is restarted (at most
``MAX_RESTARTS`` times in ``RESTART_WINDOW_S``; beyond that the agent exits so
systemd restarts the whole process). The systemd watchdog is fed only while
frames are flowing, so a stalled pipeline is restarted by the service manager.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from agent import events
from agent.errors import AgentError
from agent.events import EventSink
from agent.model.loaded import LoadedModel
from agent.pipeline.runner import Pipeline
from agent.pipeline.stats import RateMeter
from agent.sdnotify import Notifier
from agent.threadnames import name_os_threads

log = structlog.get_logger(__name__)

MAX_RESTARTS = 3
RESTART_WINDOW_S = 600.0
STATUS_EVERY_S = 5.0


class Supervisor:
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        notifier: Notifier,
        emit: EventSink,
        reload_model: Callable[[str], LoadedModel],
        camera_state: Callable[[], str],
    ) -> None:
        self.p = pipeline
        self.notifier = notifier
        self._emit = emit
        self._reload = reload_model
        self._camera_state = camera_state
        cam = pipeline.cfg.camera
        self._hang = {"infer": pipeline.cfg.inference.hang_timeout_s, "capture": cam.read_timeout_s * 2 + 1.0}
        # Frames count as flowing while one was published within this window.
        self.stall_s = max(2.0, 5.0 / cam.fps)
        self._restarts: dict[str, deque[float]] = {"infer": deque(), "capture": deque()}
        self.degraded: str | None = None
        self.ready = False
        self._next_status = 0.0
        self._next_ping = 0.0
        self.fps = RateMeter()

    def tick(self) -> None:
        """One look at the pipeline; called a few times a second."""
        now = time.monotonic()
        self._check_stuck("infer", self.p.infer_started, now)
        if self._camera_state() == "online":  # an offline camera is reconnecting, not stuck
            self._check_stuck("capture", self.p.capture_started, now)
        flowing = self.flowing(now)
        if flowing and self.degraded and self.p.infer_started is None and self.p.capture_started is None:
            log.info("agent_recovered", was=self.degraded)
            self.degraded = None
        if flowing and not self.ready:
            self.ready = True
            self.notifier.ready(self.status_line())
            log.info("agent_ready", model=self.p.slot.model.version)
        interval = self.notifier.watchdog_interval_s
        if flowing and interval is not None and now >= self._next_ping:
            self.notifier.watchdog()
            self._next_ping = now + min(interval, 1.0)
        if now >= self._next_status:
            name_os_threads()  # threads started since (a restarted stage, a reconnect) get their names
            self.fps.update(self.p.counters.inspected)
            self.notifier.status(self.status_line())
            self._next_status = now + STATUS_EVERY_S

    def flowing(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.p.cfg.camera.mode == "trigger":
            return self.p.infer_started is None or now - self.p.infer_started < self._hang["infer"]
        return self.p.last_inspected > 0 and now - self.p.last_inspected < self.stall_s

    def status_line(self) -> str:
        m = self.p.slot.model
        c = self.p.counters
        state = f"degraded ({self.degraded})" if self.degraded else "ok"
        return (
            f"{state}; camera {self._camera_state()}; {self.fps.rate:.1f} fps; model {m.name} {m.version}; "
            f"inspected {c.inspected}, defects {c.defects}, stale {c.stale}, over budget {c.over_budget}"
        )

    def _check_stuck(self, stage: str, started: float | None, now: float) -> None:
        if started is None or now - started < self._hang[stage]:
            return
        stuck_s = now - started
        self.degraded = f"{stage} stuck"
        log.error("stage_stuck", stage=stage, seconds=round(stuck_s, 1))
        self._emit(events.stage_stuck(stage, stuck_s, self._hang[stage]))
        history = self._restarts[stage]
        while history and now - history[0] > RESTART_WINDOW_S:
            history.popleft()
        if len(history) >= MAX_RESTARTS:
            self.p.fail(
                AgentError(f"{stage} stage stuck {len(history) + 1} times in {RESTART_WINDOW_S:.0f} s")
            )
            return
        history.append(now)
        try:
            if stage == "infer":
                self.p.slot.replace_hung(self._reload(str(self.p.slot.model.package.root)))
            self.p.restart_stage(stage)
        except AgentError as exc:
            self.p.fail(exc)
            return
        self._emit(events.stage_restarted(stage))

    def health(self) -> dict[str, Any]:
        return {"degraded": self.degraded, "ready": self.ready, "flowing": self.flowing()}
