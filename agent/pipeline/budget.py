"""Sustained-overrun detection and the declared policy (skip or fallback).

Fed one boolean per inspected frame (over budget or not). When more than
``overrun_ratio`` of the last ``overrun_window`` frames overran, a warning event is
raised once and the policy engages; it releases, with a second event, once the
pipeline is back inside its budget.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from agent import events
from agent.config.schema import InferenceConfig
from agent.events import EventSink


class OverrunMonitor:
    def __init__(
        self,
        cfg: InferenceConfig,
        emit: EventSink,
        *,
        fallback: Callable[[bool], None] | None = None,
        fallback_hold_s: float = 60.0,
    ) -> None:
        self.cfg = cfg
        self._emit = emit
        self._fallback = fallback  # called with True to switch to the fallback model, False to switch back
        self._hold_s = fallback_hold_s
        self._window: deque[bool] = deque(maxlen=cfg.overrun_window)
        self.state = "normal"  # normal | overrun | skip | fallback
        self._since = 0.0
        self.engagements = 0

    @property
    def skip_every(self) -> int:
        """1 when every frame is inspected; N while the skip policy is engaged."""
        return self.cfg.skip_every if self.state == "skip" else 1

    def observe(self, over_budget: bool) -> None:
        self._window.append(over_budget)
        if len(self._window) < self._window.maxlen:  # type: ignore[operator]
            return
        ratio = sum(self._window) / len(self._window)
        if self.state == "normal" and ratio > self.cfg.overrun_ratio:
            self._engage(ratio)
        elif self._recovered(ratio):
            self._release(ratio)

    def _recovered(self, ratio: float) -> bool:
        """Skip/overrun: well inside budget again. Fallback: the hold time is over, try the primary again."""
        if self.state == "fallback":
            return time.monotonic() - self._since >= self._hold_s
        return self.state != "normal" and ratio <= self.cfg.overrun_ratio / 2

    def _engage(self, ratio: float) -> None:
        policy = self.cfg.overrun_policy
        if policy == "fallback" and self._fallback is None:
            policy = "none"
        self.state = {"none": "overrun", "skip": "skip", "fallback": "fallback"}[policy]
        self._since = time.monotonic()
        self.engagements += 1
        self._window.clear()
        self._emit(events.overrun(ratio, self.cfg.overrun_window, policy))
        if self.state == "fallback" and self._fallback is not None:
            self._fallback(True)

    def _release(self, ratio: float) -> None:
        was = self.state
        self.state = "normal"
        self._window.clear()
        if was == "fallback" and self._fallback is not None:
            self._fallback(False)
        self._emit(events.overrun_cleared(ratio, was))
