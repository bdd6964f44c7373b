"""Health through the real agent: ``inspection-agent run`` publishing to a real mosquitto.

Checks the retained ``.../health`` reports against agent/protocol/schemas/health.schema.json,
scrapes the Prometheus endpoint over HTTP, and reads health.json back with
``inspection-agent status``, while running and after the agent stopped.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import jsonschema
import pytest
import yaml

from agent.protocol.schema import load_schema
from tests.support.agentproc import AgentProcess, run_agent, write_config
from tests.support.models import make_package, slow_classifier
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.paths import free_port

SCHEMA = load_schema("health")
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _package(root: Path) -> Path:
    model = slow_classifier(root / "m.onnx", 1, classes=3, width=32, height=32)
    reference = {
        "split": "validation",
        "samples": 100,
        "top1_confidence": [0.4, 0.5, 0.6, 0.7],
        "class_mix": {"ok": 0.6, "scratch": 0.2, "hole": 0.2},
        "image_stats": {
            "brightness": {"mean": 120.0, "std": 30.0},
            "contrast": {"mean": 20.0, "std": 6.0},
            "sharpness": {"mean": 300.0, "std": 280.0},
        },
    }
    return make_package(
        root / "pkg",
        model,
        name="tiny",
        version="2.0.0",
        labels=["ok", "scratch", "hole"],
        width=32,
        height=32,
        reference=reference,
    )


def test_health_reports_validate_scrape_and_show_in_status(
    tmp_path: Path, mosquitto: Mosquitto, unique_prefix: str
) -> None:
    metrics_port = free_port()
    config = write_config(
        tmp_path / "agent",
        port=mosquitto.port,
        prefix=unique_prefix,
        source="synthetic:7",
        package=_package(tmp_path),
        camera={"fps": 15, "realtime": True, "width": 320, "height": 240},
        health={"interval_s": 0.5, "prometheus": f"127.0.0.1:{metrics_port}"},
        drift={"window": 20, "image_every": 5},
    )
    topic = f"{unique_prefix}/plant-a/line-3/cam-01/health"
    with Subscriber(mosquitto.port, topic) as sub:
        agent = AgentProcess(config)
        try:
            got = sub.wait_for(4, timeout=40)
            assert len(got) >= 4, agent.output[-3000:]
            docs = [json.loads(m[1]) for m in got]
            for doc in docs:
                jsonschema.validate(doc, SCHEMA)
            last = docs[-1]
            assert last["model"]["name"] == "tiny" and last["camera"] == "online"
            assert last["counters"]["inspected"] > 0 and last["fps"]["inspected"] > 0
            assert last["latency_frames"] > 0 and "total" in last["latency_ms"]
            assert last["outbox"]["connected"] and last["drift"]["enabled"]

            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            assert 'inspection_frames_total{counter="inspected",device="cam-01"}' in text
            assert 'inspection_camera_online{device="cam-01"} 1.0' in text

            running = run_agent(["status", "--config", str(config), "--json"])
            assert running.returncode == 0, running.stdout + running.stderr
            assert json.loads(running.stdout)["pid"] == agent.proc.pid
        finally:
            code = agent.stop()
    assert code == 0, agent.output[-3000:]
    with Subscriber(mosquitto.port, topic) as late:  # retained: a late subscriber gets the last report
        (retained,) = late.wait_for(1, timeout=10)
        jsonschema.validate(json.loads(retained[1]), SCHEMA)
    stopped = run_agent(["status", "--config", str(config)])
    assert stopped.returncode == 1 and stopped.stdout.startswith("NOT RUNNING: the agent stopped")


def test_a_busy_prometheus_port_stops_the_agent_with_one_clear_line(
    tmp_path: Path, mosquitto: Mosquitto, unique_prefix: str
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(
            tmp_path / "agent",
            port=mosquitto.port,
            prefix=unique_prefix,
            source="synthetic:1",
            package=_package(tmp_path),
            health={"prometheus": f"127.0.0.1:{port}"},
        )
        result = run_agent(["run", "--config", str(config)], timeout=60)
    assert result.returncode == 3
    assert f"health.prometheus: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert yaml.safe_load(config.read_text())["health"]["prometheus"].endswith(str(port))
