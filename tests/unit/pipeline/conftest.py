"""Build a real pipeline (real model, real capture source) publishing into a recording sink."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from agent.capture import open_source
from agent.config import AgentConfig, load_config
from agent.model.loaded import load_model
from agent.observer import FrameObserver
from agent.pipeline.runner import Pipeline
from agent.pipeline.supervisor import Supervisor
from agent.pipeline.swap import ModelSlot
from agent.protocol.topics import Topics
from agent.sdnotify import Notifier
from agent.testing import RecordingSink
from tests.support.models import make_package, slow_classifier


@dataclass
class Harness:
    cfg: AgentConfig
    pipeline: Pipeline
    supervisor: Supervisor
    sink: RecordingSink
    slot: ModelSlot

    def run_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.supervisor.tick()
            if condition():
                return True
            time.sleep(0.02)
        return False


def frames_dir(path: Path, n: int, size: tuple[int, int] = (160, 120)) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8)
        cv2.imwrite(str(path / f"{i:04d}.png"), img)
    return path


def slow_package(root: Path, iterations: int, version: str = "1.0.0", budget_ms: float = 50.0) -> Path:
    model = slow_classifier(root.parent / f"{root.name}.onnx", iterations)
    return make_package(
        root,
        model,
        name="slow",
        version=version,
        labels=["ok", "scratch", "hole"],
        width=32,
        height=32,
        budget_ms=budget_ms,
    )


class Builder:
    """Makes harnesses under one directory and stops their pipelines in :meth:`close`; the
    ``build`` fixture is one, and a child process (test_priority) makes its own."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.built: list[Harness] = []

    def __call__(
        self, source: str, package: Path, observers: tuple[FrameObserver, ...] = (), **sections: Any
    ) -> Harness:
        tmp_path = self.tmp_path
        doc: dict[str, Any] = {
            "device": {"id": "cam-01", "site": "s", "line": "l"},
            "camera": {"source": source, "fps": 30, "realtime": False, "loop": False},
            "model": {"path": str(package), "warmup_runs": 1},
            "state": {"dir": str(tmp_path / "state")},
        }
        for key, value in sections.items():
            doc[key] = {**doc.get(key, {}), **value}
        path = tmp_path / f"agent-{len(self.built)}.yaml"
        path.write_text(yaml.safe_dump(doc))
        cfg = load_config(path)
        sink = emit = RecordingSink()
        topics = Topics.from_config(cfg)

        def loader(p: str) -> Any:
            return load_model(p, cfg.model)

        slot = ModelSlot(
            loader(str(package)),
            loader=loader,
            model_path=package,
            state_file=tmp_path / "state" / "model-state.json",
            emit=emit,
            watch_frames=cfg.inference.rollback_frames,
            overrun_ratio=cfg.inference.overrun_ratio,
        )
        if cfg.model.fallback:
            slot.set_fallback(loader(cfg.model.fallback))
        pipeline = Pipeline(
            cfg,
            source_factory=lambda: open_source(cfg.camera, cfg.base_dir),
            slot=slot,
            topics=topics,
            sink=sink,
            emit=emit,
            observers=observers,
            fallback_hold_s=0.5,
        )
        supervisor = Supervisor(
            pipeline,
            notifier=Notifier(None),
            emit=emit,
            reload_model=lambda p: load_model(p, cfg.model, warmup=False),
            camera_state=lambda: "online",
        )
        harness = Harness(cfg, pipeline, supervisor, sink, slot)
        self.built.append(harness)
        return harness

    def close(self) -> None:
        for h in self.built:
            h.pipeline.stop()


@pytest.fixture
def build(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    builder = Builder(tmp_path)
    yield builder
    builder.close()
