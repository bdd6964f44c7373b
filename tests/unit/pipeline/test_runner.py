"""The pipeline with a real model and real sources: lossless replays, stale drops, budgets, policies."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.events import EventKind
from tests.unit.pipeline.conftest import Harness, frames_dir, slow_package

Build = Callable[..., Harness]


def test_replay_is_lossless_and_in_order(build: Build, tmp_path: Path) -> None:
    frames = frames_dir(tmp_path / "frames", 40)
    h = build(f"dir:{frames}", slow_package(tmp_path / "pkg", 1))
    h.pipeline.start()
    assert h.run_until(h.pipeline.done.is_set, 30)
    results = h.sink.on("result")
    assert [r["frame"] for r in results] == list(range(40))
    assert [r["ref"] for r in results] == [f"{i:04d}.png" for i in range(40)]
    c = h.pipeline.counters
    assert (c.captured, c.inspected, c.dropped, c.stale, c.errors) == (40, 40, 0, 0, 0)
    for r in results:
        lat = r["latency_ms"]
        assert lat["total"] >= lat["infer"] >= 0 and r["model"]["version"] == "1.0.0"


def test_live_overload_drops_stale_frames_and_keeps_ages_bounded(build: Build, tmp_path: Path) -> None:
    # ~120 ms per frame against a live camera at up to 100 fps (small images replayed as one):
    # the camera outruns inference on any CPU, even a loaded one, and the frames it outruns
    # by are replaced, never queued.
    model = slow_package(tmp_path / "pkg", 6000, budget_ms=180)
    frames = frames_dir(tmp_path / "frames", 10)
    h = build(f"dir:{frames}", model, camera={"fps": 100, "realtime": True, "live": True, "loop": True})
    h.pipeline.start()
    assert h.run_until(lambda: h.pipeline.counters.inspected >= 20, 60)
    h.pipeline.stop()
    c = h.pipeline.counters
    assert c.captured > c.inspected and c.dropped + c.stale > 0  # overloaded, and it shed frames
    in_flight = c.captured - c.inspected - c.dropped - c.stale
    assert 0 <= in_flight <= 4  # the rest were inspected or shed: no queue builds up
    ages = sorted(r["latency_ms"]["total"] for r in h.sink.on("result"))
    # Newest-frame hand-off: the age stays near one inference (wide margin).
    assert ages[len(ages) // 2] < 180 * 3


def test_over_budget_is_flagged_when_a_slowed_model_overruns(build: Build, tmp_path: Path) -> None:
    frames = frames_dir(tmp_path / "frames", 6)
    h = build(f"dir:{frames}", slow_package(tmp_path / "pkg", 1500), inference={"budget_ms": 5})
    h.pipeline.start()
    assert h.run_until(h.pipeline.done.is_set, 30)
    results = h.sink.on("result")
    assert len(results) == 6 and all(r["over_budget"] for r in results)
    assert h.pipeline.counters.over_budget == 6


def test_skip_policy_engages_and_releases(build: Build, tmp_path: Path) -> None:
    frames = frames_dir(tmp_path / "frames", 10)
    inference = {
        "budget_ms": 5,
        "overrun_window": 4,
        "overrun_ratio": 0.5,
        "overrun_policy": "skip",
        "skip_every": 3,
    }
    h = build(
        f"dir:{frames}", slow_package(tmp_path / "pkg", 1500), inference=inference, camera={"loop": True}
    )
    h.pipeline.start()
    assert h.run_until(lambda: h.pipeline.overrun.state == "skip", 30)
    assert h.sink.of(EventKind.OVERRUN)[0].details["policy"] == "skip"
    assert h.run_until(lambda: h.pipeline.counters.skipped >= 4, 30)
    # Raise the budget: the same model is now well inside it, and the policy releases.
    object.__setattr__(h.pipeline.cfg.inference, "budget_ms", 10_000.0)  # the test's only config change
    assert h.run_until(lambda: h.pipeline.overrun.state == "normal", 30)
    assert h.sink.of(EventKind.OVERRUN_CLEARED)


def test_fallback_policy_switches_model_and_back(build: Build, tmp_path: Path) -> None:
    frames = frames_dir(tmp_path / "frames", 10)
    fallback = slow_package(tmp_path / "small", 1, version="0.1.0-small")
    inference = {"budget_ms": 8, "overrun_window": 4, "overrun_ratio": 0.5, "overrun_policy": "fallback"}
    h = build(
        f"dir:{frames}",
        slow_package(tmp_path / "pkg", 1500),
        inference=inference,
        camera={"loop": True},
        model={"fallback": str(fallback)},
    )
    h.pipeline.start()
    assert h.run_until(lambda: any(r["model"]["version"] == "0.1.0-small" for r in h.sink.on("result")), 30)
    assert h.pipeline.overrun.state == "fallback"
    # After the hold time the primary is tried again (it still overruns, so the cycle may repeat).
    assert h.run_until(lambda: bool(h.sink.of(EventKind.OVERRUN_CLEARED)), 30)

    def primary_back() -> bool:
        versions = [r["model"]["version"] for r in h.sink.on("result")]
        return "1.0.0" in versions[versions.index("0.1.0-small") :]

    ok = h.run_until(primary_back, 30)
    assert ok, (
        h.sink.events,
        h.pipeline.overrun.state,
        h.slot._pending,
        h.slot._primary,
        h.slot.model.version,
        h.pipeline.counters,
    )


def test_hung_inference_is_detected_reported_and_restarted(build: Build, tmp_path: Path) -> None:
    frames = frames_dir(tmp_path / "frames", 3)
    # ~3 s per invoke against a 0.5 s deadline.
    h = build(
        f"dir:{frames}",
        slow_package(tmp_path / "pkg", 150_000),
        inference={"hang_timeout_s": 0.5},
        camera={"loop": True},
    )
    h.pipeline.start()
    assert h.run_until(lambda: h.pipeline.counters.inference_restarts >= 1, 20)
    stuck = h.sink.of(EventKind.STAGE_STUCK)
    assert stuck and stuck[0].details["stage"] == "infer"
    assert h.supervisor.degraded == "infer stuck"
    assert h.sink.of(EventKind.STAGE_RESTARTED)
    # It keeps hanging: after MAX_RESTARTS the agent gives up so systemd restarts the process.
    assert h.run_until(lambda: h.pipeline.failure is not None, 30)
    assert "infer stage stuck" in str(h.pipeline.failure)
    assert not h.supervisor.flowing()  # nothing was published: the systemd watchdog was never fed


def test_trigger_mode_inspects_one_frame_per_trigger(build: Build, tmp_path: Path) -> None:
    frames = frames_dir(tmp_path / "frames", 5)
    h = build(f"dir:{frames}", slow_package(tmp_path / "pkg", 1), camera={"mode": "trigger"})
    h.pipeline.start()
    first = h.pipeline.trigger(timeout=10)
    second = h.pipeline.trigger(timeout=10)
    assert (first["frame"], second["frame"]) == (0, 1)
    assert h.pipeline.counters.inspected == 2
    assert [r["id"] for r in h.sink.on("result")] == [first["id"], second["id"]]


def test_work_between_frames_runs_on_the_inference_thread_and_loses_no_frame(
    build: Build, tmp_path: Path
) -> None:
    frames = frames_dir(tmp_path / "frames", 60)
    h = build(f"dir:{frames}", slow_package(tmp_path / "pkg", 1))
    with pytest.raises(TimeoutError):  # not started: nobody takes the work, the caller is not stuck
        h.pipeline.between_frames(lambda m: m.version, 0.3)
    h.pipeline.start()
    seen = [
        h.pipeline.between_frames(lambda m: (threading.current_thread().name, m.version), 10)
        for _ in range(5)
    ]
    assert all(name.startswith("infer-") and version == "1.0.0" for name, version in seen)
    assert h.run_until(h.pipeline.done.is_set, 30)
    assert h.pipeline.counters.inspected == 60 and h.pipeline.counters.errors == 0
