"""`inspection-agent bench` runs every variant on the demo model and its figures hold together.

The figures themselves are machine-dependent, so nothing here checks a speed. What is
checked is what a broken bench would get wrong: a variant that ran fewer frames than
asked, a rate not computed from what was run, percentiles out of order, a pipeline
stage longer than the frame's whole time in the pipeline, a buffered queue whose ages
do not grow when offered twice what it can inspect.
"""

from __future__ import annotations

import json
from typing import Any

import cv2
import numpy as np
import pytest

from tests.support.agentproc import run_agent, write_config

pytestmark = pytest.mark.slow

FRAMES, SOAK = 60, 120
STAGES = ("queue", "preprocess", "infer", "postprocess")  # each lies inside the frame's total


def ordered(percentiles: dict[str, float], what: str) -> None:
    assert set(percentiles) == {"p50", "p95", "p99"}, what
    assert 0 <= percentiles["p50"] <= percentiles["p95"] <= percentiles["p99"], (what, percentiles)


def rate_from_its_own_counts(figures: dict[str, Any], what: str) -> None:
    assert figures["seconds"] > 0 and figures["peak_rss_mb"] > 0, what
    assert figures["fps"] == pytest.approx(figures["frames"] / figures["seconds"], rel=1e-3), what


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("bench")
    frames = tmp / "frames"
    frames.mkdir()
    for i in range(8):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((120, 160, 3), i * 30, np.uint8))
    config = write_config(tmp / "work", port=9, prefix="bench", source=f"dir:{frames}")
    out = run_agent(
        ["bench", "--config", str(config), "--frames", str(FRAMES), "--soak", str(SOAK), "--json"],
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_every_variant_ran_every_frame_and_its_rate_comes_from_them(figures: dict[str, Any]) -> None:
    for variant in ("invoke", "source", "naive"):
        assert figures[variant]["frames"] == FRAMES, variant
    assert figures["pipeline"]["frames"] >= FRAMES
    assert figures["overload-pipeline"]["frames"] >= figures["overload-naive"]["frames"] == 200
    for variant in ("invoke", "source", "naive", "pipeline", "overload-pipeline", "overload-naive"):
        rate_from_its_own_counts(figures[variant], variant)
    soak = figures["soak"]
    assert soak["inspected"] >= SOAK and 0 < soak["frames"] <= soak["inspected"]
    rate_from_its_own_counts(soak, "soak")


def test_percentiles_are_ordered_and_stages_fit_inside_the_total(figures: dict[str, Any]) -> None:
    for variant in ("invoke", "source", "naive", "pipeline"):
        ordered(figures[variant]["latency_ms"], variant)
    stages = figures["pipeline"]["stages"]
    assert figures["pipeline"]["latency_ms"] == stages["total"]
    for stage in STAGES:
        ordered(stages[stage], stage)
        for p in ("p50", "p95", "p99"):  # per frame stage <= total, so per percentile too
            assert stages[stage][p] <= stages["total"][p], (stage, p, stages)
    ordered(figures["overload-pipeline"]["age_ms"], "overload-pipeline age")
    for key in ("age_ms", "age_first_tenth_ms", "age_last_tenth_ms"):
        ordered(figures["overload-naive"][key], key)


def test_summary_is_computed_from_the_variants(figures: dict[str, Any]) -> None:
    s, fps = figures["summary"], {v: figures[v]["fps"] for v in ("invoke", "source", "naive", "pipeline")}
    slowest = min(fps["invoke"], fps["source"])
    assert s["slowest_stage"] == ("invoke" if fps["invoke"] <= fps["source"] else "source")
    assert s["pipeline_vs_slowest_stage"] == pytest.approx(fps["pipeline"] / slowest, abs=1e-3)
    assert s["pipeline_vs_naive"] == pytest.approx(fps["pipeline"] / fps["naive"], abs=1e-3)
    rss = figures["pipeline"]["peak_rss_mb"] - figures["invoke"]["peak_rss_mb"]
    assert s["pipeline_rss_over_invoke_mb"] == pytest.approx(rss, abs=0.1)
    assert s["overload_offered_fps"] == figures["overload-pipeline"]["offered_fps"] > 0


def test_a_buffered_naive_loop_offered_twice_its_capacity_falls_behind(figures: dict[str, Any]) -> None:
    naive = figures["overload-naive"]
    assert naive["age_last_tenth_ms"]["p50"] > naive["age_first_tenth_ms"]["p50"], naive
