"""Issue 2's proof: `inspection-agent run` on a clip with the committed int8 demo model, a real mosquitto,
a real subscriber; every frame's result arrives, payloads validate, golden images keep their labels."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agent.protocol.schema import load_schema
from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.paths import DEMO_MODEL, REPO

pytestmark = pytest.mark.integration


def schema(name: str) -> dict[str, Any]:
    return load_schema(name)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(REPO / "scripts"))
    from make_demo_clip import write_clip

    path = tmp_path_factory.mktemp("clip") / "conveyor.avi"
    write_clip(path, frames=48, width=640, height=480, fps=30, seed=3, codec="mjpg", defect_rate=0.5)
    return path


def payloads(sub: Subscriber, kind: str) -> list[dict[str, Any]]:
    return [json.loads(p) for t, p, _ in sub.messages if t.endswith("/" + kind)]


@pytest.mark.parametrize("runtime", ["tflite", "onnx"])
def test_every_frame_result_arrives_and_validates(
    mosquitto: Mosquitto, unique_prefix: str, clip: Path, tmp_path: Path, runtime: str
) -> None:
    truth = json.loads(Path(f"{clip}.truth.json").read_text())
    labels = truth["labels"] if isinstance(truth, dict) else truth
    root = f"{unique_prefix}/plant-a/line-3/cam-01"
    with Subscriber(mosquitto.port, f"{root}/#") as sub:
        cfg = write_config(
            tmp_path, port=mosquitto.port, prefix=unique_prefix, source=f"video:{clip}", runtime=runtime
        )
        with AgentProcess(cfg) as agent:
            assert agent.wait(120) == 0, agent.output
        # The agent has exited; the broker may still be handing the last messages to us.
        sub.wait_for(48, timeout=10, where=lambda m: m[0].endswith("/result"))
        sub.wait_for(1, timeout=10, where=lambda m: m[0].endswith("/status") and b'"offline"' in m[1])
        results = payloads(sub, "result")
        defects = payloads(sub, "defect")
    assert [r["frame"] for r in results] == list(range(48)), agent.output
    result_schema, defect_schema = schema("result"), schema("defect")
    for r in results:
        jsonschema.validate(r, result_schema)
        assert r["model"] == {**r["model"], "name": "demo-defects", "version": "1.0.0", "runtime": runtime}
    for d in defects:
        jsonschema.validate(d, defect_schema)
    assert [d["id"] for d in defects] == [r["id"] for r in results if r["defect"]]
    correct = sum(r["label"] == labels[r["frame"]] for r in results)
    assert correct / len(results) >= 0.9, [(r["label"], labels[r["frame"]]) for r in results]
    statuses = payloads(sub, "status")
    assert statuses[0]["state"] == "online" and statuses[-1]["state"] == "offline"
    for status in statuses:
        jsonschema.validate(status, schema("status"))
    assert statuses[-1]["reason"] == "finished"


@pytest.mark.parametrize("runtime", ["tflite", "onnx"])
def test_golden_images_keep_their_labels(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path, runtime: str
) -> None:
    expected = json.loads((DEMO_MODEL / "golden" / "expected.json").read_text())["images"]
    root = f"{unique_prefix}/plant-a/line-3/cam-01"
    with Subscriber(mosquitto.port, f"{root}/result") as sub:
        cfg = write_config(
            tmp_path,
            port=mosquitto.port,
            prefix=unique_prefix,
            source=f"dir:{DEMO_MODEL / 'golden'}",
            runtime=runtime,
        )
        with AgentProcess(cfg) as agent:
            assert agent.wait(60) == 0, agent.output
        sub.wait_for(len(expected), timeout=5)
        got = {r["ref"]: r for r in payloads(sub, "result")}
    assert set(got) == set(expected)
    for name, exp in expected.items():
        assert got[name]["label"] == exp["label"], name
        scores = list(got[name]["scores"].values())
        assert (
            max(abs(a - b) for a, b in zip(scores, exp["scores"][runtime], strict=True))
            <= expected_tolerance()
        )


def expected_tolerance() -> float:
    return float(json.loads((DEMO_MODEL / "golden" / "expected.json").read_text())["tolerance"])


def test_broker_down_at_start_keeps_defects_in_the_outbox_until_it_comes(
    tmp_path: Path, unique_prefix: str, clip: Path
) -> None:
    broker = Mosquitto(tmp_path / "broker")  # configured on its port, not started yet
    cfg = write_config(
        tmp_path / "agent",
        port=broker.port,
        prefix=unique_prefix,
        source=f"video:{clip}",
        mqtt={"reconnect_min_s": 1.0, "reconnect_max_s": 2.0},
    )
    try:
        with AgentProcess(cfg) as agent:
            waiting = agent.wait_for_log("source_finished_draining_outbox", 60)
            assert waiting["outbox_depth"] > 0 and not waiting["connected"]  # it ran on without a broker
            broker.start()
            with Subscriber(broker.port, f"{unique_prefix}/plant-a/line-3/cam-01/defect") as sub:
                assert agent.wait(60) == 0, agent.output
                stopped = agent.wait_for_log("agent_stopped", 1)
                got = sub.wait_for(stopped["defects"], timeout=10)
        ids = {json.loads(p)["id"] for _, p, _ in got}
        assert (
            stopped["defects"] > 0 and len(ids) == stopped["defects"]
        )  # every defect arrived; dupes only by id
    finally:
        broker.kill()


def test_waiting_for_a_log_line_fails_as_soon_as_the_agent_exits(tmp_path: Path) -> None:
    """The helper above must not sit out its whole timeout on an agent that already died."""
    cfg = write_config(tmp_path, port=9, prefix="gone", source=f"dir:{tmp_path / 'no-such-dir'}")
    with AgentProcess(cfg) as agent:
        started = time.monotonic()
        with pytest.raises(AssertionError, match=r"agent exited \(\d+\) without logging agent_never_logs"):
            agent.wait_for_log("agent_never_logs", timeout=120)
        assert time.monotonic() - started < 60  # it exits within seconds; the deadline was never reached
