"""Build sample messages as the agent sends them (and broken ones), for collector tests."""

from __future__ import annotations

import json
from typing import Any

import cv2
import numpy as np

from agent.collector.messages import Incoming
from agent.protocol.ids import new_id
from agent.protocol.wire import CONTENT_TYPE, frame

PREFIX = "inspection"


def jpeg(width: int = 64, height: int = 48, seed: int = 0, quality: int = 90) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def jpeg_of_size(size: int, seed: int = 0) -> bytes:
    """A random-noise JPEG of roughly ``size`` bytes (noise barely compresses)."""
    side = int((size / 1.2) ** 0.5)
    data = jpeg(side, side, seed, quality=60)
    while len(data) > size * 1.1:
        side = int(side * 0.95)
        data = jpeg(side, side, seed, quality=60)
    return data


def meta(data: bytes, *, device: str = "cam-01", label: str = "ok", **extra: Any) -> dict[str, Any]:
    h, w = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE).shape[:2]
    doc: dict[str, Any] = {
        "id": new_id(),
        "ts": 1767225600000,
        "device": device,
        "site": "plant-a",
        "line": "line-3",
        "frame": 7,
        "model": {"name": "demo-defects", "version": "1.0.0"},
        "label": label,
        "score": 0.55,
        "scores": {"ok": 0.55, "scratch": 0.45},
        "defect": False,
        "reasons": ["low_confidence"],
        "latency_ms": {"total": 12.5},
        "image": {"width": w, "height": h, "bytes": len(data)},
    }
    doc.update(extra)
    return doc


def topic(device: str = "cam-01", kind: str = "sample", prefix: str = PREFIX) -> str:
    return f"{prefix}/plant-a/line-3/{device}/{kind}"


def v5(doc: dict[str, Any], data: bytes, *, mid: int = 1, prefix: str = PREFIX) -> Incoming:
    return Incoming(topic(doc["device"], prefix=prefix), data, CONTENT_TYPE, json.dumps(doc), mid, 1)


def v311(doc: dict[str, Any], data: bytes, *, mid: int = 1, prefix: str = PREFIX) -> Incoming:
    return Incoming(
        topic(doc["device"], prefix=prefix), frame(json.dumps(doc).encode(), data), None, None, mid, 1
    )


def defect_event(device: str = "cam-01", label: str = "scratch") -> dict[str, Any]:
    return {
        "id": new_id(),
        "ts": 1767225600000,
        "device": device,
        "site": "plant-a",
        "line": "line-3",
        "frame": 3,
        "model": {"name": "demo-defects", "version": "1.0.0"},
        "label": label,
        "score": 0.93,
        "scores": {"ok": 0.07, label: 0.93},
        "defect": True,
        "over_budget": False,
        "budget_ms": 50.0,
        "latency_ms": {
            "capture": 1.0,
            "queue": 0.1,
            "preprocess": 1.0,
            "infer": 5.0,
            "postprocess": 0.2,
            "total": 7.3,
        },
    }
