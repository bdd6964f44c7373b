"""What the device console costs the line: pipeline fps with ``web`` off, on with no viewer, and on
with two viewers at 5 fps; and the agent's RSS with ``web`` on (issue 14's figures).

Each configuration runs in a fresh agent process (so RSS is its own) on the demo model and a
640x480 H.264 clip replayed as fast as the pipeline goes (inspection-bound: any CPU the console
takes shows). Rounds alternate the three configurations and the median of each is reported, so
a busy machine slows all three alike. Viewers are real HTTP clients of the MJPEG stream in this
(parent) process, not in the agent.

    python scripts/bench_console.py [--seconds 10] [--rounds 3] [--runtime tflite|onnx]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
MODES = ("off", "idle", "viewers")


def child(config: str, seconds: float) -> int:
    """One measured agent: the real pipeline and observers (the console among them when configured)."""
    from agent.app import Agent
    from agent.config import load_config
    from agent.health.system import rss_bytes

    agent = Agent(load_config(config))
    agent.pipeline.start()
    agent.observers.tick()  # starts the console's server and preview thread, as the main loop does
    consoles = [o for o in agent.pipeline.observers._all if o.observer.name == "console"]
    console: Any = consoles[0].observer if consoles else None
    print("BENCH", json.dumps({"url": console.url if console else None}), flush=True)
    sys.stdin.readline()  # the parent's go, once its viewers are connected

    def run_for(duration: float) -> None:
        end = time.monotonic() + duration
        while time.monotonic() < end:
            agent.observers.tick()
            time.sleep(0.1)

    run_for(3.0)  # warm-up
    n0, t0 = agent.pipeline.counters.inspected, time.monotonic()
    run_for(seconds)
    fps = (agent.pipeline.counters.inspected - n0) / (time.monotonic() - t0)
    doc = {"fps": fps, "rss_mb": rss_bytes() / 2**20, "previews": console.encoded if console else 0}
    print("BENCH", json.dumps(doc), flush=True)
    agent.observers.close(2.0)
    agent.pipeline.stop()
    return 0


class Viewer(threading.Thread):
    """Reads the MJPEG stream as a browser would, until told to stop."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.bytes, self.stop = url, 0, threading.Event()

    def run(self) -> None:
        with urllib.request.urlopen(self.url + "/api/stream.mjpg", timeout=30) as resp:
            while not self.stop.is_set():
                chunk = resp.read1(65536)
                if not chunk:
                    return
                self.bytes += len(chunk)


def measure(work: Path, mode: str, clip: Path, args: argparse.Namespace) -> dict[str, Any]:
    web = "" if mode == "off" else 'web: {listen: "127.0.0.1:0", preview_fps: 5}\n'
    config = work / f"{mode}.yaml"
    config.write_text(
        f"""device: {{id: bench, site: lab, line: bench}}
camera: {{source: "video:{clip}", fps: 30, realtime: false, loop: true}}
model: {{path: {REPO / "models/demo-defects/1.0.0"}, runtime: {args.runtime}, threads: 1}}
inference: {{budget_ms: 1000}}
mqtt: {{port: 1, publish_results: false}}
outbox: {{path: {work / f"outbox-{mode}.db"}}}
state: {{dir: {work / mode}}}
log: {{level: warning, format: json}}
{web}"""
    )
    cmd = [sys.executable, __file__, "--child", str(config), "--seconds", str(args.seconds)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdin is not None and proc.stdout is not None
    url = _line(proc)["url"]
    viewers = [Viewer(url) for _ in range(2)] if mode == "viewers" else []
    for v in viewers:
        v.start()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    result = _line(proc)
    for v in viewers:
        v.stop.set()
    result["viewer_kb"] = sum(v.bytes for v in viewers) / 1024
    proc.wait(30)
    return result


def _line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The child's next report (its log lines, if any reach stdout, are skipped)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("BENCH "):
            doc: dict[str, Any] = json.loads(line[6:])
            return doc
    raise RuntimeError(f"the measured agent exited ({proc.wait()}) without a report")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtime", choices=["tflite", "onnx"], default="tflite")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.seconds)
    from make_demo_clip import write_clip

    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        work = Path(tmp)
        clip = work / "conveyor.mp4"
        write_clip(clip, 300, width=640, height=480, fps=30, seed=11, codec="h264")
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
        for _ in range(args.rounds):
            for mode in MODES:
                runs[mode].append(measure(work, mode, clip, args))
    report(runs, args)
    return 0


def report(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    fps = {m: statistics.median(r["fps"] for r in runs[m]) for m in MODES}
    rss = {m: statistics.median(r["rss_mb"] for r in runs[m]) for m in MODES}
    import os
    import platform

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"demo-defects 1.0.0 ({args.runtime}), 640x480 H.264 replay as fast as it goes; "
          f"median of {args.rounds} rounds x {args.seconds:.0f} s")  # fmt: skip
    names = {"off": "web off", "idle": "web on, no viewer", "viewers": "web on, 2 viewers at 5 fps"}
    targets = {"off": "", "idle": "  (target >= 0.99)", "viewers": "  (target >= 0.97)"}
    for m in MODES:
        ratio = fps[m] / fps["off"]
        runs_txt = ", ".join(f"{r['fps']:.1f}" for r in runs[m])
        print(f"  {names[m]:<28} {fps[m]:7.1f} fps  x{ratio:.3f}{targets[m]}   runs: {runs_txt}")
    grow = {m: rss[m] - rss["off"] for m in MODES}
    print(f"  RSS: web off {rss['off']:.1f} MB, web on {rss['idle']:.1f} MB (+{grow['idle']:.1f} MB), "
          f"with viewers {rss['viewers']:.1f} MB (+{grow['viewers']:.1f} MB; target <= +25 MB)")  # fmt: skip
    previews = statistics.median(r["previews"] for r in runs["viewers"])
    idle = statistics.median(r["previews"] for r in runs["idle"])
    print(
        f"  previews encoded: {idle:.0f} with no viewer, {previews:.0f} with viewers "
        f"(~{previews / (args.seconds + 3):.1f}/s)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
