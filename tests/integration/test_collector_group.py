"""Done means: two agents, two collectors on PostgreSQL + SeaweedFS in one shared group, one mosquitto.

A reference collector (local files, SQLite, its own subscription) receives the same samples. One
of the two is SIGKILLed mid-stream; the other carries on storing; the killed one is restarted (as
systemd would) and collects what the broker kept in its session. Then every sampled id is stored
exactly once (one row, one object), and the dataset export equals the reference collector's.
Also: PostgreSQL restarted under a running collector; the batch waits, nothing is lost.
"""

from __future__ import annotations

import filecmp
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.collector.index import Index
from tests.integration.test_sampling_collector import (
    CollectorProcess,
    Publisher,
    _package,
    send_samples,
    wait_until,
)
from tests.support.agentproc import AgentProcess, run_agent, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.paths import REPO
from tests.support.postgres import Postgres
from tests.support.s3 import SeaweedS3

pytestmark = pytest.mark.integration
FRAMES = 150  # realtime at 30 fps: 5 s of sending, long enough to kill a collector mid-stream


class ScaledCollector(CollectorProcess):
    """A collector process whose storage is S3 and whose index is PostgreSQL (or the local default)."""

    def __init__(self, work: Path, port: int, prefix: str, storage: dict[str, Any] | None, **kw: Any) -> None:
        super().__init__(work, port, prefix, **kw)
        doc = yaml.safe_load(self.config.read_text())
        if storage is not None:
            doc["storage"] = storage
        self.location: str | Path = storage["index"] if storage else self.root / "index.db"
        self.config.write_text(yaml.safe_dump(doc))

    def ids(self) -> list[str]:
        try:
            index = Index(self.location)
        except Exception:  # not created yet
            return []
        try:
            return [r[0] for r in index.query("SELECT id FROM samples")]
        finally:
            index.close()


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Callable[..., ScaledCollector]]:
    made: list[ScaledCollector] = []

    def make(name: str, *args: Any, **kw: Any) -> ScaledCollector:
        made.append(ScaledCollector(tmp_path / name, *args, **kw))
        return made[-1]

    yield make
    for c in made:
        c.kill()


def _clip(tmp_path: Path) -> str:
    sys.path.insert(0, str(REPO / "scripts"))
    from make_demo_clip import write_clip

    path = tmp_path / "clip.avi"
    write_clip(path, frames=FRAMES, width=160, height=120, fps=30, seed=7, codec="mjpg")
    return f"video:{path}"


def _export(col: ScaledCollector, target: Path) -> None:
    """Label every sample as its model predicted (one vote each), then export an image folder."""
    index = Index(col.location)
    try:
        by_label: dict[str, list[str]] = {}
        for sample_id, predicted in index.query("SELECT id, predicted FROM samples ORDER BY id"):
            by_label.setdefault(predicted, []).append(sample_id)
    finally:
        index.close()
    for label, ids in sorted(by_label.items()):
        done = run_agent(
            ["dataset", "label", *ids, "--as", label, "--reviewer", "qa", "--config", str(col.config)]
        )
        assert done.returncode == 0, done.stderr
    done = run_agent(["dataset", "export", "--to", str(target), "--seed", "3", "--config", str(col.config)])
    assert done.returncode == 0, done.stderr


def _same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        if rel == "provenance.jsonl":  # decision times differ; everything else must not
            strip = lambda p: [  # noqa: E731
                {k: v for k, v in json.loads(line).items() if k not in ("decided_at", "votes")}
                for line in p.read_text().splitlines()
            ]
            assert strip(a / rel) == strip(b / rel)
        else:
            assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


@pytest.fixture
def servers(
    mosquitto: Mosquitto, postgres: Postgres, seaweed: SeaweedS3
) -> tuple[Mosquitto, Postgres, SeaweedS3]:
    return mosquitto, postgres, seaweed


