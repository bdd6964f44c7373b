"""Model outputs -> :class:`InferenceResult`, one postprocessor per task, chosen once at load.

Outputs are dequantized with each tensor's own scale and zero point. Raw scores are
always kept whole: thresholds only decide ``is_defect``, never hide a frame from
the sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from agent.errors import ModelError
from agent.model.manifest import Manifest
from agent.model.preprocess import Transform
from agent.model.result import InferenceResult
from agent.runtimes.base import TensorSpec


class Postprocessor(Protocol):
    def __call__(self, outputs: list[np.ndarray], transform: Transform) -> InferenceResult: ...


def dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.quantized:
        return (values.astype(np.float32) - spec.zero_point) * spec.scale
    return values.astype(np.float32, copy=False)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return np.asarray(e / e.sum(), dtype=np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float32)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda x: x,
    "softmax": softmax,
    "sigmoid": sigmoid,
}


class Thresholder:
    """Per-label confidence floors for the defect decision (manifest thresholds)."""

    def __init__(self, manifest: Manifest, defect_labels: frozenset[str]) -> None:
        self.default = manifest.thresholds.min_confidence
        self.per_label = dict(manifest.thresholds.per_label)
        self.defect_labels = defect_labels

    def is_defect(self, label: str, score: float) -> bool:
        return label in self.defect_labels and score >= self.per_label.get(label, self.default)


class ClassificationPostprocessor:
    def __init__(
        self,
        manifest: Manifest,
        labels: tuple[str, ...],
        outputs: tuple[TensorSpec, ...],
        defects: frozenset[str],
    ) -> None:
        self.labels = labels
        self.spec = outputs[0]
        size = int(np.prod([d for d in self.spec.shape if d is not None] or [0]))
        if None not in self.spec.shape and size != len(labels):
            raise ModelError(
                f"the model has {size} output classes but the manifest lists {len(labels)} labels"
            )
        self.activation = ACTIVATIONS[manifest.output.activation]
        self.thresholds = Thresholder(manifest, defects)

    def __call__(self, outputs: list[np.ndarray], transform: Transform) -> InferenceResult:
        raw = dequantize(outputs[0], self.spec).reshape(-1)
        if raw.shape[0] != len(self.labels):
            raise ModelError(f"model output has {raw.shape[0]} values for {len(self.labels)} labels")
        probs = self.activation(raw)
        if not np.all(np.isfinite(probs)):
            raise ModelError("model output contains NaN or Inf")
        best = int(np.argmax(probs))
        label, score = self.labels[best], float(probs[best])
        return InferenceResult(
            label=label,
            score=score,
            scores={name: float(p) for name, p in zip(self.labels, probs, strict=True)},
            is_defect=self.thresholds.is_defect(label, score),
            raw=probs,
        )


def make_postprocessor(
    manifest: Manifest, labels: tuple[str, ...], outputs: tuple[TensorSpec, ...], defects: frozenset[str]
) -> Postprocessor:
    """The task's postprocessor, checked against the model's real output tensors."""
    if manifest.task == "classification":
        return ClassificationPostprocessor(manifest, labels, outputs, defects)
    if manifest.task == "detection":
        from agent.model.detection import make_detection_postprocessor

        return make_detection_postprocessor(manifest, labels, outputs, defects)
    from agent.model.anomaly import AnomalyPostprocessor

    return AnomalyPostprocessor(manifest, labels, outputs, defects)
