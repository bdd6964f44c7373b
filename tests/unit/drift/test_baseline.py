"""``drift.baseline: learn``: the first windows on a model become its reference, on a real line mix.

The demo model on the ``synthetic:`` camera's renders with 80 % good parts (scripts/bench_drift.py),
through the real DriftMonitor: learned after N windows (stored, published, reused after a
restart), cleared on a model swap, and a lighting change after learning still alarms.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.config.schema import ModelConfig
from agent.drift import baseline
from agent.drift.monitor import DriftMonitor
from agent.model.loaded import LoadedModel, load_model
from agent.protocol.topics import Topics
from agent.testing import RecordingSink
from scripts.bench_drift import Observed, dim_and_flat, line_frames
from tests.support.paths import DEMO_MODEL
from tests.unit.drift.line import feed

pytestmark = pytest.mark.slow
LEARN = 4


@pytest.fixture(scope="module")
def healthy(demo: LoadedModel) -> list[Observed]:
    return line_frames(demo, 31, 600, 0.8)


def demo_v2(tmp_path: Path) -> LoadedModel:
    """The demo package as another version: what the slot holds after a swap."""
    root = tmp_path / "demo-2.0.0"
    shutil.copytree(DEMO_MODEL, root)
    manifest = root / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1.0.0", "version: 2.0.0", 1))
    return load_model(str(root), ModelConfig(path=str(root)), warmup=False)


def learning_monitor(
    cfg: AgentConfig, model: Callable[[], object], sink: RecordingSink, calls: list[bool]
) -> DriftMonitor:
    return DriftMonitor(
        cfg,
        model=model,  # type: ignore[arg-type]
        sink=sink,
        topics=Topics.from_config(cfg),
        on_drift=[calls.append],
    )


def test_the_first_windows_become_the_reference_stored_and_published(
    agent_config: Callable[..., AgentConfig], demo: LoadedModel, healthy: list[Observed]
) -> None:
    cfg = agent_config(DEMO_MODEL, baseline="learn", learn_windows=LEARN)
    sink, calls = RecordingSink(), []
    monitor = learning_monitor(cfg, lambda: demo, sink, calls)
    assert monitor.state()["baseline"] == {
        "mode": "learn",
        "state": "learning",
        "windows": 0,
        "learn_windows": LEARN,
    }
    assert feed(monitor, demo.summary, healthy, LEARN) == []  # learning windows are not tested
    assert monitor.state()["baseline"]["state"] == "learned" and monitor.enabled
    stored = json.loads((cfg.state_dir / baseline.FILE).read_text())
    assert stored["model"]["sha256"] == demo.summary["sha256"] and stored["windows"] == LEARN
    assert stored["reference"]["split"] == "learned" and stored["reference"]["samples"] == LEARN * 250
    assert 0.7 < stored["reference"]["class_mix"]["ok"] < 0.9  # the line's own mix, learned
    (published,) = [m for m in sink.messages if m.topic.endswith("/drift/baseline")]
    assert published.retain and published.json()["reference"] == stored["reference"]
    # Then the healthy line is tested against it: no alarm.
    drifting = feed(monitor, demo.summary, healthy, 12)
    assert len(drifting) == 12 and sum(drifting) <= 1 and calls == []

    # A restart on the same model takes the stored baseline at once.
    again = learning_monitor(cfg, lambda: demo, RecordingSink(), [])
    assert again.state()["baseline"]["state"] == "learned" and again.enabled


def test_a_lighting_change_after_learning_still_alarms_within_two_windows(
    agent_config: Callable[..., AgentConfig], demo: LoadedModel, healthy: list[Observed]
) -> None:
    cfg = agent_config(DEMO_MODEL, baseline="learn", learn_windows=LEARN)
    calls: list[bool] = []
    monitor = learning_monitor(cfg, lambda: demo, RecordingSink(), calls)
    feed(monitor, demo.summary, healthy, LEARN)
    dim = line_frames(demo, 32, 150, 0.8, dim_and_flat)
    assert feed(monitor, demo.summary, dim, 2) == [True, True]
    assert calls == [True]
    assert monitor.last is not None and {"brightness", "contrast"} <= set(monitor.last.reasons)


def test_a_model_swap_clears_the_learned_baseline_and_learns_again(
    agent_config: Callable[..., AgentConfig], demo: LoadedModel, healthy: list[Observed], tmp_path: Path
) -> None:
    cfg = agent_config(DEMO_MODEL, baseline="learn", learn_windows=LEARN)
    current: list[object] = [demo]
    monitor = learning_monitor(cfg, lambda: current[0], RecordingSink(), [])
    feed(monitor, demo.summary, healthy, LEARN)
    path = cfg.state_dir / baseline.FILE
    assert path.is_file() and monitor.enabled

    new = demo_v2(tmp_path)
    current[0] = new
    assert feed(monitor, new.summary, healthy, 1) == []  # the new model learns: nothing is tested
    assert not path.exists(), "the previous model's baseline must be cleared"
    assert monitor.state()["baseline"]["state"] == "learning" and not monitor.enabled
    feed(monitor, new.summary, healthy, LEARN - 1)
    assert json.loads(path.read_text())["model"]["version"] == "2.0.0" and monitor.enabled


def test_a_baseline_learned_for_another_model_is_not_used(tmp_path: Path, demo: LoadedModel) -> None:
    path = tmp_path / baseline.FILE
    baseline.save(path, baseline.document(demo.summary, {"top1_confidence": [0.5, 0.9]}, 3))
    assert baseline.load(path, demo.summary) == {"top1_confidence": [0.5, 0.9]}
    assert baseline.load(path, {**demo.summary, "sha256": "0" * 64}) is None
    path.write_text("{not json")
    assert baseline.load(path, demo.summary) is None
