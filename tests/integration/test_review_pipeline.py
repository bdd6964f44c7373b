"""Agent -> collector -> review -> export -> train_demo.py, end to end, with real processes.

The real agent samples every frame of a clip through a real mosquitto; the real collector (with
its review app) stores them; two reviewers label them through the JSON API (truth for most
frames, a disagreement on a few that an admin decides), the collector is restarted mid-review
without losing a vote, ``dataset export`` writes only the consensus labels, and the demo
training script retrains on them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.integration.test_sampling_collector import CollectorProcess, _clip, collectors, wait_until
from tests.support.agentproc import AgentProcess, agent_command, run_agent, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.paths import DEMO_MODEL, REPO
from tests.support.webclient import WebClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.train]  # train_demo.py needs TensorFlow
__all__ = ["collectors"]  # the fixture, used by name

USERS = {"rita": ("reviewer", "rita-password"), "raj": ("reviewer", "raj-password"),
         "ada": ("admin", "ada-password")}  # fmt: skip


def with_review(col: CollectorProcess) -> str:
    """Turn on the review app (two votes required) and add the users with the real CLI."""
    doc = yaml.safe_load(col.config.read_text())
    doc["web"] = {"listen": "127.0.0.1:0", "users_file": "users.yaml"}
    doc["review"] = {"votes_required": 2}
    col.config.write_text(yaml.safe_dump(doc))
    for name, (role, password) in USERS.items():
        cmd = ["collector", "adduser", name, "--role", role, "--password-stdin", "--config", str(col.config)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run([*agent_command(), *cmd], input=password + "\n", capture_output=True,
                              text=True, env=env, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
    return str(col.config)


def review_url(col: CollectorProcess, starts: int = 1) -> str:
    """The review app's address once the collector's ``starts``-th start has logged it."""
    urls: Callable[[], list[str]] = lambda: re.findall(r'"url": "(http://[^"]+)"', col.output)  # noqa: E731
    wait_until(lambda: len(urls()) >= starts, 30, lambda: col.output[-2000:])
    return urls()[-1]


def login(url: str, name: str) -> WebClient:
    client = WebClient(url)
    assert client.login(name, USERS[name][1]).status == 303
    return client


def test_agent_collector_review_export_train(
    mosquitto: Mosquitto, unique_prefix: str, collectors: Callable[..., CollectorProcess], tmp_path: Path
) -> None:
    train = REPO / "scripts" / "train_demo.py"
    model = DEMO_MODEL
    if not (model / "manifest.yaml").exists():
        model = tmp_path / "base"
        done = subprocess.run([sys.executable, str(train), "--quick", "--out", str(model)],
                              capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    col = collectors("col", mosquitto.port, unique_prefix, client_id="col-review")
    with_review(col)
    col.start()
    source = _clip(tmp_path)
    truth = json.loads(Path(source.partition(":")[2] + ".truth.json").read_text())
    labels = truth["labels"] if isinstance(truth, dict) else truth
    sampling = {"enabled": True, "seed": 1, "quota": {}, "dedup": {"enabled": False},
                "random": {"enabled": True, "rate": 1.0}}  # fmt: skip
    cfg = write_config(tmp_path / "agent", port=mosquitto.port, prefix=unique_prefix, source=source,
                       package=model, sampling=sampling)  # fmt: skip
    agent = AgentProcess(cfg)
    try:
        assert agent.wait(300) == 0, agent.output[-3000:]
    finally:
        agent.stop()
    wait_until(lambda: len(col.ids()) >= len(labels), 60, lambda: col.output[-3000:])

    rita, raj = login(review_url(col), "rita"), login(review_url(col), "raj")
    queue = rita.get("/api/samples?state=unreviewed&order=uncertainty&limit=500").json()
    assert queue["remaining"] == len(labels) == len(queue["items"])
    frames = {it["id"]: rita.get(f"/api/samples/{it['id']}").json()["meta"]["frame"] for it in queue["items"]}
    ids = sorted(frames)
    disputed = set(ids[:3])
    for sid in ids:
        assert rita.post(f"/api/samples/{sid}/votes", {"label": labels[frames[sid]]}).status == 201
    col.stop()  # restarted mid-review: every vote is in the index, sessions stay valid
    col.start()
    url = review_url(col, starts=2)
    rita.base = raj.base = url
    every = rita.get("/api/samples/" + ids[0]).json()["labels"]
    for sid in ids:
        truth_label = labels[frames[sid]]
        vote = next(x for x in every if x != truth_label) if sid in disputed else truth_label
        assert raj.post(f"/api/samples/{sid}/votes", {"label": vote}).status == 201
    ada = login(url, "ada")
    assert {it["id"] for it in ada.get("/api/adjudication").json()["items"]} == disputed
    for sid in disputed:
        assert ada.post(f"/api/samples/{sid}/adjudication", {"label": labels[frames[sid]]}).status == 200
    stats = ada.get("/api/stats").json()
    assert stats["states"] == {"labeled": len(ids)}
    assert col.stop() == 0

    export = tmp_path / "export"
    done = run_agent(["dataset", "export", "--to", str(export), "--split", "70/15/15", "--seed", "1",
                      "--config", str(col.config)])  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = {p.stem: p.parent.name for p in export.glob("*/*/*.jpg")}
    assert got == {sid: labels[frames[sid]] for sid in ids}
    prov = [json.loads(line) for line in (export / "provenance.jsonl").read_text().splitlines()]
    assert {p["id"] for p in prov if p["how"] == "adjudicated"} == disputed
    assert all({v["reviewer"] for v in p["votes"]} == {"rita", "raj"} for p in prov)

    out = tmp_path / "retrained"
    started = time.monotonic()
    cmd = [sys.executable, str(train), "--quick", "--data", f"imagefolder:{export}", "--data", "synthetic",
           "--out", str(out), "--version", "1.1.0"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "manifest.yaml").exists(), time.monotonic() - started
