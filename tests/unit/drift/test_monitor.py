from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import structlog

from agent.capture.base import Frame
from agent.config import AgentConfig
from agent.drift.monitor import DriftMonitor
from agent.model.loaded import LoadedModel, load_model
from agent.model.result import InferenceResult
from agent.protocol.schema import load_schema
from agent.protocol.topics import Topics
from agent.publish import Priority
from agent.testing import RecordingSink
from tests.unit.drift.conftest import render

SCHEMA = load_schema("drift")
Observed = tuple[np.ndarray, InferenceResult]


@pytest.fixture(scope="module")
def model(ref_package: Path) -> Iterator[LoadedModel]:
    from agent.config.schema import ModelConfig

    m = load_model(str(ref_package), ModelConfig(path=str(ref_package)), warmup=False)
    yield m
    m.close()


def inspect(model: LoadedModel, images: Sequence[np.ndarray]) -> list[Observed]:
    return [(img, model.infer(img)) for img in images]


def feed(monitor: DriftMonitor, model: LoadedModel, observed: Sequence[Observed], windows: int) -> list[bool]:
    """Observe ``windows`` windows of frames drawn from ``observed``; return each window's verdict."""
    rng = np.random.default_rng(5)
    size = monitor.state()["window_size"]
    drifting = []
    for w in range(windows):
        for k, i in enumerate(rng.integers(len(observed), size=size)):
            img, result = observed[i]
            frame = Frame(img, w * size + k, int(time.time() * 1000), time.monotonic())
            monitor.observe(frame, result, {"model": model.summary})
        drifting += [v.drifting for v in monitor.poll()]
    return drifting


def make_monitor(
    cfg: AgentConfig, model: LoadedModel, sink: RecordingSink, calls: list[bool]
) -> DriftMonitor:
    return DriftMonitor(
        cfg, model=lambda: model, sink=sink, topics=Topics.from_config(cfg), on_drift=[calls.append]
    )


@pytest.fixture(scope="module")
def normal(model: LoadedModel) -> list[Observed]:
    return inspect(model, render(2, 300))


@pytest.mark.parametrize("change", [{"darken": 0.55}, {"blur": 2.5}], ids=["darkened", "blurred"])
def test_a_changed_scene_raises_one_alarm_within_two_windows_and_clears_once(
    agent_config: Callable[..., AgentConfig],
    model: LoadedModel,
    normal: list[Observed],
    change: dict[str, float],
) -> None:
    cfg = agent_config(model.package.root, window=250, raise_after=2, clear_after=2)
    sink, calls = RecordingSink(), []
    monitor = make_monitor(cfg, model, sink, calls)
    changed = inspect(model, render(3, 150, **change))

    assert feed(monitor, model, changed, 2) == [True, True]
    assert calls == [True] and monitor.active
    feed(monitor, model, changed, 3)
    assert calls == [True]  # raised once, not per window
    feed(monitor, model, normal, 2)
    assert calls == [True, False] and not monitor.active

    raised, cleared = (m.json() for m in sink.messages)
    assert [m.topic for m in sink.messages] == [Topics.from_config(cfg).drift] * 2
    assert all(m.qos == 1 and m.priority is Priority.EVENT for m in sink.messages)
    for doc in (raised, cleared):
        jsonschema.validate(doc, SCHEMA)
    assert raised["state"] == "raised" and raised["window"]["index"] == 1
    expected = "brightness" if "darken" in change else "sharpness"
    assert expected in raised["reasons"]
    assert cleared["state"] == "cleared" and cleared["reasons"] == []


def test_an_unchanged_scene_raises_no_alarm_over_fifty_windows(
    agent_config: Callable[..., AgentConfig], model: LoadedModel, normal: list[Observed]
) -> None:
    cfg = agent_config(model.package.root, window=250)
    sink, calls = RecordingSink(), []
    monitor = make_monitor(cfg, model, sink, calls)
    drifting = feed(monitor, model, normal, 60)
    assert len(drifting) == 60
    assert calls == [] and sink.messages == []
    assert sum(drifting) <= 3  # single drifting windows are rare; two in a row would be needed to alarm


