"""Hot swap between two frames, and automatic rollback of a model that fails after the swap."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.events import EventKind, Severity
from agent.model.loaded import LoadedModel
from agent.pipeline.swap import ReloadBusy
from tests.support.models import make_package, slow_classifier
from tests.unit.pipeline.conftest import Harness, frames_dir, slow_package

Build = Callable[..., Harness]


def _store(tmp_path: Path, v2_iterations: int, v2_budget: float) -> tuple[Path, Path, Path]:
    store = tmp_path / "models" / "slow"
    v1 = slow_package(store / "1.0.0", 1, version="1.0.0", budget_ms=1000)
    v2 = slow_package(store / "2.0.0", v2_iterations, version="2.0.0", budget_ms=v2_budget)
    current = store / "current"
    os.symlink(v1, current)
    return current, v1, v2


def _repoint(link: Path, target: Path) -> None:
    tmp = link.with_name(".current.tmp")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _swap_while_running(
    h: Harness, current: Path, target: Path, version: str, after: int = 0
) -> list[dict[str, Any]]:
    """Start, let 10 frames through, repoint ``current`` at ``target``, reload, let ``after`` more
    frames through; the results."""
    h.pipeline.start()
    assert h.run_until(lambda: h.pipeline.counters.inspected >= 10, 30)
    _repoint(current, target)
    outcome = h.slot.request()
    assert h.run_until(outcome.done, 30)
    assert outcome.result()["state"] == "active" and outcome.result()["version"] == version
    swapped = h.pipeline.counters.inspected
    assert h.run_until(lambda: h.pipeline.counters.inspected >= swapped + after, 30)
    h.pipeline.stop()
    return h.sink.on("result")


def test_swap_happens_between_frames_with_none_dropped(build: Build, tmp_path: Path) -> None:
    current, _v1, v2 = _store(tmp_path, 1, 1000)
    frames = frames_dir(tmp_path / "frames", 20)
    h = build(
        f"dir:{frames}",
        current,
        camera={"loop": True, "realtime": True, "fps": 100},
        inference={"rollback_frames": 5},
    )
    results = _swap_while_running(h, current, v2, "2.0.0")
    versions = [r["model"]["version"] for r in results]
    switch = versions.index("2.0.0")
    assert set(versions[:switch]) == {"1.0.0"} and set(versions[switch:]) == {"2.0.0"}
    seqs = [r["frame"] for r in results]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no frame dropped for the swap
    assert h.pipeline.counters.dropped == h.pipeline.counters.stale == 0
    state = json.loads((tmp_path / "state" / "model-state.json").read_text())
    assert (state["state"], state["version"], state["previous"]) == ("active", "2.0.0", "1.0.0")


def test_a_swap_to_another_input_size_reprepares_frames_prepared_for_the_old_model(
    build: Build, tmp_path: Path
) -> None:
    """Frames are preprocessed on the capture thread for the model running then; those queued when
    the swap lands are prepared again for the new model (48x40 here), never fed at 32x32."""
    # Invokes (~1 ms) heavier than reading a small PNG, so the capture thread preprocesses.
    store = tmp_path / "models" / "slow"
    current = store / "current"
    os.symlink(slow_package(store / "1.0.0", 400, version="1.0.0", budget_ms=1000), current)
    wide = slow_classifier(tmp_path / "wide.onnx", 400, width=48, height=40)
    v3 = make_package(current.parent / "3.0.0", wide, name="slow", version="3.0.0",
                      labels=["ok", "scratch", "hole"], width=48, height=40, budget_ms=1000)  # fmt: skip
    frames = frames_dir(tmp_path / "frames", 20)
    h = build(f"dir:{frames}", current, camera={"loop": True}, inference={"rollback_frames": 5})
    versions = [r["model"]["version"] for r in _swap_while_running(h, current, v3, "3.0.0", after=10)]
    switch = versions.index("3.0.0")
    assert set(versions[switch:]) == {"3.0.0"} and len(versions) > switch + 5
    assert h.pipeline.counters.errors == 0
    assert h.pipeline.placement.on_capture  # what this test is about: frames prepared before the swap


def test_model_that_overruns_after_swap_is_rolled_back_and_link_restored(
    build: Build, tmp_path: Path
) -> None:
    current, v1, v2 = _store(tmp_path, 1500, 5)  # v2 takes ~30 ms against its own 5 ms budget
    frames = frames_dir(tmp_path / "frames", 20)
    h = build(f"dir:{frames}", current, camera={"loop": True}, inference={"rollback_frames": 5})
    h.pipeline.start()
    assert h.run_until(lambda: h.pipeline.counters.inspected >= 5, 30)
    _repoint(current, v2)  # what deploy/flash-model does before telling the agent to reload
    outcome = h.slot.request()
    assert h.run_until(outcome.done, 30)
    result = outcome.result()
    assert result["state"] == "rolled_back" and result["version"] == "1.0.0" and result["previous"] == "2.0.0"
    assert "over budget" in result["reason"]
    assert current.resolve() == v1.resolve()
    assert h.run_until(lambda: h.sink.on("result")[-1]["model"]["version"] == "1.0.0", 10)
    assert [e.severity for e in h.sink.of(EventKind.MODEL_SWAP)] == [Severity.ERROR]


def test_broken_package_is_refused_and_running_model_kept(build: Build, tmp_path: Path) -> None:
    current, v1, v2 = _store(tmp_path, 1, 1000)
    (v2 / "model.onnx").write_bytes(b"not a model")  # sha256 no longer matches
    frames = frames_dir(tmp_path / "frames", 10)
    h = build(f"dir:{frames}", current, camera={"loop": True})
    h.pipeline.start()
    _repoint(current, v2)
    outcome = h.slot.request()
    assert h.run_until(outcome.done, 30)
    assert outcome.result()["state"] == "failed" and "sha256 mismatch" in outcome.result()["reason"]
    assert current.resolve() == v1.resolve()
    assert h.run_until(lambda: h.pipeline.counters.inspected >= 5, 30)
    assert {r["model"]["version"] for r in h.sink.on("result")} == {"1.0.0"}


def test_a_flood_of_reloads_is_coalesced_into_one_load_then_rate_limited(
    build: Build, tmp_path: Path
) -> None:
    """Issue 12 case 5: 500 reload-model commands started 500 loader threads and stalled inspection."""
    current, _v1, v2 = _store(tmp_path, 1, 1000)
    frames = frames_dir(tmp_path / "frames", 10)
    h = build(f"dir:{frames}", current, camera={"loop": True})
    loads: list[str] = []
    real = h.slot._loader

    def slow(path: str) -> LoadedModel:
        loads.append(path)
        time.sleep(0.5)
        return real(path)

    h.slot._loader = slow
    h.pipeline.start()
    _repoint(current, v2)
    threads = threading.active_count()
    futures = [h.slot.request() for _ in range(200)]  # the same (default) path: one load, one outcome
    assert threading.active_count() <= threads + 1
    assert len({id(f) for f in futures}) == 1
    with pytest.raises(ReloadBusy, match="busy"):
        h.slot.request(str(tmp_path / "elsewhere"))  # another package while one loads: busy
    assert h.run_until(futures[0].done, 30)
    assert futures[0].result()["version"] == "2.0.0" and len(loads) == 1
    with pytest.raises(ReloadBusy, match="retry in"):
        h.slot.request()  # right after a load: rate-limited
    h.pipeline.stop()
