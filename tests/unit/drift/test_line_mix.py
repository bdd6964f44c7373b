"""The demo model on a realistic line (80 % good parts): no false alarm, and a lighting change still alarms.

Frames are the ``synthetic:`` camera's 640x480 renders, through the real DriftMonitor,
with ``drift.class_mix`` set to the line's mix as docs/health.md advises.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from agent.config import AgentConfig
from agent.drift.monitor import DriftMonitor
from agent.drift.reference import parse_reference
from agent.model.loaded import LoadedModel
from agent.protocol.topics import Topics
from agent.testing import RecordingSink
from scripts.bench_drift import Observed, blurred, dim_and_flat, line_frames, line_mix
from tests.support.paths import DEMO_MODEL
from tests.unit.drift.line import feed

pytestmark = pytest.mark.slow
MIX = line_mix(0.8)


@pytest.fixture(scope="module")
def healthy(demo: LoadedModel) -> list[Observed]:
    return line_frames(demo, 21, 600, 0.8)


def monitor_for(cfg: AgentConfig, model: LoadedModel, calls: list[bool]) -> DriftMonitor:
    return DriftMonitor(
        cfg,
        model=lambda: model,
        sink=RecordingSink(),
        topics=Topics.from_config(cfg),
        on_drift=[calls.append],
    )


def test_the_demo_reference_has_figures_for_every_class(demo: LoadedModel) -> None:
    assert demo.package.manifest.reference is not None
    ref = parse_reference(demo.package.manifest.reference, demo.package.labels, MIX)
    assert ref.per_class == demo.package.labels


def test_a_healthy_line_of_mostly_good_parts_raises_no_alarm_over_fifty_windows(
    agent_config: Callable[..., AgentConfig], demo: LoadedModel, healthy: list[Observed]
) -> None:
    calls: list[bool] = []
    monitor = monitor_for(agent_config(DEMO_MODEL, class_mix=MIX), demo, calls)
    drifting = feed(monitor, demo.summary, healthy, 55, demo.package.labels)
    assert len(drifting) == 55
    assert calls == [] and not monitor.active
    assert sum(drifting) <= 2


@pytest.mark.parametrize("change", [dim_and_flat, blurred], ids=["dim_and_flat_light", "blurred"])
def test_a_lighting_or_focus_change_on_that_line_alarms_within_two_windows(
    agent_config: Callable[..., AgentConfig], demo: LoadedModel, change: Callable[[np.ndarray], np.ndarray]
) -> None:
    calls: list[bool] = []
    monitor = monitor_for(agent_config(DEMO_MODEL, class_mix=MIX), demo, calls)
    assert feed(monitor, demo.summary, line_frames(demo, 22, 150, 0.8, change), 2, demo.package.labels) == [
        True,
        True,
    ]
    assert calls == [True]
    assert monitor.last is not None
    expected = {"brightness", "contrast"} if change is dim_and_flat else {"sharpness"}
    assert expected <= set(monitor.last.reasons)
