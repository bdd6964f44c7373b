"""Benchmark the real-time pipeline on the demo model and a 640x480 H.264 clip (issue figures).

Writes the clip with the synthetic part generator (H.264 through the system ffmpeg), a config
next to it, and runs ``inspection-agent bench`` on them. Extra arguments go to the bench
command (``--frames N``, ``--soak N``, ``--json``).

    python scripts/bench_pipeline.py [--runtime tflite|onnx] [bench args…]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=["tflite", "onnx"], default="tflite")
    parser.add_argument("--threads", type=int, default=1)
    args, rest = parser.parse_known_args()
    from make_demo_clip import write_clip

    with tempfile.TemporaryDirectory(prefix="inspection-bench-") as tmp:
        work = Path(tmp)
        clip = work / "conveyor.mp4"
        write_clip(clip, 300, width=640, height=480, fps=30, seed=11, codec="h264")
        config = work / "bench.yaml"
        config.write_text(
            f"""device: {{id: bench, site: lab, line: bench}}
camera: {{source: "video:{clip}", fps: 30, realtime: false, loop: true}}
model: {{path: {REPO / "models/demo-defects/1.0.0"}, runtime: {args.runtime}, threads: {args.threads}}}
inference: {{budget_ms: 50}}
outbox: {{path: {work / "outbox.db"}}}
state: {{dir: {work}}}
log: {{level: warning, format: json}}
"""
        )
        print(
            f"model: demo-defects 1.0.0 ({args.runtime}, {args.threads} thread); "
            "source: 640x480 H.264, 300 frames"
        )
        cmd = [sys.executable, "-m", "agent", "bench", "--config", str(config), *rest]
        return subprocess.call(cmd)


if __name__ == "__main__":
    raise SystemExit(main())
