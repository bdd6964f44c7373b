"""Result and event payloads: the JSON documented in docs/mqtt.md and agent/protocol/schemas/.

The builders take the few fields they need through small Protocols, not the capture and model
types themselves, so the contract depends on nothing above it and the collector can share it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypedDict

from agent.config.schema import DeviceConfig
from agent.events import Event
from agent.protocol.ids import new_id


class FrameInfo(Protocol):
    """What a result says about its frame (``agent.capture.base.Frame`` has it)."""

    @property
    def seq(self) -> int: ...
    @property
    def ts_ms(self) -> int: ...
    @property
    def ref(self) -> str | None: ...


class DetectionInfo(Protocol):
    """One detected object, its box normalised to the frame (``agent.model.result.Detection``)."""

    @property
    def label(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def box(self) -> tuple[float, float, float, float]: ...


class ResultInfo(Protocol):
    """The model's decision on one frame (``agent.model.result.InferenceResult`` has it)."""

    @property
    def label(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def scores(self) -> Mapping[str, float]: ...
    @property
    def is_defect(self) -> bool: ...
    @property
    def detections(self) -> Sequence[DetectionInfo]: ...
    @property
    def anomaly_score(self) -> float | None: ...


class ModelSummary(TypedDict):
    """Which model made a result; ``sha256`` is its identity (two loads of one package are one model)."""

    name: str
    version: str
    sha256: str
    runtime: str


class TriggerTag(TypedDict):
    """The trigger a result answers (agent/line): its sequence number, edge time and source."""

    seq: int
    ts: int  # epoch ms of the edge
    source: str  # gpio, modbus, opcua, sparkplug
    exposure_delay_ms: float  # from the edge to the frame's delivery


class _ResultExtras(TypedDict, total=False):
    trigger: TriggerTag
    detections: list[dict[str, Any]]
    anomaly_score: float
    ref: str


class ResultPayload(_ResultExtras):
    """A result on ``.../result`` (agent/protocol/schemas/result.schema.json), as frame observers see it."""

    id: str
    ts: int
    device: str
    site: str
    line: str
    frame: int
    model: ModelSummary
    label: str
    score: float
    scores: dict[str, float]
    defect: bool
    over_budget: bool
    budget_ms: float
    latency_ms: dict[str, float]


def same_model(a: ModelSummary, b: ModelSummary) -> bool:
    """One model: same weights (sha256) and same version (a new manifest around the same weights is new)."""
    return a["sha256"] == b["sha256"] and a["version"] == b["version"]


def _r(value: float) -> float:
    return round(value, 3)


def result_payload(
    *,
    device: DeviceConfig,
    frame: FrameInfo,
    result: ResultInfo,
    model: ModelSummary,
    latency: tuple[float, ...],
    budget_ms: float,
) -> ResultPayload:
    """``latency`` is (capture, queue, preprocess, infer, postprocess, total) in ms."""
    capture, queued, pre, infer, post, total = latency
    payload: ResultPayload = {
        "id": new_id(frame.ts_ms),
        "ts": frame.ts_ms,
        "device": device.id,
        "site": device.site,
        "line": device.line,
        "frame": frame.seq,
        "model": model,
        "label": result.label,
        "score": _r(result.score),
        "scores": {k: round(v, 4) for k, v in result.scores.items()},
        "defect": result.is_defect,
        "over_budget": total > budget_ms,
        "budget_ms": budget_ms,
        "latency_ms": {
            "capture": _r(capture),
            "queue": _r(queued),
            "preprocess": _r(pre),
            "infer": _r(infer),
            "postprocess": _r(post),
            "total": _r(total),
        },
    }
    if result.detections:
        payload["detections"] = detection_dicts(result.detections)
    if result.anomaly_score is not None:
        payload["anomaly_score"] = round(result.anomaly_score, 4)
    if frame.ref is not None:
        payload["ref"] = frame.ref
    return payload


def detection_dicts(detections: Sequence[DetectionInfo]) -> list[dict[str, Any]]:
    """Detections as they travel in a result and in a sample's metadata (rounded, boxes normalized)."""
    return [
        {"label": d.label, "score": round(d.score, 4), "box": [round(v, 4) for v in d.box]}
        for d in detections
    ]


def envelope(device: DeviceConfig) -> dict[str, Any]:
    """The fields every device message starts with: a fresh id, now, and who sent it."""
    return {
        "id": new_id(),
        "ts": int(time.time() * 1000),
        "device": device.id,
        "site": device.site,
        "line": device.line,
    }


def event_payload(device: DeviceConfig, event: Event) -> dict[str, Any]:
    return {
        **envelope(device),
        "type": event.kind.value,
        "severity": event.severity.value,
        "message": event.message,
        "details": event.details_dict(),
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