def test_a_model_without_reference_turns_drift_off_with_one_info_line(
    agent_config: Callable[..., AgentConfig], plain_package: Path
) -> None:
    from agent.config.schema import ModelConfig

    plain = load_model(str(plain_package), ModelConfig(path=str(plain_package)), warmup=False)
    cfg = agent_config(plain_package, window=20, image_every=5)
    with structlog.testing.capture_logs() as logs:
        monitor = make_monitor(cfg, plain, RecordingSink(), [])
        feed(monitor, plain, inspect(plain, render(2, 5)), 3)
    assert [e["event"] for e in logs] == ["drift_off"]
    assert logs[0]["log_level"] == "info"
    assert not monitor.enabled and monitor.windows == 0
    assert monitor.state()["enabled"] is False


def test_a_malformed_reference_turns_drift_off_with_a_warning(
    agent_config: Callable[..., AgentConfig], ref_package: Path, tmp_path: Path
) -> None:
    import shutil

    import yaml

    from agent.config.schema import ModelConfig

    bad = shutil.copytree(ref_package, tmp_path / "bad")
    doc = yaml.safe_load((bad / "manifest.yaml").read_text())
    del doc["reference"]["image_stats"]
    (bad / "manifest.yaml").write_text(yaml.safe_dump(doc))
    model = load_model(str(bad), ModelConfig(path=str(bad)), warmup=False)
    with structlog.testing.capture_logs() as logs:
        monitor = make_monitor(agent_config(bad), model, RecordingSink(), [])
    assert not monitor.enabled
    assert logs[0]["log_level"] == "warning" and "image_stats" in logs[0]["reason"]


def test_drift_disabled_in_config_never_tests(
    agent_config: Callable[..., AgentConfig], model: LoadedModel, normal: list[Observed]
) -> None:
    monitor = make_monitor(
        agent_config(model.package.root, enabled=False, window=20, image_every=5), model, RecordingSink(), []
    )
    feed(monitor, model, normal, 2)
    assert not monitor.enabled and monitor.windows == 0


def test_a_swap_to_a_model_without_reference_clears_the_active_alarm(
    agent_config: Callable[..., AgentConfig], model: LoadedModel, plain_package: Path
) -> None:
    from agent.config.schema import ModelConfig

    plain = load_model(str(plain_package), ModelConfig(path=str(plain_package)), warmup=False)
    current = [model]
    cfg = agent_config(model.package.root, window=50, image_every=5)
    sink, calls = RecordingSink(), []
    monitor = DriftMonitor(
        cfg, model=lambda: current[0], sink=sink, topics=Topics.from_config(cfg), on_drift=[calls.append]
    )
    feed(monitor, model, inspect(model, render(3, 60, darken=0.5)), 2)
    assert calls == [True]
    current[0] = plain
    feed(monitor, plain, inspect(plain, render(2, 5)), 1)
    assert calls == [True, False]
    assert sink.messages[-1].json()["state"] == "cleared"
    assert not monitor.enabled


@pytest.mark.slow
@pytest.mark.parametrize(
    "change", [{}, {"darken": 0.55}, {"blur": 3.0}], ids=["unchanged", "darkened", "blurred"]
)
def test_the_demo_model_alarms_on_a_changed_scene_and_not_on_an_unchanged_one(
    agent_config: Callable[..., AgentConfig], change: dict[str, float]
) -> None:
    """The real demo model and its reference, on 640x480 camera-like renders (balanced labels)."""
    import cv2

    from agent.config.schema import ModelConfig
    from agent.synthetic import LABELS, render_part
    from tests.support.paths import DEMO_MODEL

    demo = load_model(str(DEMO_MODEL), ModelConfig(path=str(DEMO_MODEL)), warmup=False)
    images = []
    for i in range(300):
        img = render_part(np.random.default_rng([77, i]), LABELS[i % len(LABELS)], 640, 480)
        if "darken" in change:
            img = cv2.convertScaleAbs(img, alpha=change["darken"])
        if "blur" in change:
            img = cv2.GaussianBlur(img, (0, 0), change["blur"])
        images.append(img)
    calls: list[bool] = []
    monitor = make_monitor(agent_config(DEMO_MODEL), demo, RecordingSink(), calls)
    assert monitor.enabled
    if change:
        feed(monitor, demo, inspect(demo, images), 2)
        assert calls == [True]
    else:
        drifting = feed(monitor, demo, inspect(demo, images), 50)
        assert calls == [] and sum(drifting) <= 2