def test_two_agents_two_collectors_one_dataset(
    tmp_path: Path, servers: tuple[Mosquitto, Postgres, SeaweedS3], unique_prefix: str,
    group: Callable[..., ScaledCollector],
) -> None:  # fmt: skip
    mosquitto, postgres, seaweed = servers
    port = mosquitto.port
    shared = {"backend": "s3", "index": postgres.url, "s3": seaweed.storage_config()}
    a = group("a", port, unique_prefix, shared, client_id="col-a", group="g").start()
    b = group("b", port, unique_prefix, shared, client_id="col-b", group="g").start()
    ref = group("ref", port, unique_prefix, None, client_id="col-ref", group="ref").start()
    source = _clip(tmp_path)
    sampling = {"enabled": True, "seed": 1, "quota": {"per_minute": 10000}, "dedup": {"enabled": False},
                "random": {"enabled": True, "rate": 1.0}}  # fmt: skip
    agents = []
    for device in ("cam-01", "cam-02"):
        cfg = write_config(
            tmp_path / device, port=port, prefix=unique_prefix, source=source, package=_package(tmp_path),
            device=device, sampling=sampling,
            camera={"source": source, "fps": 30, "realtime": True, "loop": False},
        )  # fmt: skip
        agents.append(AgentProcess(cfg))
    try:
        wait_until(lambda: len(a.ids()) >= 10, 60, lambda: a.output[-2000:])
        a.kill()  # mid-stream: both agents are still sending
        before = len(b.ids())
        wait_until(lambda: len(b.ids()) > before + 20, 60, lambda: b.output[-2000:])  # b carries on
        for agent in agents:
            assert agent.wait(120) == 0, agent.output[-3000:]
    finally:
        for agent in agents:
            agent.stop()
    sent = [
        json.loads(line)["id"]
        for device in ("cam-01", "cam-02")
        for line in (tmp_path / device / "state" / "samples.jsonl").read_text().splitlines()
    ]
    assert len(sent) == 2 * FRAMES
    a.start()  # restarted: it stores what the broker kept in its session while it was down
    wait_until(lambda: len(b.ids()) >= len(sent), 90, lambda: a.output[-2000:] + b.output[-2000:])
    wait_until(lambda: len(ref.ids()) >= len(sent), 60, lambda: ref.output[-2000:])
    time.sleep(1.0)  # a late redelivery must still be stored once
    ids = b.ids()
    assert len(ids) == len(set(ids)) == len(sent) and set(ids) == set(sent)
    assert len([k for k in list(seaweed.keys()) if k.endswith(".jpg")]) == len(sent)
    assert a.stop() == 0 and b.stop() == 0 and ref.stop() == 0
    _export(b, tmp_path / "export-group")
    _export(ref, tmp_path / "export-ref")
    _same_tree(tmp_path / "export-group", tmp_path / "export-ref")


def test_postgresql_restarted_under_a_running_collector_loses_nothing(
    tmp_path: Path, servers: tuple[Mosquitto, Postgres, SeaweedS3], unique_prefix: str,
    group: Callable[..., ScaledCollector],
) -> None:  # fmt: skip
    mosquitto, postgres, seaweed = servers
    shared = {"backend": "s3", "index": postgres.url, "s3": seaweed.storage_config()}
    col = group("col", mosquitto.port, unique_prefix, shared, client_id="col-pg").start()
    pub = Publisher(mosquitto.port)
    try:
        first = send_samples(pub, unique_prefix, 100)
        wait_until(lambda: len(col.ids()) >= 100, 60, lambda: col.output[-3000:])
        postgres.stop()
        second = send_samples(pub, unique_prefix, 100)  # arrive while the database is down
        wait_until(lambda: "collector_backend_unavailable" in col.output, 30, lambda: col.output[-3000:])
        postgres.start()
        wait_until(lambda: len(col.ids()) >= 200, 60, lambda: col.output[-3000:])
    finally:
        pub.close()
    time.sleep(0.5)
    ids = col.ids()
    assert len(ids) == len(set(ids)) == 200 and set(ids) == set(first + second)
    assert "collector_backend_recovered" in col.output and col.proc is not None and col.proc.poll() is None
    assert len([k for k in list(seaweed.keys()) if k.endswith(".jpg")]) == 200
    assert col.stop() == 0
