#!/usr/bin/env python3
"""Timing figures for docs/line.md: trigger-to-exposure delay through the real pipeline, and reject
scheduling jitter through the GPIO interface (the in-memory chip: the scheduler is the same code
on a device, where libgpiod adds the set-value syscall, a few microseconds).

  PYTHONPATH=. python scripts/bench_line.py [--triggers 40] [--parts 60] [--fps 30]

The camera is the synthetic source paced at --fps (a live camera's frame clock). Each trigger takes
the first frame delivered at least one frame period after its edge (docs/line.md explains why), so
the delay lies between one and two frame periods plus the read; the figures show where.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.app import Agent  # noqa: E402
from agent.config import load_config  # noqa: E402
from agent.config.line import IoConfig, RejectConfig, TriggerInputConfig  # noqa: E402
from agent.line.chip import MemoryChip  # noqa: E402
from agent.line.io import LineIO  # noqa: E402
from agent.line.state import LineState  # noqa: E402
from agent.line.trigger import Triggers, TriggerStamp  # noqa: E402
from agent.log import configure  # noqa: E402
from agent.protocol.payloads import ResultPayload  # noqa: E402


def _stats(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"n={len(ordered)} min={ordered[0]:.1f} mean={statistics.fmean(ordered):.1f} "
        f"p99={p99:.1f} max={ordered[-1]:.1f} ms"
    )


def exposure_delay(triggers: int, fps: float) -> list[float]:
    """Trigger the real agent (synthetic camera, demo model, Modbus on so the line is built) at random
    phases of the frame clock; the result's trigger tag carries the edge-to-frame delay."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {
            "device": {"id": "bench", "site": "s", "line": "l"},
            "camera": {"source": "synthetic:1", "fps": fps, "mode": "trigger"},
            "model": {"path": str(REPO / "models" / "demo-defects" / "1.0.0")},
            "mqtt": {"port": 1, "connect_timeout_s": 1},  # no broker: results stay in the outbox
            "outbox": {"path": f"{tmp}/outbox.db"},
            "state": {"dir": f"{tmp}/state"},
            "log": {"level": "error"},
            "modbus": {"listen": "127.0.0.1:0"},
        }
        path = Path(tmp) / "agent.yaml"
        path.write_text(yaml.safe_dump(cfg))
        config = load_config(path)
        configure("error", "console", device="bench")
        agent = Agent(config)
        runner = threading.Thread(target=agent.run, daemon=True)
        runner.start()
        line = agent.lines[0]
        while not all(getattr(p, "port", 0) for p in line.parts):
            time.sleep(0.05)
        delays = []
        for _ in range(triggers):
            time.sleep(random.uniform(0.1, 0.2))
            stamp = line.fire("gpio")
            assert stamp is not None
            payload = stamp.reply.result(10)
            delays.append(payload["trigger"]["exposure_delay_ms"])
        agent.stop("bench over")
        runner.join(20)
        return delays


def reject_jitter(parts: int) -> dict[str, float]:
    """A conveyor: a part every 200 ms, reject 350 ms after its trigger, every other part defective."""
    chip, state = MemoryChip(), LineState()
    cfg = IoConfig(
        trigger=TriggerInputConfig(line=17), reject=RejectConfig(line=27, delay_ms=350, pulse_ms=80)
    )
    io = LineIO(cfg, chips=lambda _n: chip, state=state, emit=lambda _e: None, agent_state=lambda: "running")

    def inspect(stamp: TriggerStamp) -> ResultPayload:
        time.sleep(0.03)
        defect = stamp.seq % 2 == 0
        return {"label": "defect" if defect else "ok", "defect": defect}  # type: ignore[typeddict-item]

    triggers = Triggers(inspect, state=state, on_result=io.on_result)
    triggers.start()
    io.start(triggers)
    start = time.monotonic()
    for i in range(parts):
        time.sleep(max(0.0, start + i * 0.2 - time.monotonic()))
        chip.pulse(17)
    time.sleep(0.6)
    summary = io.health()["reject_jitter"]
    io.stop()
    triggers.stop()
    return dict(summary)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=40)
    parser.add_argument("--parts", type=int, default=60)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    delays = exposure_delay(args.triggers, args.fps)
    period = 1000.0 / args.fps
    print(f"trigger -> frame delivered ({args.fps:g} fps, frame period {period:.1f} ms): {_stats(delays)}")
    print(f"  in frame periods: min {min(delays) / period:.2f}, max {max(delays) / period:.2f}")
    jitter = reject_jitter(args.parts)
    print(f"reject pulse start, late by (scheduling jitter, {args.parts} parts @ 200 ms, delay 350 ms):")
    print(f"  {jitter}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
