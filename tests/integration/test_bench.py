"""`inspection-agent bench` runs every variant on the demo model and prints each figure it promises."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.agentproc import run_agent, write_config

pytestmark = pytest.mark.slow


def test_bench_prints_every_figure(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(8):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((120, 160, 3), i * 30, np.uint8))
    config = write_config(tmp_path / "work", port=9, prefix="bench", source=f"dir:{frames}")
    out = run_agent(
        ["bench", "--config", str(config), "--frames", "60", "--soak", "120", "--json"], timeout=300
    )
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    for variant in ("invoke", "source", "naive", "pipeline"):
        assert figures[variant]["fps"] > 0 and figures[variant]["peak_rss_mb"] > 0
        assert {"p50", "p95", "p99"} <= set(figures[variant]["latency_ms"]), variant
    summary = figures["summary"]
    assert {"pipeline_vs_slowest_stage", "pipeline_vs_naive", "pipeline_rss_over_invoke_mb"} <= set(summary)
    assert figures["overload-pipeline"]["age_ms"]["p99"] >= 0
    assert figures["overload-naive"]["age_last_tenth_ms"]["p50"] >= 0
    assert figures["soak"]["frames"] >= 120 and "rss_growth_mb" in figures["soak"]
