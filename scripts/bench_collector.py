"""Collector ingest rate for 50 KB JPEG samples, and the sampler's cost per frame on the agent.

    python scripts/bench_collector.py [--samples 2000] [--size 50000] [--frames 20000]

Ingest: the collector's session is created, N samples are queued for it in a real mosquitto
while it is offline, then `inspection-agent collector` is started and timed until its index
holds all N (validated, fsync'd, committed, acknowledged). Baseline in the same run: a bare
paho subscriber draining the same N messages from the broker (no validation, no storage).

Sampler: ``Sampler.observe`` on frames no policy picks (the common case) against an empty
observer call as the baseline; p50/p99 in microseconds. Targets: >= 500 samples/s, < 500 us p99.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.capture.base import Frame  # noqa: E402
from agent.config.observers import QuotaConfig, SamplingConfig, SamplingPolicyConfig  # noqa: E402
from agent.config.schema import DeviceConfig  # noqa: E402
from agent.model.result import InferenceResult  # noqa: E402
from agent.protocol.ids import new_id  # noqa: E402
from agent.protocol.wire import CONTENT_TYPE, META_PROPERTY  # noqa: E402
from agent.sampling import Sampler, Wire  # noqa: E402

PREFIX = "bench"
TOPIC = f"{PREFIX}/plant-a/line-3/cam-01/sample"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_inflight_messages 0\nmax_queued_messages 0\nmessage_size_limit 0\n"
    )
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    raise SystemExit("mosquitto did not start")


def sample_jpeg(size: int) -> tuple[bytes, int, int]:
    rng = np.random.default_rng(0)
    side = int((size / 1.2) ** 0.5)
    while True:
        _ok, buf = cv2.imencode(
            ".jpg", rng.integers(0, 255, (side, side, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 60]
        )
        if len(buf) <= size:
            return buf.tobytes(), side, side
        side = int(side * 0.97)


def publish(port: int, n: int, size: int) -> None:
    data, w, h = sample_jpeg(size)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    for i in range(n):
        meta = {
            "id": new_id(), "ts": 1767225600000 + i, "device": "cam-01", "site": "plant-a", "line": "line-3",
            "frame": i, "model": {"name": "demo-defects", "version": "1.0.0"}, "label": "ok", "score": 0.5,
            "scores": {"ok": 0.5, "scratch": 0.5}, "reasons": ["low_confidence"],
            "image": {"width": w, "height": h, "bytes": len(data)},
        }  # fmt: skip
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = CONTENT_TYPE
        props.UserProperty = [(META_PROPERTY, json.dumps(meta))]
        infos.append(client.publish(TOPIC, data, qos=1, properties=props))
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def session(port: int, client_id: str, expiry: int = 600) -> paho.Client:
    """Connect a persistent session that subscribes, then leave it offline (messages queue for it)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    return client


def bench_raw(port: int, n: int, size: int) -> float:
    got = threading.Event()
    count = [0]

    def on_message(*_: object) -> None:
        count[0] += 1
        if count[0] >= n:
            got.set()

    client = session(port, "bench-raw")
    client.subscribe(f"$share/raw/{TOPIC}", 1)
    client.loop(1.0)
    client.disconnect()
    publish(port, n, size)
    client = session(port, "bench-raw")
    client.on_message = on_message
    t0 = time.perf_counter()
    client.loop_start()
    got.wait(120)
    dt = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return n / dt


def bench_collector(port: int, n: int, size: int, work: Path) -> float:
    cfg = {
        "broker": {"host": "127.0.0.1", "port": port, "client_id": "bench-col", "session_expiry_s": 600},
        "subscribe": {"prefix": PREFIX, "shared_group": "bench", "defects": False},
        "storage": {"root": str(work / "store")},
        "log": {"level": "warning", "format": "json"},
    }
    (work / "collector.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "agent", "collector", "--config", str(work / "collector.yaml")]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(cmd, env=env)
    index = work / "store" / "index.db"
    while not index.exists():
        time.sleep(0.1)
    time.sleep(1.0)  # subscribed
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    publish(port, n, size)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    try:
        while (first := stored(index)) == 0:  # Python start-up and connecting are not ingest
            time.sleep(0.01)
        t0 = time.perf_counter()
        while stored(index) < n:
            time.sleep(0.05)
            if time.perf_counter() - start > 300:
                raise SystemExit("collector did not store every sample within 300 s")
        return (n - first) / (time.perf_counter() - t0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def stored(index: Path) -> int:
    with sqlite3.connect(index, timeout=10) as db:
        return int(db.execute("SELECT count(*) FROM samples").fetchone()[0])


class NullSink:
    connected = True

    def publish(self, *args: object, **kwargs: object) -> None:
        pass


def bench_sampler(frames: int) -> tuple[tuple[float, float], tuple[float, float]]:
    cfg = SamplingConfig(
        enabled=True,
        seed=1,
        quota=QuotaConfig(per_minute=60),
        low_confidence=SamplingPolicyConfig(enabled=True, margin=0.1),
        near_threshold=SamplingPolicyConfig(enabled=True),
        classes=SamplingPolicyConfig(enabled=True, labels=["hole"]),
        random=SamplingPolicyConfig(enabled=True, rate=0.0),  # the draw happens, nothing is picked
    )
    wire = Wire(TOPIC, 1, 262144, True)
    sampler = Sampler(cfg, sink=NullSink(), wire=wire, device=DeviceConfig("cam-01", "plant-a", "line-3"))
    image = np.zeros((480, 640, 3), np.uint8)
    frame = Frame(image, 0, 0, 0.0)
    result = InferenceResult("ok", 0.97, {"ok": 0.97, "scratch": 0.02, "dent": 0.01}, False)
    payload = {"id": "x", "model": {"name": "m", "version": "1"}}

    def noop(_f: Frame, _r: InferenceResult, _p: dict[str, object]) -> None:
        pass

    out = []
    for fn in (sampler.observe, noop):
        times = np.empty(frames)
        for i in range(frames):
            t0 = time.perf_counter()
            fn(frame, result, payload)
            times[i] = time.perf_counter() - t0
        out.append((float(np.percentile(times, 50) * 1e6), float(np.percentile(times, 99) * 1e6)))
    assert sampler.stats()["sampled"] == 0
    sampler.close()
    return out[0], out[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--size", type=int, default=50000)
    p.add_argument("--frames", type=int, default=20000)
    args = p.parse_args()
    (s50, s99), (b50, b99) = bench_sampler(args.frames)
    print(f"sampler observe (frame not sampled): p50 {s50:.1f} us  p99 {s99:.1f} us  (target p99 < 500 us)")
    print(f"  baseline empty observer call:       p50 {b50:.1f} us  p99 {b99:.1f} us")
    work = Path(tempfile.mkdtemp(prefix="bench-collector-"))
    broker, port = start_broker(work)
    try:
        raw = bench_raw(port, args.samples, args.size)
        rate = bench_collector(port, args.samples, args.size, work)
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"collector ingest, {args.samples} x {args.size // 1000} KB samples: "
        f"{rate:.0f} samples/s (target >= 500)"
    )
    print(f"  baseline bare subscriber (no storage):  {raw:.0f} samples/s  ratio {rate / raw:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
