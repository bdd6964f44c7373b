"""A health reporter over real counters and latency windows, publishing into a recording sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import AgentConfig, load_config
from agent.health.report import HealthReporter
from agent.observer import FrameObserver
from agent.pipeline.observers import Observers
from agent.pipeline.stats import Counters, LatencyWindow
from agent.protocol.topics import Topics
from agent.testing import RecordingSink


@dataclass
class Line:
    """The pipeline's figures (the real Counters and LatencyWindow) without a camera."""

    counters: Counters = field(default_factory=Counters)
    latency: LatencyWindow = field(default_factory=LatencyWindow)

    def scheduling(self) -> dict[str, str]:
        return {"preprocess": "inference", "priority": "watching"}


@dataclass
class Watch:
    degraded: str | None = None
    ready: bool = True

    def health(self) -> dict[str, Any]:
        return {"degraded": self.degraded, "ready": self.ready, "flowing": self.ready}


class SamplerFigures(FrameObserver):
    """Fixed figures as the sampler's health section (the real sampler is tested in tests/unit/sampling)."""

    name = "sampler"

    def __init__(self, figures: dict[str, Any]) -> None:
        self.figures = figures

    def health(self) -> dict[str, Any]:
        return dict(self.figures)


PUBLISHER_STATS = {
    "connected": True,
    "reconnects": 2,
    "qos0_sent": 5,
    "qos0_dropped": 1,
    "last_error": None,
    "outbox_depth": 3,
    "outbox_bytes": 900,
    "inflight": 1,
    "sent": 10,
    "rejected": 0,
    "dropped": {"sample": 4, "result": 0, "event": 0, "defect": 0},
    "expired": 0,
    "queued": 0,
}
STATUS = {
    "agent_version": "0.1.0",
    "device": "cam-01",
    "model": {"name": "demo", "version": "1.0.0", "sha256": "ab" * 32, "runtime": "onnx"},
    "camera": "online",
    "mode": "continuous",
    "since": 0,
}


@dataclass
class Rig:
    cfg: AgentConfig
    line: Line
    watch: Watch
    sink: RecordingSink
    reporter: HealthReporter


@pytest.fixture
def rig(tmp_path: Path) -> Callable[..., Rig]:
    def make(sampler: dict[str, Any] | None = None, **health: Any) -> Rig:
        doc = {
            "device": {"id": "cam-01", "site": "s", "line": "l"},
            "camera": {"source": "synthetic:"},
            "model": {"path": "model"},
            "state": {"dir": str(tmp_path / "state")},
            "health": {"interval_s": 1.0, **health},
        }
        path = tmp_path / "agent.yaml"
        path.write_text(yaml.safe_dump(doc))
        cfg = load_config(path)
        line, watch, sink = Line(), Watch(), RecordingSink()
        observed = [SamplerFigures(sampler)] if sampler is not None else []
        reporter = HealthReporter(
            cfg,
            pipeline=line,
            supervisor=watch,
            sink=sink,
            topics=Topics.from_config(cfg),
            publisher_stats=lambda: dict(PUBLISHER_STATS),
            status=lambda: dict(STATUS),
            observers=Observers(observed, emit=sink),
        )
        return Rig(cfg, line, watch, sink, reporter)

    return make
