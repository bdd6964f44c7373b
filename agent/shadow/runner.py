"""The shadow model: a candidate run on the same live frames as the active one, never in its way.

A frame observer (see :mod:`agent.observer`). On the publish thread, after a frame's result
went out, :meth:`ShadowRunner.observe` decides in a few comparisons whether the shadow may
run on it, and if so hands a copy of the frame to the shadow's own thread. It is skipped
(and counted) when:

* ``shadow_busy``: the shadow is still running on an earlier frame (one frame at a time);
* ``pipeline_busy``: the active model is running on the next frame right now;
* ``no_headroom``: the shadow's expected run does not fit in the time the budget leaves free
  (the frame interval, capped by the latency budget, minus the active model's own time).

So the active model never waits for the shadow: nothing on the publish thread blocks, the shadow
thread runs at a lower CPU priority (``shadow.nice``), and a frame is handed over only when the
line is idle. The shadow's result is compared with the active one's (same label, same defect
verdict) and the frames where they differ are offered to the sampler's ``disagreement`` policy,
back on the publish thread (the sampler is not thread-safe). A shadow that fails to load, keeps
failing, or is slower than ``shadow.max_latency_ms`` stops: the agent runs on, health and an
event say why. When the active model becomes the shadow's package (``model promote``) the
shadow has nothing left to compare and stands down as ``promoted``.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from agent import events
from agent.capture.base import Frame
from agent.config.observers import ShadowConfig
from agent.events import EventSink
from agent.model.loaded import LoadedModel
from agent.model.result import InferenceResult
from agent.observer import FrameObserver
from agent.protocol.payloads import ModelSummary, ResultPayload, same_model
from agent.shadow.tally import Tally

log = structlog.get_logger(__name__)

# Where the disagreeing frames go: (policy, frame, active result, payload); Sampler.offer has this shape.
Offer = Callable[[str, Frame, InferenceResult, ResultPayload], None]
Publish = Callable[[dict[str, Any]], None]

PROBE_RUNS = 5  # timed runs after loading: the first latency estimate
RECENT = 20  # runs in the rolling median that decides "too slow" on the line
STOPPED = ("failed", "too_slow", "promoted", "closed")


@dataclass(slots=True)
class _Job:
    frame: Frame
    result: InferenceResult
    payload: ResultPayload


class ShadowRunner(FrameObserver):
    """See the module docstring. ``busy`` says whether the active model is running right now;
    ``budget_ms`` is the active model's latency budget."""

    name = "shadow"

    def __init__(
        self,
        cfg: ShadowConfig,
        *,
        path: Path,
        load: Callable[[str], LoadedModel],
        busy: Callable[[], bool],
        budget_ms: Callable[[], float],
        publish: Publish,
        emit: EventSink,
        offer: Sequence[Offer] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = cfg
        self.path = path
        self._load = load
        self._busy = busy
        self._budget_ms = budget_ms
        self._publish = publish
        self._emit = emit
        self._offer = list(offer)
        self._clock = clock
        self.state = "loading"
        self.reason = ""
        self.model: LoadedModel | None = None
        self.summary: ModelSummary | None = None
        self.tally = Tally()
        self.skipped: Counter[str] = Counter()  # publish thread only
        self.errors = 0
        self._in_a_row = 0
        self._expected_ms = 0.0  # the shadow's expected run (probe, then a moving average)
        self._recent: deque[float] = deque(maxlen=RECENT)
        self._interval_ms = 0.0  # moving average of the time between published frames
        self._last_mono: float | None = None
        self._active: ModelSummary | None = None
        self._job: _Job | None = None  # set by the publish thread, cleared by the shadow thread when done
        self._offers: deque[tuple[Frame, InferenceResult, ResultPayload]] = deque(maxlen=64)
        self._wake = threading.Event()
        self._closing = False
        self._window_started = clock()
        self._thread = threading.Thread(target=self._work, name="shadow", daemon=True)
        self._thread.start()

    # -- the publish thread ---------------------------------------------------------------
    def observe(self, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        """Hand the frame to the shadow when the line leaves it time; never blocks."""
        while self._offers:
            self._hand_offer(*self._offers.popleft())
        if self.state != "running":
            return
        self._track(frame, payload)
        if self._job is not None:
            self.skipped["shadow_busy"] += 1
        elif self._busy():
            self.skipped["pipeline_busy"] += 1
        elif self._expected_ms * self._cfg.headroom > self._free_ms(payload):
            self.skipped["no_headroom"] += 1
        else:
            # A copy: a capture source may reuse its buffer for the next frame.
            self._job = _Job(dataclasses.replace(frame, image=frame.image.copy(), view=None), result, payload)
            self._wake.set()

    def _track(self, frame: Frame, payload: ResultPayload) -> None:
        """The frame interval, and the active model: a new one (or the shadow itself) resets the figures."""
        if self._last_mono is not None:
            self._interval_ms = _average(self._interval_ms, (frame.mono - self._last_mono) * 1000.0)
        self._last_mono = frame.mono
        active = payload["model"]
        if self._active is not None and same_model(active, self._active):
            return
        self._active = active
        self.tally.reset()
        if self.summary is not None and same_model(active, self.summary):
            self._stop("promoted", "the shadow's package is now the active model")

    def _free_ms(self, payload: ResultPayload) -> float:
        """The time the budget leaves free after this frame: interval (capped by the budget) minus ours."""
        lat = payload["latency_ms"]
        used = lat.get("preprocess", 0.0) + lat.get("infer", 0.0) + lat.get("postprocess", 0.0)
        period = min(self._interval_ms, self._budget_ms()) if self._interval_ms else self._budget_ms()
        return period - used

    def _hand_offer(self, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        for offer in self._offer:
            offer("disagreement", frame, result, payload)

    # -- the shadow thread ----------------------------------------------------------------
    def _work(self) -> None:
        _lower_priority(self._cfg.nice)
        if not self._start():
            return
        while not self._closing and self.state == "running":
            self._wake.wait(0.5)
            self._wake.clear()
            job = self._job
            if job is None:
                continue
            try:
                self._run(job)
            finally:
                self._job = None
        self._unload()

    def _start(self) -> bool:
        """Load the package and time a few runs; a failure or a slow model stops here, reported."""
        try:
            model = self._load(str(self.path))
        except Exception as exc:  # any failure to load leaves the active model alone; reported once
            self._stop("failed", f"cannot load {self.path}: {exc}")
            return False
        self.model, self.summary = model, model.summary
        blank = np.zeros(
            (model.package.manifest.input.height, model.package.manifest.input.width, 3), np.uint8
        )
        try:
            timings = [_timed(model, blank)[1] for _ in range(PROBE_RUNS)]
        except Exception as exc:  # a model that cannot run a blank frame is no candidate
            self._stop("failed", f"the shadow model failed on a blank frame: {exc}")
            self._unload()
            return False
        self._expected_ms = statistics.median(timings)
        if self._too_slow(self._expected_ms):
            self._unload()
            return False
        self.state, self.reason = "running", f"probe {self._expected_ms:.1f} ms"
        log.info(
            "shadow_started", name=model.name, version=model.version, expected_ms=round(self._expected_ms, 2)
        )
        self._emit(events.shadow("running", self.reason, str(self.path), model.name, model.version))
        return True

    def _run(self, job: _Job) -> None:
        assert self.model is not None
        try:
            shadow, ms = _timed(self.model, job.frame.image)
        except Exception as exc:  # one frame's failure is counted; max_errors in a row stop the shadow
            self.errors += 1
            self._in_a_row += 1
            if self._in_a_row >= self._cfg.max_errors:
                self._stop("failed", f"{self._in_a_row} failures in a row, last: {type(exc).__name__}: {exc}")
            return
        self._in_a_row = 0
        self._expected_ms = _average(self._expected_ms, ms)
        self._recent.append(ms)
        active = job.result
        self.tally.add(active.label, shadow.label, active.is_defect, shadow.is_defect, ms)
        if shadow.label != active.label:
            self._offers.append((job.frame, active, job.payload))
        if len(self._recent) == RECENT:
            self._too_slow(statistics.median(self._recent))

    def _too_slow(self, ms: float) -> bool:
        limit = self._cfg.max_latency_ms or self._budget_ms()
        if ms <= limit:
            return False
        self._stop("too_slow", f"median run {ms:.1f} ms over the {limit:.1f} ms limit")
        return True

    def _stop(self, state: str, reason: str) -> None:
        if self.state in STOPPED:
            return
        name, version = (self.summary["name"], self.summary["version"]) if self.summary else (None, None)
        log.warning("shadow_stopped", state=state, reason=reason, path=str(self.path))
        self._emit(events.shadow(state, reason, str(self.path), name, version))
        self.state, self.reason = state, reason  # last: whoever sees the state also finds the event

    def _unload(self) -> None:
        model, self.model = self.model, None
        if model is not None:
            model.close()

    # -- the main loop --------------------------------------------------------------------
    def tick(self) -> None:
        """Publish the window's summary on ``{root}/shadow`` every ``shadow.window_s``."""
        now = self._clock()
        if now - self._window_started < self._cfg.window_s:
            return
        seconds, self._window_started = now - self._window_started, now
        self._publish(self.window(self.tally.take_window(), seconds))

    def window(self, figures: dict[str, Any], seconds: float) -> dict[str, Any]:
        """The ``{root}/shadow`` document: the window's figures and the shadow's state."""
        return {**self.health(), "window": {"seconds": round(seconds, 1), **figures}}

    def health(self) -> dict[str, Any]:
        """The ``shadow`` object of the health report (see health.schema.json)."""
        return {
            "state": self.state,
            "reason": self.reason,
            "path": str(self.path),
            "model": _model(self.summary),
            "active": _model(self._active),
            "expected_ms": round(self._expected_ms, 2),
            "errors": self.errors,
            "skipped": {k: self.skipped[k] for k in ("shadow_busy", "pipeline_busy", "no_headroom")},
            **self.tally.totals(),
        }

    def promotable(self) -> Path:
        """The package to promote; raises ValueError unless the shadow runs (or ran) cleanly."""
        if self.summary is None or self.state in ("failed", "too_slow"):
            raise ValueError(f"the shadow model is {self.state}: {self.reason or 'not loaded yet'}")
        return self.model.package.root if self.model is not None else self.path

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the shadow has no frame in hand (tools and tests); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._job is not None or self.state == "loading":
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    def close(self, timeout: float) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        if self.state not in STOPPED:
            self.state = "closed"


def _timed(model: LoadedModel, image: np.ndarray) -> tuple[InferenceResult, float]:
    t0 = time.monotonic()
    result = model.infer(image)
    return result, (time.monotonic() - t0) * 1000.0


def _average(current: float, value: float, weight: float = 0.1) -> float:
    return value if current <= 0 else current + weight * (value - current)


def _model(summary: ModelSummary | None) -> dict[str, str] | None:
    if summary is None:
        return None
    return {"name": summary["name"], "version": summary["version"], "sha256": summary["sha256"]}


def _lower_priority(nice: int) -> None:
    """Raise this thread's nice value (Linux: per thread); runtime threads it starts inherit it."""
    if nice <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (
        AttributeError,
        OSError,
    ) as exc:  # not Linux, or not allowed: the gate still keeps it out of the way
        log.info("shadow_priority_unchanged", error=str(exc))
