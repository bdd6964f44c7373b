"""The publish path alone: CPU per frame of each thread it uses (issue 20's agent overhead).

``bench_e2e.py`` gives the whole agent's overhead as its CPU minus decode + preprocess +
invoke measured apart: the difference of two large, noisy figures. This script isolates what
the publish hand-off costs: a local mosquitto, the real :class:`Publisher` (outbox, paho),
and a loop that does per frame what the pipeline's publish stage does after postprocessing
(build the result payload, encode it, publish the result at QoS 0 and, every ``--defect-every``
frames, the defect at ``--qos``), paced at ``--rate`` frames per second. It prints each
thread's CPU per frame, read from /proc/self/task (kernel time included: wake-ups, fsync).

    python scripts/bench_publish.py [--frames 2000] [--rate 300] [--qos 1] [--defect-every 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from agent.config.schema import DeviceConfig, MqttConfig, OutboxConfig  # noqa: E402
from agent.protocol.payloads import encode, result_payload  # noqa: E402
from agent.protocol.topics import Topics  # noqa: E402
from agent.publish import Priority, Publisher  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
MODEL = {"name": "demo-defects", "version": "1.0.0", "sha256": "ab" * 32, "runtime": "tflite"}


@dataclass
class FakeFrame:
    """What a result says about its frame (the FrameInfo protocol)."""

    seq: int = 0
    ts_ms: int = 0
    ref: str | None = None


@dataclass
class FakeResult:
    """A classifier's defect decision (the ResultInfo protocol)."""

    label: str = "defect"
    score: float = 0.93
    scores: dict[str, float] = field(default_factory=lambda: {"good": 0.07, "defect": 0.93})
    is_defect: bool = True
    detections: tuple[()] = ()
    anomaly_score: float | None = None


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of every live Python thread, by name."""
    out = {}
    for t in threading.enumerate():
        try:
            stat = Path(f"/proc/self/task/{t.native_id}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[t.name] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def run(args: argparse.Namespace, work: Path, port: int) -> dict[str, float]:
    topics = Topics("bench", "lab", "line", "dev")
    device = DeviceConfig(id="dev", site="lab", line="line")
    cfg = MqttConfig(port=port, qos=args.qos)
    pub = Publisher(
        cfg,
        OutboxConfig(path=str(work / "outbox.db")),
        topics=topics,
        client_id="bench-publish",
        password=None,
        base_dir=work,
        status_payload=dict,
    )
    frame, result = FakeFrame(), FakeResult()

    def one(i: int) -> None:
        frame.seq, frame.ts_ms = i, int(time.time() * 1000)
        payload = result_payload(
            device=device,
            frame=frame,
            result=result,
            model=MODEL,  # type: ignore[arg-type]
            latency=(1.0, 0.2, 0.3, 0.1, 0.05, 2.0),
            budget_ms=50.0,
        )
        data = encode(payload)
        pub.publish(topics.result, data, qos=0, priority=Priority.RESULT)
        if i % args.defect_every == 0:
            pub.publish(topics.defect, data, qos=args.qos, priority=Priority.DEFECT)

    pub.start()
    try:
        while not pub.connected:
            time.sleep(0.01)
        paced(one, 200, args.rate)  # warm-up
        pub.flush(10)
        cpu0, main0 = thread_cpu(), time.thread_time()
        paced(one, args.frames, args.rate)
        main = time.thread_time() - main0
        if not pub.drain(30):
            raise SystemExit(f"the outbox did not drain: {pub.stats()}")
        cpu1 = thread_cpu()
    finally:
        pub.stop("bench over")
    per = {"publish (caller)": main / args.frames * 1e6}
    for name in ("outbox-writer", "paho-mqtt-client-bench-publish"):
        per[name] = (cpu1.get(name, 0.0) - cpu0.get(name, 0.0)) / args.frames * 1e6
    per["total"] = sum(per.values())
    return per


def paced(step: object, frames: int, rate: float) -> None:
    """Call ``step(i)`` ``frames`` times at ``rate`` per second (sleeping between calls)."""
    assert callable(step)
    nxt = time.monotonic()
    for i in range(frames):
        step(i)
        nxt += 1 / rate
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class Drain:
    """A subscriber in its own process's terms: it keeps the broker from buffering, nothing else."""

    def __init__(self, port: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-drain-{os.getpid()}")
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("bench/#", qos=1)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--rate", type=float, default=300.0, help="frames per second (a defect storm: ~300)")
    p.add_argument("--qos", type=int, choices=(0, 1), default=1, help="the defects' QoS (results: 0)")
    p.add_argument("--defect-every", type=int, default=1, help="1: every frame a defect; 5: a normal line")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        broker = Mosquitto(Path(tmp) / "broker").start()
        drain = Drain(broker.port)
        try:
            per = run(args, Path(tmp), broker.port)
        finally:
            drain.close()
            broker.stop()
    print(f"{args.frames} frames at {args.rate:.0f}/s, defects at QoS {args.qos} every {args.defect_every}")
    for name, us in per.items():
        print(f"  {name:34s} {us:7.1f} µs CPU per frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
