"""Shadow runs in the real agent over a real mosquitto: the line is unchanged, promote, a failing shadow.

The active model is the demo package; the shadow is a fixture classifier (cls_nhwc.onnx) that
calls every demo golden image ``ok``, so the two agree on the ok frames only.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest

from agent.model.store import ModelStore
from tests.support.agentproc import AgentProcess, run_agent, write_config
from tests.support.models import make_package
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.paths import DEMO_MODEL, REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FRAMES = 120


def fixture_package(root: Path) -> Path:
    model = REPO / "tests" / "fixtures" / "models" / "cls_nhwc.onnx"
    labels = ["ok", "scratch", "spot"]
    return make_package(root, model, name="fixture", version="0.1.0", labels=labels, width=32, height=32)


def frames(path: Path, n: int) -> Path:
    """``n`` frames cycling through the demo's golden images (ok and defects)."""
    path.mkdir(parents=True, exist_ok=True)
    golden = sorted((DEMO_MODEL / "golden").glob("*.png"))
    for i in range(n):
        shutil.copy(golden[i % len(golden)], path / f"{i:04d}.png")
    return path


def run_line(
    work: Path, port: int, prefix: str, source: Path, **sections: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One finite realtime run at 30 fps: every result payload, and the last health report."""
    root = f"{prefix}/plant-a/line-3/cam-01"
    cfg = write_config(
        work,
        port=port,
        prefix=prefix,
        source=f"dir:{source}",
        camera={"fps": 30, "realtime": True, "loop": False},
        health={"interval_s": 0.5},
        **sections,
    )
    with Subscriber(port, [f"{root}/result"]) as sub, AgentProcess(cfg) as agent:
        assert agent.wait(120) == 0, agent.output
        results = sub.wait_for(FRAMES, 10)
    health = json.loads((work / "state" / "health.json").read_text())
    return [json.loads(p) for _, p, _ in results], health


def infer_ms(results: list[dict[str, Any]]) -> float:
    return statistics.median(r["latency_ms"]["preprocess"] + r["latency_ms"]["infer"] for r in results)


def test_the_line_is_unchanged_with_a_shadow_on(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    source = frames(tmp_path / "frames", FRAMES)
    shadow = fixture_package(tmp_path / "fixture")
    base, _ = run_line(tmp_path / "base", mosquitto.port, unique_prefix + "b", source)
    root = f"{unique_prefix}s/plant-a/line-3/cam-01"
    with Subscriber(mosquitto.port, [f"{root}/shadow"]) as summaries:
        with_shadow, health = run_line(
            tmp_path / "shadow", mosquitto.port, unique_prefix + "s", source,
            model={"shadow": str(shadow)}, shadow={"window_s": 1.0},
        )  # fmt: skip
        windows = summaries.wait_for(1, 10)
    # Every frame has its result either way (the shadow never drops one), at about the same latency.
    assert len(base) == len(with_shadow) == FRAMES
    assert sorted(r["frame"] for r in with_shadow) == list(range(FRAMES))
    assert [r["label"] for r in with_shadow] == [r["label"] for r in base]
    base_ms, shadow_ms = infer_ms(base), infer_ms(with_shadow)
    assert shadow_ms <= base_ms * 1.5 + 1.0, (base_ms, shadow_ms)
    # The shadow ran on a good share of the frames, and its figures are those of the pair.
    figures = health["shadow"]
    assert figures["state"] in ("running", "closed") and figures["frames"] >= FRAMES // 4, figures
    assert figures["per_class"]["ok"]["agreement"] == 1.0
    assert all(v["agreement"] == 0.0 for k, v in figures["per_class"].items() if k != "ok")
    assert figures["frames"] + sum(figures["skipped"].values()) <= FRAMES
    doc = json.loads(windows[0][1])
    assert doc["device"] == "cam-01" and doc["model"]["name"] == "fixture" and "window" in doc


def _command(sub: Subscriber, root: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    sub.publish(
        f"{root}/cmd/{name}", json.dumps(body).encode(), response_topic=f"{root}/replies", correlation=b"c1"
    )
    got = sub.wait_for(1, 60, where=lambda m: m[0] == f"{root}/replies")
    assert got, f"no reply to {name}"
    return dict(json.loads(got[0][1]))


def test_promote_shadow_swaps_it_in_and_keeps_it(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    root = f"{unique_prefix}/plant-a/line-3/cam-01"
    shadow = fixture_package(tmp_path / "fixture")
    link = tmp_path / "current"
    link.symlink_to(DEMO_MODEL)
    cfg = write_config(
        tmp_path / "work",
        port=mosquitto.port,
        prefix=unique_prefix,
        source=f"dir:{DEMO_MODEL / 'golden'}",
        package=link,
        camera={"fps": 20, "realtime": True, "loop": True},
        model={"shadow": str(shadow)},
        inference={"rollback_frames": 10},
    )
    with (
        Subscriber(mosquitto.port, [f"{root}/replies", f"{root}/result", f"{root}/event"]) as sub,
        AgentProcess(cfg),
    ):
        assert sub.wait_for(1, 30, where=lambda m: m[0] == f"{root}/result")
        running = sub.wait_for(  # promotable once loaded: a loaded machine takes a while
            1, 60, where=lambda m: m[0] == f"{root}/event" and b'"shadow"' in m[1] and b'"running"' in m[1]
        )
        assert running, "the shadow never started"
        reply = _command(sub, root, "promote-shadow", {"wait_s": 60})
        assert reply["ok"] and reply["result"]["state"] == "active", reply
        assert reply["result"]["name"] == "fixture" and reply["result"]["kept"] is True
        after = sub.wait_for(1, 10, where=lambda m: m[0] == f"{root}/result" and b'"fixture"' in m[1])
        assert after, "no result from the promoted model"
        promoted = sub.wait_for(
            1, 10, where=lambda m: m[0] == f"{root}/event" and b'"shadow"' in m[1] and b'"promoted"' in m[1]
        )
        assert promoted, "the shadow did not stand down"
    assert link.resolve() == shadow.resolve()  # kept: a restart runs the promoted model


def test_a_shadow_that_fails_to_load_leaves_the_line_running(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    root = f"{unique_prefix}/plant-a/line-3/cam-01"
    cfg = write_config(
        tmp_path,
        port=mosquitto.port,
        prefix=unique_prefix,
        source=f"dir:{DEMO_MODEL / 'golden'}",
        model={"shadow": str(tmp_path / "no-such-package")},
    )
    with Subscriber(mosquitto.port, [f"{root}/result", f"{root}/event"]) as sub, AgentProcess(cfg) as agent:
        assert agent.wait(60) == 0, agent.output
        events = sub.wait_for(1, 10, where=lambda m: m[0] == f"{root}/event" and b'"shadow"' in m[1])
        results = sub.wait_for(10, 10, where=lambda m: m[0] == f"{root}/result")
    assert len(results) == 10
    event = json.loads(events[0][1])
    assert event["details"]["state"] == "failed" and "no-such-package" in event["details"]["reason"]
    health = json.loads((tmp_path / "state" / "health.json").read_text())
    assert health["shadow"]["state"] == "failed" and health["shadow"]["frames"] == 0


def test_model_promote_on_the_device_switches_the_store_and_the_running_agent(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    root = f"{unique_prefix}/plant-a/line-3/cam-01"
    store = ModelStore(tmp_path / "store")
    for version in ("1.0.0", "1.1.0"):
        src = tmp_path / f"src-{version}"
        shutil.copytree(DEMO_MODEL, src)
        manifest = src / "manifest.yaml"
        manifest.write_text(manifest.read_text().replace("version: 1.0.0", f"version: {version}", 1))
        store.install(src)
    store.activate("demo-defects", "1.0.0")
    cfg = write_config(
        tmp_path / "work",
        port=mosquitto.port,
        prefix=unique_prefix,
        source=f"dir:{DEMO_MODEL / 'golden'}",
        package=store.root / "demo-defects" / "current",
        camera={"fps": 20, "realtime": True, "loop": True},
        model={"shadow": str(store.root / "demo-defects" / "1.1.0")},
        inference={"rollback_frames": 10},
    )
    with Subscriber(mosquitto.port, [f"{root}/result"]) as sub, AgentProcess(cfg) as agent:
        assert sub.wait_for(1, 30)
        agent.wait_for_log("shadow_started", 30)
        pidfile = tmp_path / "agent.pid"
        pidfile.write_text(str(agent.proc.pid))
        args = ["model", "promote", "--config", str(cfg), "--reload", f"pid:{pidfile}", "--json"]
        proc = run_agent([*args, "--confirm-timeout", "60"], timeout=90)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert json.loads(proc.stdout)["version"] == "1.1.0"
        assert sub.wait_for(1, 10, where=lambda m: b'"version":"1.1.0"' in m[1])
    assert store.current("demo-defects") == "1.1.0"
