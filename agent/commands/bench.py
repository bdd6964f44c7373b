"""``inspection-agent bench --config PATH [--frames N] [--json]``: the pipeline against its physical limits.

Every variant runs in a fresh process on the same model, source and thread settings,
so each peak RSS is its own and one variant's warm caches do not flatter another.
Figures are ratios against baselines measured in the same run (this is a shared,
noisy machine), never absolute targets checked in tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from typing import Any

from agent.config import AgentConfig, load_config
from agent.model.manifest import read_manifest


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bench", help="measure the pipeline against the model and the source"
    )
    p.add_argument("--config", required=True)
    p.add_argument("--frames", type=int, default=1000, help="frames per variant")
    p.add_argument("--overload", type=float, default=2.0, help="live-overload rate as a multiple of capacity")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.add_argument(
        "--soak",
        type=int,
        default=0,
        metavar="N",
        help="also replay N frames through the pipeline and report RSS growth",
    )
    p.set_defaults(func=bench)


def _run(config: str, variant: str, frames: int, factor: float | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "agent.bench.worker", config, variant, str(frames)]
    if factor is not None:
        cmd.append(f"{factor:.3f}")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"bench variant {variant} failed:\n{out.stderr.strip()[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(config: str, frames: int, overload: float) -> dict[str, Any]:
    results = {v: _run(config, v, frames) for v in ("invoke", "source", "naive", "pipeline")}
    for variant in ("overload-pipeline", "overload-naive"):
        results[variant] = _run(config, variant, max(200, frames // 2), overload)
    slowest = min(results["invoke"]["fps"], results["source"]["fps"])
    results["summary"] = {
        "slowest_stage": "invoke" if results["invoke"]["fps"] <= results["source"]["fps"] else "source",
        "pipeline_vs_slowest_stage": round(results["pipeline"]["fps"] / slowest, 3),
        "pipeline_vs_naive": round(results["pipeline"]["fps"] / results["naive"]["fps"], 3),
        "pipeline_rss_over_invoke_mb": round(
            results["pipeline"]["peak_rss_mb"] - results["invoke"]["peak_rss_mb"], 1
        ),
        "overload_offered_fps": results["overload-pipeline"]["offered_fps"],
        "machine": f"{platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}",
    }
    return results


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _budget_ms(cfg: AgentConfig) -> float:
    """The budget the agent runs under: inference.budget_ms, else the model manifest's."""
    if cfg.inference.budget_ms is not None:
        return cfg.inference.budget_ms
    return read_manifest(cfg.resolve(cfg.model.path) / "manifest.yaml").budget_ms


def bench(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    budget = _budget_ms(cfg)
    results = measure(args.config, args.frames, args.overload)
    if args.soak:
        results["soak"] = _run(args.config, "soak", args.soak)
    if args.json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
        return 0
    w = sys.stdout.write
    w(f"machine: {results['summary']['machine']}\n")
    w(f"{'variant':20s} {'fps':>9s} {'p50 ms':>9s} {'p95 ms':>9s} {'p99 ms':>9s} {'peak RSS MB':>12s}\n")
    for name in ("invoke", "source", "naive", "pipeline"):
        r = results[name]
        lat = r["latency_ms"]
        w(
            f"{name:20s} {r['fps']:9.1f} {lat.get('p50', 0):9.3f} {lat.get('p95', 0):9.3f} "
            f"{lat.get('p99', 0):9.3f} "
            f"{r['peak_rss_mb']:12.1f}\n"
        )
    s = results["summary"]
    w(f"\npipeline / slowest stage alone ({s['slowest_stage']}): {s['pipeline_vs_slowest_stage']:.3f}\n")
    w(f"pipeline / naive loop: {s['pipeline_vs_naive']:.3f}\n")
    w(f"pipeline peak RSS - raw runtime peak RSS: {s['pipeline_rss_over_invoke_mb']:+.1f} MB\n")
    w(
        f"\nlive overload at {s['overload_offered_fps']:.1f} fps offered ({args.overload:g}x the inspection "
        "capacity on decoded frames), "
        f"frame age at publish (budget {budget:g} ms):\n"
    )
    op, on = results["overload-pipeline"], results["overload-naive"]
    w(
        f"  pipeline: p50 {op['age_ms'].get('p50', 0):.1f} ms, p99 {op['age_ms'].get('p99', 0):.1f} ms "
        f"({op['dropped']} replaced, {op['stale']} stale)\n"
    )
    w(
        f"  naive:    p50 {on['age_ms']['p50']:.1f} ms, p99 {on['age_ms']['p99']:.1f} ms; first tenth p50 "
        f"{on['age_first_tenth_ms']['p50']:.1f} ms, "
        f"last tenth p50 {on['age_last_tenth_ms']['p50']:.1f} ms (grows)\n"
    )
    if "soak" in results:
        s = results["soak"]
        w(
            f"soak: {s['inspected']} frames at {s['fps']:.1f} fps; "
            f"RSS {s['rss_after_warmup_mb']:.1f} MB after warm-up, "
            f"{s['rss_end_mb']:.1f} MB at the end ({s['rss_growth_mb']:+.2f} MB)\n"
        )
    return 0
