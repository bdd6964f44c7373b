"""The demo behind scripts/demo.sh: broker, subscriber and agent on loopback, then a summary.

Run it through scripts/demo.sh (which installs what it needs). It writes a short
conveyor clip with the synthetic part generator, starts mosquitto on a free port,
subscribes to the device's defect events, runs `inspection-agent run` on the clip
and prints each defect as it arrives.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(work: Path, port: int) -> subprocess.Popen[bytes]:
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("mosquitto did not start")


def subscribe(port: int, root: str, seen: list[dict[str, object]], truth: list[str]) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    ready = threading.Event()

    def on_connect(c: mqtt.Client, *_: object) -> None:
        c.subscribe([(f"{root}/defect", 1), (f"{root}/status", 1), (f"{root}/event", 1)])
        ready.set()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        data = json.loads(msg.payload)
        kind = msg.topic.rsplit("/", 1)[1]
        if kind == "defect":
            seen.append(data)
            lat = data["latency_ms"]
            print(
                f"DEFECT frame {data['frame']:4d}  {data['label']:8s} {data['score']:.2f}  "
                f"(truth: {truth[data['frame']]:8s} {lat['infer']:.1f} ms infer, "
                f"{lat['total']:.1f} ms total)",
                flush=True,
            )
        elif kind == "status":
            print(
                f"status: {data.get('state')} model={data.get('model', {}).get('version', '-')}", flush=True
            )
        else:
            print(f"event: {data.get('type')}: {data.get('message')}", flush=True)

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    ready.wait(5)
    return client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=["auto", "tflite", "onnx"], default="auto")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--fps", type=float, default=15.0)
    args = parser.parse_args()
    from make_demo_clip import write_clip

    with tempfile.TemporaryDirectory(prefix="inspection-demo-") as tmp:
        work = Path(tmp)
        clip = work / "conveyor.avi"
        print(f"writing a {args.frames}-frame conveyor clip: {clip}", flush=True)
        truth = write_clip(
            clip, frames=args.frames, width=640, height=480, fps=args.fps, seed=7, codec="mjpg"
        )
        labels = list(truth["labels"])
        port = free_port()
        broker = start_broker(work, port)
        config = work / "agent.yaml"
        config.write_text(
            f"""device: {{id: cam-01, site: plant-a, line: line-3}}
camera: {{source: "video:{clip}", fps: {args.fps}, realtime: true, loop: false}}
model: {{path: {REPO / "models/demo-defects/1.0.0"}, runtime: {args.runtime}, threads: 1}}
inference: {{budget_ms: 50}}
mqtt: {{host: 127.0.0.1, port: {port}, topic_prefix: inspection, qos: 1}}
outbox: {{path: {work / "outbox.db"}}}
state: {{dir: {work}}}
log: {{level: info, format: console}}
"""
        )
        seen: list[dict[str, object]] = []
        sub = subscribe(port, "inspection/plant-a/line-3/cam-01", seen, labels)
        agent = [str(Path(sys.executable).parent / "inspection-agent"), "run", "--config", str(config)]
        print(f"running: {' '.join(agent)}", flush=True)
        try:
            code = subprocess.call(agent, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            time.sleep(0.5)
        finally:
            sub.loop_stop()
            sub.disconnect()
            broker.terminate()
            broker.wait(5)
        print(f"\nagent exited with {code}; {len(seen)} defect events received over MQTT", flush=True)
        print(summarize(labels, seen), flush=True)
        return code


def summarize(truth: list[str], events: list[dict[str, object]]) -> str:
    """Caught, missed, false alarms and class errors, each with its frames: the per-frame lines
    above show them one by one, this says what they add up to ("ok" is the only good label)."""
    reported = {int(str(e["frame"])): str(e["label"]) for e in events}
    defects = [i for i, label in enumerate(truth) if label != "ok"]
    caught = [i for i in defects if i in reported]
    missed = [i for i in defects if i not in reported]
    false_alarms = sorted(i for i in reported if i < len(truth) and truth[i] == "ok")
    class_errors = [i for i in caught if reported[i] != truth[i]]

    def frames(items: list[int]) -> str:
        return f" (frames {', '.join(map(str, items))})" if items else ""

    return "\n".join(
        [
            f"defective parts in the clip: {len(defects)}",
            f"  caught:       {len(caught)}",
            f"  missed:       {len(missed)}{frames(missed)}",
            f"  false alarms: {len(false_alarms)}{frames(false_alarms)} (good parts reported as defects)",
            f"  class errors: {len(class_errors)}{frames(class_errors)} (caught, but the wrong defect named)",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
