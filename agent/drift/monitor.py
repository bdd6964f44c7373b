"""Data drift on the device: window tests against the model's reference, with hysteresis.

The publish stage calls :meth:`DriftMonitor.observe` for every inspected frame (a few
array stores). Full windows go through a small deque to :meth:`DriftMonitor.poll`,
which the main loop calls (through the health reporter's tick), so the tests never
run on the inspection thread. An alarm is raised after ``raise_after`` drifting
windows in a row and cleared after ``clear_after`` clean ones: one event each way on
``.../drift`` (QoS 1, through the outbox), and ``on_drift(active)`` switches the
sampler's drift policy.

The reference is the manifest's ``reference`` block, or with ``drift.baseline: learn`` one
learned from the line's first windows on each model (:mod:`agent.drift.baseline`).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from agent.capture.base import Frame
from agent.config.observers import DriftConfig
from agent.config.schema import AgentConfig
from agent.drift import baseline
from agent.drift.baseline import Learner
from agent.drift.reference import Reference, parse_reference
from agent.drift.window import Verdict, Window, WindowRecorder, evaluate, recorder_for, top1
from agent.errors import ModelError
from agent.model.loaded import LoadedModel
from agent.model.result import InferenceResult
from agent.observer import FrameObserver
from agent.protocol.payloads import ModelSummary, ResultPayload, envelope, same_model
from agent.protocol.topics import Topics
from agent.publish import Priority, Sink

log = structlog.get_logger(__name__)

_PENDING_MAX = 8  # full windows waiting for poll(); older ones are dropped (and counted) beyond that


class DriftMonitor(FrameObserver):
    """A frame observer for the pipeline; see the module docstring.

    A model is known by its version and sha256 (the payload's ``model``), so a fresh instance of
    the same package (a restarted inference thread) keeps the history and another model resets it.
    """

    name = "drift"

    def __init__(
        self,
        cfg: AgentConfig,
        *,
        model: Callable[[], LoadedModel],
        sink: Sink,
        topics: Topics,
        on_drift: Sequence[Callable[[bool], None]] = (),
    ) -> None:
        self._cfg: DriftConfig = cfg.drift
        self._agent = cfg
        self._model = model  # the slot's current model: its reference replaces ours after a swap
        self._sink = sink
        self._topic = topics.drift
        self._on_drift = list(on_drift)
        # Full windows for poll() (without a reference while a baseline is learned); None marks a
        # model swap (the hysteresis starts over).
        self._pending: deque[tuple[Window, Reference | None, ModelSummary] | None] = deque(
            maxlen=_PENDING_MAX
        )
        self._baseline_path = cfg.state_dir / baseline.FILE
        self._baseline_topic = f"{topics.drift}/baseline"
        self._learner: Learner | None = None
        self._labels: tuple[str, ...] = ()
        self.baseline_state = "manifest"  # manifest | learning | learned | failed
        self._summary: ModelSummary | None = None
        self._ref: Reference | None = None
        self._index: dict[str, int] = {}
        self._other = 0
        self._recorder: WindowRecorder | None = None
        self.active = False
        self.windows = 0
        self.drifting_windows = 0
        self.last: Verdict | None = None
        self._streak = 0  # consecutive windows disagreeing with the current state
        self._use(model())

    # -- the publish thread -------------------------------------------------------------
    def observe(self, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        if self._summary is None or not same_model(payload["model"], self._summary):
            self._use(self._model())
            if self._summary is None or not same_model(payload["model"], self._summary):
                return  # a frame of the previous model, published just after a swap
        recorder = self._recorder
        if recorder is None:
            return
        label, confidence = top1(result)
        window = recorder.add(
            confidence, self._index.get(label, self._other), frame.image, frame.ts_ms, frame.view
        )
        if window is not None:
            assert self._summary is not None
            self._pending.append((window, self._ref, self._summary))

    def _use(self, model: LoadedModel) -> None:
        """Take a (new) model's reference, or start learning one; restart the window. Once per model."""
        if self._summary is not None:
            self._pending.append(None)
        self._summary = model.summary
        self._labels = tuple(model.package.labels)
        self._ref = self._recorder = self._learner = None
        if not self._cfg.enabled:
            return
        block = model.package.manifest.reference
        if self._cfg.baseline == "learn":
            block = baseline.load(self._baseline_path, model.summary)
            if block is None:
                self._learner = Learner(self._labels, self._cfg.learn_windows)
                self.baseline_state = "learning"
                self._start_window(model, self._labels)
                log.info("drift_baseline_learning", model=model.name, windows=self._cfg.learn_windows)
                return
            self.baseline_state = "learned"
        if block is None:
            log.info("drift_off", reason="model has no reference block", model=model.name)
            return
        try:
            ref = parse_reference(block, self._labels, self._cfg.class_mix or None)
        except ModelError as exc:
            log.warning("drift_off", reason=str(exc), model=model.name)
            return
        self._ref = ref
        self._start_window(model, ref.labels)

    def _start_window(self, model: LoadedModel, labels: tuple[str, ...]) -> None:
        self._index = {k: i for i, k in enumerate(labels)}
        self._other = len(labels)
        self._recorder = recorder_for(model.package.manifest.input, self._cfg)

    @property
    def enabled(self) -> bool:
        return self._ref is not None

    # -- the main loop --------------------------------------------------------------------
    def tick(self) -> None:
        self.poll()

    def health(self) -> dict[str, Any]:
        return self.state()

    def poll(self) -> list[Verdict]:
        """Test every full window waiting; raise or clear the alarm. Returns the verdicts."""
        verdicts = []
        while self._pending:
            item = self._pending.popleft()
            if item is None:
                self._model_swapped()
                continue
            window, ref, summary = item
            ref = ref or self._learn(window, summary)
            if ref is None:
                continue
            verdict = evaluate(window, ref, self._cfg)
            verdicts.append(verdict)
            self._account(verdict, summary)
        return verdicts

    def _learn(self, window: Window, summary: ModelSummary) -> Reference | None:
        """One more window for the baseline; the reference once it is learned (then stored, published)."""
        learner = self._learner
        if learner is None or self._summary is None or not same_model(summary, self._summary):
            return self._ref  # learned meanwhile (a window queued before), or a previous model's window
        block = learner.add(window)
        if block is None:
            return None
        self._learner = None
        try:
            ref = parse_reference(block, self._labels, self._cfg.class_mix or None)
        except ModelError as exc:
            self.baseline_state = "failed"
            log.warning("drift_off", reason=f"learned baseline unusable: {exc}", model=summary["name"])
            return None
        self._ref, self.baseline_state = ref, "learned"
        doc = baseline.document(summary, block, learner.seen)
        log.info(
            "drift_baseline_learned", model=summary["name"], windows=learner.seen, frames=block["samples"]
        )
        try:
            baseline.save(self._baseline_path, doc)
        except OSError as exc:  # it still holds until the next restart
            log.warning("drift_baseline_not_saved", path=str(self._baseline_path), error=str(exc))
        payload = json.dumps({**envelope(self._agent.device), **doc}, separators=(",", ":")).encode()
        self._sink.publish(
            self._baseline_topic, payload, qos=self._agent.mqtt.qos, priority=Priority.EVENT, retain=True
        )
        return None  # the learning windows themselves are not tested

    def _model_swapped(self) -> None:
        """A new model starts a new history; without a reference an active alarm is cleared now.

        A baseline learned for the previous model is cleared: the new one learns its own."""
        self._streak = 0
        if self._learner is not None:
            self._baseline_path.unlink(missing_ok=True)
        if self.active and not self.enabled and self.last is not None and self._summary is not None:
            self.active = False
            self._announce(self.last, self._summary)

    def _account(self, verdict: Verdict, summary: ModelSummary) -> None:
        self.windows += 1
        self.drifting_windows += verdict.drifting
        self.last = verdict
        if verdict.drifting != self.active:
            self._streak += 1
        else:
            self._streak = 0
        needed = self._cfg.clear_after if self.active else self._cfg.raise_after
        if self._streak >= needed:
            self._streak = 0
            self.active = not self.active
            self._announce(verdict, summary)

    def _announce(self, verdict: Verdict, summary: ModelSummary) -> None:
        state = "raised" if self.active else "cleared"
        log.warning("drift_" + state, reasons=list(verdict.reasons), window=verdict.window.index)
        self._sink.publish(
            self._topic,
            json.dumps(self._payload(state, verdict, summary), separators=(",", ":")).encode(),
            qos=self._agent.mqtt.qos,
            priority=Priority.EVENT,
        )
        for listener in self._on_drift:
            listener(self.active)

    def _payload(self, state: str, verdict: Verdict, summary: ModelSummary) -> dict[str, Any]:
        device, c = self._agent.device, self._cfg
        reasons = ", ".join(verdict.reasons) or "none"
        return {
            **envelope(device),
            "state": state,
            "active": self.active,
            "message": f"data drift {state} (drifting: {reasons})",
            "reasons": list(verdict.reasons),
            "model": {"name": summary["name"], "version": summary["version"], "sha256": summary["sha256"]},
            "window": verdict.window_dict(),
            "statistics": verdict.as_dict(),
            "thresholds": {
                "ks_p_value": c.ks_p_value,
                "ks_min_statistic": c.ks_min_statistic,
                "psi": c.psi_threshold,
                "z": c.z_threshold,
                "raise_after": c.raise_after,
                "clear_after": c.clear_after,
            },
        }

    def state(self) -> dict[str, Any]:
        """The ``drift`` object of the health report."""
        out: dict[str, Any] = {
            "enabled": self.enabled,
            "active": self.active,
            "windows": self.windows,
            "drifting_windows": self.drifting_windows,
            "window_size": self._cfg.window,
            "baseline": {
                "mode": self._cfg.baseline,
                "state": self.baseline_state,
                "windows": self._learner.seen if self._learner else None,
                "learn_windows": self._cfg.learn_windows,
            },
        }
        if self.last is not None:
            out["last"] = {
                "reasons": list(self.last.reasons),
                "window": self.last.window_dict(),
                "statistics": self.last.as_dict(),
            }
        return out
