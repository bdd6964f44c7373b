"""Samples from the edge to the collector through a real mosquitto, with real subprocesses.

- the real agent replays a clip, samples its unsure frames; the real collector stores exactly those;
- two collectors on one shared subscription split 1,000 samples, each stored exactly once;
- a collector killed with SIGKILL mid-stream and restarted loses and duplicates nothing;
- bad messages through the broker are quarantined and the collector keeps going;
- (slow) the export retrains the demo model with the demo training script.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import numpy as np
import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.protocol.schema import load_schema
from agent.protocol.wire import CONTENT_TYPE, META_PROPERTY, frame
from tests.support.agentproc import AgentProcess, agent_command, run_agent, write_config
from tests.support.models import make_package, slow_classifier
from tests.support.mosquitto import HOST, Mosquitto, Subscriber
from tests.support.paths import DEMO_MODEL, REPO
from tests.unit.collector.samples import jpeg, jpeg_of_size, meta

pytestmark = pytest.mark.integration

SCHEMA = load_schema("sample")


class CollectorProcess:
    """``inspection-agent collector --config PATH`` with its own storage root."""

    def __init__(
        self, work: Path, port: int, prefix: str, *, client_id: str, group: str | None = "g"
    ) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.root = work / "store"
        doc: dict[str, Any] = {
            "broker": {"host": HOST, "port": port, "client_id": client_id, "session_expiry_s": 600},
            "subscribe": {"prefix": prefix, "shared_group": group},
            "storage": {"root": str(self.root)},
            "devices": {"allowed_prefixes": ["cam-"]},
            "log": {"level": "info", "format": "json"},
        }
        self.config = work / "collector.yaml"
        self.config.write_text(yaml.safe_dump(doc))
        self.log_path = work / "collector.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CollectorProcess:
        self.start_process()
        deadline = time.monotonic() + 30
        while "collector_connected" not in self.output:
            assert self.proc.poll() is None, self.output
            assert time.monotonic() < deadline, self.output
            time.sleep(0.05)
        return self

    def start_process(self) -> CollectorProcess:
        """Start without waiting for the broker connection."""
        log = self.log_path.open("ab")
        env = {"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"}
        self.proc = subprocess.Popen(
            [*agent_command(), "collector", "--config", str(self.config)], stdout=log, stderr=log, env=env
        )
        log.close()
        return self

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ids(self) -> list[str]:
        if not (self.root / "index.db").exists():
            return []
        with sqlite3.connect(self.root / "index.db", timeout=10) as db:
            return [r[0] for r in db.execute("SELECT id FROM samples")]

    def quarantined(self) -> list[str]:
        with sqlite3.connect(self.root / "index.db", timeout=10) as db:
            return [r[0] for r in db.execute("SELECT reason FROM quarantine ORDER BY seq")]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return None if self.proc is None else self.proc.returncode


@pytest.fixture
def collectors(tmp_path: Path) -> Iterator[Callable[..., CollectorProcess]]:
    made: list[CollectorProcess] = []

    def make(name: str, port: int, prefix: str, **kw: Any) -> CollectorProcess:
        made.append(CollectorProcess(tmp_path / name, port, prefix, **kw))
        return made[-1]

    yield make
    for c in made:
        c.kill()


class Publisher:
    """A real paho client sending properly framed samples (MQTT 5 properties or 3.1.1 framing)."""

    def __init__(self, port: int, *, v5: bool = True) -> None:
        self.v5 = v5
        protocol = paho.MQTTv5 if v5 else paho.MQTTv311
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=protocol
        )
        self.client.max_inflight_messages_set(100)
        self.client.connect(HOST, port)
        self.client.loop_start()

    def sample(self, topic: str, doc: dict[str, Any], data: bytes) -> paho.MQTTMessageInfo:
        if not self.v5:
            return self.client.publish(topic, frame(json.dumps(doc).encode(), data), qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = CONTENT_TYPE
        props.UserProperty = [(META_PROPERTY, json.dumps(doc))]
        return self.client.publish(topic, data, qos=1, properties=props)

    def raw(self, topic: str, payload: bytes, props: Properties | None = None) -> paho.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1, properties=props)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(condition: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what()
        time.sleep(0.1)


def send_samples(pub: Publisher, prefix: str, n: int, size: int = 2000) -> list[str]:
    images = [jpeg_of_size(size, seed=i) for i in range(8)]
    metas = [meta(images[i]) for i in range(8)]
    ids, infos = [], []
    for i in range(n):
        doc = {**metas[i % 8], "id": meta(images[0])["id"], "frame": i}
        ids.append(doc["id"])
        infos.append(pub.sample(f"{prefix}/plant-a/line-3/cam-01/sample", doc, images[i % 8]))
    for info in infos:
        info.wait_for_publish(30)
    return ids


def test_two_collectors_split_one_shared_subscription(
    mosquitto: Mosquitto, unique_prefix: str, collectors: Callable[..., CollectorProcess]
) -> None:
    a = collectors("a", mosquitto.port, unique_prefix, client_id="col-a").start()
    b = collectors("b", mosquitto.port, unique_prefix, client_id="col-b").start()
    pub = Publisher(mosquitto.port)
    try:
        sent = send_samples(pub, unique_prefix, 1000)
    finally:
        pub.close()
    wait_until(lambda: len(a.ids()) + len(b.ids()) >= 1000, 90, lambda: a.output[-2000:] + b.output[-2000:])
    time.sleep(0.5)
    ids_a, ids_b = a.ids(), b.ids()
    assert not set(ids_a) & set(ids_b)
    assert sorted(ids_a + ids_b) == sorted(sent)
    assert len(ids_a) > 100 and len(ids_b) > 100, (len(ids_a), len(ids_b))
    files = list(a.root.glob("*/*/unlabeled/*/*.jpg")) + list(b.root.glob("*/*/unlabeled/*/*.jpg"))
    assert len(files) == 1000
    assert a.proc is not None  # the collector names its threads for top -H (agent/threadnames.py)
    names = {(t / "comm").read_text().strip() for t in Path(f"/proc/{a.proc.pid}/task").iterdir()}
    assert {"collector-parse", "collector-write", "collector-recor"} <= names, names
    assert a.stop() == 0 and b.stop() == 0


def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    mosquitto: Mosquitto, unique_prefix: str, collectors: Callable[..., CollectorProcess]
) -> None:
    col = collectors("c", mosquitto.port, unique_prefix, client_id="col-kill").start()
    pub = Publisher(mosquitto.port)
    try:
        images = [jpeg_of_size(20000, seed=i) for i in range(4)]
        sent: list[str] = []
        for i in range(600):
            doc = {**meta(images[i % 4]), "frame": i}
            sent.append(doc["id"])
            pub.sample(f"{unique_prefix}/plant-a/line-3/cam-01/sample", doc, images[i % 4])
            if i == 300:
                wait_until(lambda: len(col.ids()) >= 50, 30, lambda: col.output[-2000:])
                col.kill()
        stored_before = len(col.ids())
        assert stored_before < 600
        col.start()
        wait_until(lambda: len(col.ids()) >= 600, 90, lambda: col.output[-3000:])
    finally:
        pub.close()
    time.sleep(1.0)  # anything redelivered late must still be stored once
    ids = col.ids()
    assert len(ids) == len(set(ids)) == 600 and set(ids) == set(sent)
    assert len(list(col.root.glob("*/*/unlabeled/*/*.jpg"))) == 600
    assert col.stop() == 0


def test_bad_messages_through_the_broker_are_quarantined(
    mosquitto: Mosquitto, unique_prefix: str, collectors: Callable[..., CollectorProcess]
) -> None:
    col = collectors("q", mosquitto.port, unique_prefix, client_id="col-q", group=None).start()
    topic = f"{unique_prefix}/plant-a/line-3/cam-01/sample"
    good = jpeg(seed=1)
    v5, v311 = Publisher(mosquitto.port), Publisher(mosquitto.port, v5=False)
    try:
        infos = [
            v5.sample(topic, meta(good), good),
            v311.sample(topic, meta(good), good),  # the 3.1.1 framing, content-type-less
            v5.sample(topic, _claims(meta(good), 55), b"\xff\xd8\xff" + b"\x00" * 50 + b"\xff\xd9"),
            v5.sample(topic, {**meta(good), "ts": "yesterday"}, good),  # wrong type
            v5.sample(f"{unique_prefix}/plant-a/line-3/robot-9/sample", meta(good, device="robot-9"), good),
            v5.raw(topic, b"no framing at all"),
            v5.raw(f"{unique_prefix}/plant-a/line-3/cam-01/defect", b"[]"),
        ]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        v5.close()
        v311.close()
    wait_until(lambda: len(col.quarantined()) >= 5, 30, lambda: col.output[-3000:])
    assert len(col.ids()) == 2
    reasons = col.quarantined()
    assert len(reasons) == 5 and col.proc is not None and col.proc.poll() is None
    assert any("does not decode" in r for r in reasons), reasons
    assert any("at ts" in r for r in reasons) and any("not allowed" in r for r in reasons)
    stats = run_agent(["collector", "stats", "--config", str(col.config), "--since", "1h", "--json"])
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["quarantined"] == 5
    assert col.stop() == 0


def _claims(doc: dict[str, Any], size: int) -> dict[str, Any]:
    """Metadata whose image size matches an undecodable image, so only the decode can fail."""
    return {**doc, "image": {**doc["image"], "bytes": size}}


def _package(tmp_path: Path) -> Path:
    """The demo model when it is built, else a small real ONNX classifier (scores follow the colours)."""
    if (DEMO_MODEL / "manifest.yaml").exists():
        return DEMO_MODEL
    model = slow_classifier(tmp_path / "m.onnx", 1)
    return make_package(
        tmp_path / "pkg",
        model,
        name="demo-defects",
        version="1.0.0",
        labels=["ok", "scratch", "dent"],
        width=32,
        height=32,
    )


def _clip(tmp_path: Path) -> str:
    """The demo clip (with ambiguous frames) when its script is there, else a folder of varied frames."""
    script = REPO / "scripts" / "make_demo_clip.py"
    if script.exists():
        sys.path.insert(0, str(script.parent))
        from make_demo_clip import write_clip

        path = tmp_path / "clip.avi"
        write_clip(
            path,
            frames=60,
            width=320,
            height=240,
            fps=30,
            seed=5,
            codec="mjpg",
            defect_rate=0.3,
            ambiguous_rate=0.3,
        )
        return f"video:{path}"
    rng = np.random.default_rng(5)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(60):
        img = np.zeros((240, 320, 3), np.uint8)
        img[:] = rng.integers(0, 255, 3)
        cv2.circle(
            img, (int(rng.integers(40, 280)), 120), 30, tuple(int(v) for v in rng.integers(0, 255, 3)), -1
        )
        cv2.imwrite(str(folder / f"{i:04d}.png"), img)
    return f"dir:{folder}"


def test_agent_samples_reach_the_collector(
    mosquitto: Mosquitto, unique_prefix: str, collectors: Callable[..., CollectorProcess], tmp_path: Path
) -> None:
    col = collectors("col", mosquitto.port, unique_prefix, client_id="col-e2e").start()
    sampling = {
        "enabled": True,
        "seed": 1,
        "quota": {"per_minute": 1000},
        "dedup": {"enabled": False},
        "low_confidence": {"enabled": True, "min_score": 0.3, "max_score": 0.9},
    }
    cfg = write_config(
        tmp_path / "agent", port=mosquitto.port, prefix=unique_prefix, source=_clip(tmp_path),
        package=_package(tmp_path), sampling=sampling,
    )  # fmt: skip
    with Subscriber(mosquitto.port, f"{unique_prefix}/plant-a/line-3/cam-01/result") as results:
        agent = AgentProcess(cfg)
        try:
            assert agent.wait(120) == 0, agent.output[-3000:]
        finally:
            agent.stop()
        results.wait_for(60, timeout=10)
    log = tmp_path / "agent" / "state" / "samples.jsonl"
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    unsure = {
        doc["frame"]
        for doc in (json.loads(p) for _, p, _ in results.messages)
        if 0.3 <= max(doc["scores"].values()) <= 0.9
    }
    assert sent and {s["frame"] for s in sent} == unsure
    wait_until(lambda: len(col.ids()) >= len(sent), 30, lambda: col.output[-3000:])
    time.sleep(0.5)
    assert sorted(col.ids()) == sorted(s["id"] for s in sent)
    with sqlite3.connect(col.root / "index.db") as db:
        rows = db.execute("SELECT path, meta FROM samples").fetchall()
    for path, text in rows:
        doc = json.loads(text)
        jsonschema.validate(doc, SCHEMA)
        image = cv2.imread(str(col.root / path))
        assert image is not None and image.shape[:2] == (doc["image"]["height"], doc["image"]["width"])
        assert 0.3 <= max(doc["scores"].values()) <= 0.9 + 1e-4
    assert col.stop() == 0


@pytest.mark.slow
@pytest.mark.train
def test_export_retrains_the_demo_model(
    mosquitto: Mosquitto, unique_prefix: str, collectors: Callable[..., CollectorProcess], tmp_path: Path
) -> None:
    """The demo model's own collected samples, labeled from the clip's truth, plus the original
    (synthetic) data retrain it with scripts/train_demo.py --quick."""
    train = REPO / "scripts" / "train_demo.py"
    model = DEMO_MODEL
    if not (model / "manifest.yaml").exists():
        model = tmp_path / "base"
        cmd = [sys.executable, str(train), "--quick", "--out", str(model)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    col = collectors("col", mosquitto.port, unique_prefix, client_id="col-retrain").start()
    source = _clip(tmp_path)
    truth = json.loads(Path(source.partition(":")[2] + ".truth.json").read_text())
    labels = truth["labels"] if isinstance(truth, dict) else truth
    sampling = {"enabled": True, "seed": 1, "quota": {}, "dedup": {"enabled": False},
                "random": {"enabled": True, "rate": 1.0}}  # fmt: skip
    cfg = write_config(
        tmp_path / "agent", port=mosquitto.port, prefix=unique_prefix, source=source, package=model,
        sampling=sampling,
    )  # fmt: skip
    agent = AgentProcess(cfg)
    try:
        assert agent.wait(300) == 0, agent.output[-3000:]
    finally:
        agent.stop()
    wait_until(lambda: len(col.ids()) >= len(labels), 60, lambda: col.output[-3000:])
    assert col.stop() == 0
    with sqlite3.connect(col.root / "index.db") as db:
        frames = dict(db.execute("SELECT id, json_extract(meta, '$.frame') FROM samples").fetchall())
    by_label: dict[str, list[str]] = {}
    for sample_id, seq in frames.items():
        by_label.setdefault(labels[seq], []).append(sample_id)
    for label, ids in by_label.items():
        done = run_agent(["dataset", "label", *ids, "--as", label, "--config", str(col.config)])
        assert done.returncode == 0, done.stderr
    export = tmp_path / "export"
    done = run_agent(
        [
            "dataset",
            "export",
            "--to",
            str(export),
            "--split",
            "70/15/15",
            "--seed",
            "1",
            "--config",
            str(col.config),
        ]
    )
    assert done.returncode == 0, done.stderr
    assert sum(json.loads((export / "export.json").read_text())["counts"].values()) == len(frames)
    out = tmp_path / "retrained"
    cmd = [sys.executable, str(train), "--quick", "--data", f"imagefolder:{export}", "--data", "synthetic",
           "--out", str(out), "--version", "1.1.0"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "manifest.yaml").exists()
