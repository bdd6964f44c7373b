"""The small objects a sampler sees, for sampler unit tests (they record with agent.testing.RecordingSink)."""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.capture.base import Frame
from agent.config.observers import SamplingConfig, SamplingPolicyConfig
from agent.config.schema import DeviceConfig
from agent.model.result import InferenceResult
from agent.sampling import Sampler, Wire
from agent.testing import RecordingSink


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


DEVICE = DeviceConfig(id="cam-01", site="plant-a", line="line-3")
TOPIC = "p/plant-a/line-3/cam-01/sample"


def image(seed: int, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """Distinct images per seed (different dHash), same image for the same seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    import cv2

    return cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def frame(seq: int, seed: int | None = None) -> Frame:
    return Frame(image(seq if seed is None else seed), seq=seq, ts_ms=1767225600000 + seq, mono=0.0)


def result(top: float, label: str = "ok", labels: tuple[str, ...] = ("ok", "scratch")) -> InferenceResult:
    rest = (1.0 - top) / (len(labels) - 1)
    scores = {name: (top if name == label else rest) for name in labels}
    return InferenceResult(label=label, score=top, scores=scores, is_defect=label != "ok")


def payload(seq: int = 0) -> dict[str, Any]:
    return {
        "id": f"R{seq}",
        "model": {"name": "demo-defects", "version": "1.0.0"},
        "latency_ms": {"total": 5.0},
    }


def policies(**kinds: SamplingPolicyConfig) -> dict[str, SamplingPolicyConfig]:
    """Every policy off except those given."""
    off = SamplingPolicyConfig(enabled=False)
    names = ("low_confidence", "near_threshold", "classes", "random", "drift")
    return {name: kinds.get(name, off) for name in names}


def make(
    sink: RecordingSink,
    *,
    clock: Clock | None = None,
    mqtt5: bool = True,
    max_packet: int = 262144,
    log_path: Any = None,
    **cfg: Any,
) -> Sampler:
    base: dict[str, Any] = {"enabled": True, "seed": 1, "quota": {}, **policies()}
    base.update(cfg)
    from agent.config.observers import DedupConfig, QuotaConfig

    if isinstance(base["quota"], dict):
        base["quota"] = QuotaConfig(**base["quota"])
    if isinstance(base.get("dedup"), dict):
        base["dedup"] = DedupConfig(**base["dedup"])
    sampling = SamplingConfig(**base)
    wire = Wire(topic=TOPIC, qos=1, max_packet_bytes=max_packet, mqtt5=mqtt5)
    return Sampler(sampling, sink=sink, wire=wire, device=DEVICE, log_path=log_path, clock=clock or Clock())
