"""Feeding a drift monitor a simulated line: windows drawn from a pool of inspected frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.capture.base import Frame
from agent.drift.monitor import DriftMonitor
from agent.model.result import InferenceResult
from agent.protocol.payloads import ModelSummary
from scripts.bench_drift import Observed


def feed(
    monitor: DriftMonitor,
    summary: ModelSummary,
    pool: list[Observed],
    windows: int,
    labels: Sequence[str] = (),
) -> list[bool]:
    """``windows`` full windows of frames drawn from ``pool`` (same draw every call), each polled;
    the drifting flag of every window tested. ``labels`` fills the other scores with 0."""
    rng = np.random.default_rng(8)
    size = monitor.state()["window_size"]
    drifting = []
    for w in range(windows):
        for k, i in enumerate(rng.integers(len(pool), size=size)):
            o = pool[i]
            frame = Frame(o.image, w * size + k, 1_000 * (w * size + k), 0.0)
            scores = {label: 0.0 for label in labels} | {o.label: o.confidence}
            result = InferenceResult(o.label, o.confidence, scores, o.label != "ok")
            monitor.observe(frame, result, {"model": summary})  # type: ignore[typeddict-item]
        drifting += [v.drifting for v in monitor.poll()]
    return drifting
