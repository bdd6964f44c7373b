"""The agent's own commands over a real broker: trigger mode, reload-model confinement, status, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.paths import DEMO_MODEL

pytestmark = pytest.mark.integration


def _command(
    sub: Subscriber, root: str, name: str, body: dict[str, Any] | bytes, corr: bytes, *, timeout: float = 15
) -> dict[str, Any]:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    sub.publish(f"{root}/cmd/{name}", payload, response_topic=f"{root}/replies", correlation=corr)
    got = sub.wait_for(1, timeout, where=lambda m: m[0] == f"{root}/replies" and m[2].CorrelationData == corr)
    assert got, f"no reply to {name}"
    return dict(json.loads(got[0][1]))


def _wait_online(sub: Subscriber, root: str) -> None:
    online = sub.wait_for(1, 30, where=lambda m: m[0] == f"{root}/status" and b'"online"' in m[1])
    assert online, "the agent never said it was online"


def test_trigger_mode_answers_a_command_with_the_result(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    root = f"{unique_prefix}/plant-a/line-3/cam-01"
    cfg = write_config(
        tmp_path,
        port=mosquitto.port,
        prefix=unique_prefix,
        source=f"dir:{DEMO_MODEL / 'golden'}",
        camera={"mode": "trigger", "loop": True},
    )
    with (
        Subscriber(mosquitto.port, [f"{root}/replies", f"{root}/status", f"{root}/result"]) as sub,
        AgentProcess(cfg),
    ):
        _wait_online(sub, root)
        first = _command(sub, root, "trigger", {}, b"t1")
        second = _command(sub, root, "trigger", {"timeout_s": 5}, b"t2")
        assert first["ok"] and second["ok"], (first, second)
        assert (first["result"]["frame"], second["result"]["frame"]) == (0, 1)
        expected = json.loads((DEMO_MODEL / "golden" / "expected.json").read_text())["images"]
        assert first["result"]["label"] == expected[first["result"]["ref"]]["label"]
        results = sub.wait_for(2, 5, where=lambda m: m[0] == f"{root}/result")
        assert [json.loads(p)["id"] for _, p, _ in results] == [first["result"]["id"], second["result"]["id"]]


def test_commands_refuse_bad_input_and_paths_outside_the_store(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    root = f"{unique_prefix}/plant-a/line-3/cam-01"
    store = tmp_path / "store"
    store.mkdir()
    cfg = write_config(
        tmp_path / "work",
        port=mosquitto.port,
        prefix=unique_prefix,
        source=f"dir:{DEMO_MODEL / 'golden'}",
        camera={"loop": True, "realtime": True, "fps": 5},
        model={"store": str(store)},
    )
    with Subscriber(mosquitto.port, [f"{root}/replies", f"{root}/status"]) as sub, AgentProcess(cfg) as agent:
        _wait_online(sub, root)
        outside = _command(sub, root, "reload-model", {"path": "../../etc"}, b"c1")
        assert not outside["ok"] and "outside the model store" in outside["error"]
        not_trigger = _command(sub, root, "trigger", {}, b"c2")
        assert not not_trigger["ok"] and "not in trigger mode" in not_trigger["error"]
        malformed = _command(sub, root, "status", b"{not json", b"c3")
        assert not malformed["ok"] and "malformed JSON" in malformed["error"]
        unknown = _command(sub, root, "self-destruct", {}, b"c4")
        assert not unknown["ok"] and "unknown command" in unknown["error"]
        status = _command(sub, root, "status", {}, b"c5")
        assert status["ok"] and status["result"]["model"]["name"] == "demo-defects"
        assert agent.proc.poll() is None  # none of it stopped the agent
    assert sorted(p.name for p in store.iterdir()) == []  # and no file was touched
