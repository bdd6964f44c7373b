"""Frame observers: parts that see every inspected frame (sampler, drift, the swap watch).

Like picamera2's encoder → outputs, the publish stage fans each frame out to a list of
:class:`FrameObserver`; the base class is a valid observer that does nothing, so a part
overrides only the hooks it needs and the composition root builds a plain list.

Observers are side work: a bug in one must never stop inspection. :class:`Observers`
puts an error boundary around every call: an exception is logged once per exception
type, counted (and shown in the health report), and after ``max_failures`` failures in
a row the observer is disabled with an ``observer_disabled`` event; the frame is
published and the line goes on either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

import structlog

from agent import events
from agent.capture.base import Frame
from agent.events import EventSink
from agent.model.result import InferenceResult
from agent.observer import FrameObserver
from agent.protocol.payloads import ModelSummary, ResultPayload

if TYPE_CHECKING:
    from agent.pipeline.swap import ModelSlot

log = structlog.get_logger(__name__)

MAX_FAILURES = 10  # failures in a row before an observer is disabled


class ObserverHealth(TypedDict):
    """The ``observers`` entries of the health report."""

    failures: int
    disabled: bool
    errors: list[str]  # the exception types seen


@dataclass(slots=True)
class _Guarded:
    observer: FrameObserver
    failures: int = 0
    in_a_row: int = 0
    disabled: bool = False
    kinds: set[str] = field(default_factory=set)


class Observers:
    """The observer list with an error boundary around every call (see the module docstring)."""

    def __init__(
        self, observers: Iterable[FrameObserver], *, emit: EventSink, max_failures: int = MAX_FAILURES
    ) -> None:
        self._all = [_Guarded(o) for o in observers]
        self._emit = emit
        self._max = max_failures

    def observe(self, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        for g in self._all:
            if not g.disabled:
                self._call(g, g.observer.observe, frame, result, payload)

    def failed(self, frame: Frame, model: ModelSummary, error: str) -> None:
        for g in self._all:
            if not g.disabled:
                self._call(g, g.observer.failed, frame, model, error)

    def tick(self) -> None:
        for g in self._all:
            if not g.disabled:
                self._call(g, g.observer.tick)

    def close(self, timeout: float) -> None:
        """Every observer gets its chance to finish, a disabled one too (its queued work is not its bug)."""
        for g in self._all:
            self._call(g, g.observer.close, timeout)

    def section(self, name: str) -> dict[str, Any] | None:
        """The health section of the observer called ``name`` (None when there is none)."""
        for g in self._all:
            if g.observer.name == name:
                try:
                    return g.observer.health()
                except Exception as exc:  # the same boundary: health goes out without this section
                    self._failed(g, exc)
        return None

    def health(self) -> dict[str, ObserverHealth]:
        return {
            g.observer.name: ObserverHealth(failures=g.failures, disabled=g.disabled, errors=sorted(g.kinds))
            for g in self._all
        }

    def _call(self, g: _Guarded, hook: Callable[..., object], *args: Any) -> None:
        try:
            hook(*args)
        except Exception as exc:  # the boundary: an observer's bug is counted, never raised into the line
            self._failed(g, exc)
        else:
            g.in_a_row = 0

    def _failed(self, g: _Guarded, exc: Exception) -> None:
        g.failures += 1
        g.in_a_row += 1
        kind = type(exc).__name__
        if kind not in g.kinds:
            g.kinds.add(kind)
            log.exception("observer_failed", observer=g.observer.name, error_type=kind)
        if g.in_a_row >= self._max and not g.disabled:
            g.disabled = True
            log.error("observer_disabled", observer=g.observer.name, failures=g.in_a_row)
            self._emit(events.observer_disabled(g.observer.name, g.in_a_row, f"{kind}: {exc}"))


class SwapWatch(FrameObserver):
    """Feeds the model slot's watch of a freshly swapped-in model (rollback on errors or overrun)."""

    name = "swap_watch"

    def __init__(self, slot: ModelSlot) -> None:
        self._slot = slot

    def observe(self, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        self._slot.observe(payload["model"], ok=True, over_budget=payload["over_budget"])

    def failed(self, frame: Frame, model: ModelSummary, error: str) -> None:
        self._slot.observe(model, ok=False, over_budget=False)
