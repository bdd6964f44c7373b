"""The supervisor gives the pipeline's stage threads their names in the kernel (agent/threadnames.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.pipeline.conftest import Harness, frames_dir, slow_package
from tests.unit.test_threadnames import comm

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="thread names through /proc are Linux's")


def test_the_supervisor_names_the_pipeline_stages(build: Callable[..., Harness], tmp_path: Path) -> None:
    frames = frames_dir(tmp_path / "frames", 5)
    h = build(f"dir:{frames}", slow_package(tmp_path / "pkg", 1), camera={"loop": True})
    h.pipeline.start()
    assert h.run_until(lambda: h.pipeline.counters.inspected > 0, timeout=10.0)
    h.supervisor.tick()
    names = {comm(t.native_id) for t in h.pipeline._threads.values() if t.is_alive()}
    assert {"capture-1", "infer-1", "publish-1"} <= names
