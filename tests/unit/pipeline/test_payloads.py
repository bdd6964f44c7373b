"""The payloads the agent builds validate against the published schemas."""

from __future__ import annotations

import time

import jsonschema
import numpy as np
import pytest

from agent.capture.base import Frame
from agent.config.schema import DeviceConfig
from agent.model.result import Detection, InferenceResult
from agent.protocol.payloads import event_payload, result_payload
from agent.protocol.schema import load_schema

DEVICE = DeviceConfig(id="cam-01", site="plant-a", line="line-3")


def schema(name: str) -> dict[str, object]:
    return load_schema(name)


def test_result_with_detections_and_anomaly_validates() -> None:
    frame = Frame(np.zeros((4, 4, 3), np.uint8), 7, int(time.time() * 1000), time.monotonic(), ref="a.png")
    result = InferenceResult(
        label="scratch", score=0.9, scores={"ok": 0.1, "scratch": 0.9}, is_defect=True,
        detections=(Detection("scratch", 0.9, (0.1, 0.2, 0.3, 0.4)),), anomaly_score=0.7,
    )  # fmt: skip
    payload = result_payload(
        device=DEVICE, frame=frame, result=result, model={"name": "m", "version": "1"},
        latency=(1.0, 0.5, 2.0, 3.0, 0.2, 7.0), budget_ms=5.0,
    )  # fmt: skip
    jsonschema.validate(payload, schema("result"))
    jsonschema.validate(payload, schema("defect"))
    assert payload["over_budget"] is True and payload["ref"] == "a.png"


@pytest.mark.parametrize(
    ("kind", "severity", "details"),
    [
        ("overrun", "warning", {"ratio": 0.6, "window": 30, "policy": "skip"}),
        ("overrun_cleared", "info", {"ratio": 0.1, "released": "skip"}),
        ("camera", "warning", {"camera": "offline"}),
        ("stage_stuck", "error", {"stage": "infer", "seconds": 5.1}),
        ("stage_restarted", "warning", {"stage": "infer"}),
        ("model_swap", "error", {"state": "rolled_back", "version": "1.0.0", "previous": "1.1.0"}),
    ],
)
def test_every_event_the_agent_emits_validates(kind: str, severity: str, details: dict[str, object]) -> None:
    jsonschema.validate(event_payload(DEVICE, kind, severity, f"{kind} happened", details), schema("event"))
