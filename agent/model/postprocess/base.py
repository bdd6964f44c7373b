"""The postprocessor contract, stated once, and the pieces every task's plugin shares.

A postprocessor turns a runtime's output tensors into the one :class:`InferenceResult`
contract. Each task's module exposes ``create``, a :class:`PostprocessorFactory`: it is
called once when a model loads, checks the model's real output tensors against the
manifest (raising :class:`~agent.errors.ModelError` with one reason), and returns the
per-frame callable. Deciding the strategy at load keeps the per-frame path flat.

Outputs are dequantized with each tensor's own scale and zero point. Raw scores are
always kept whole: thresholds only decide ``is_defect``, never hide a frame from
the sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from agent.model.manifest import Manifest
from agent.model.preprocess import Transform
from agent.model.result import InferenceResult
from agent.runtimes.base import TensorSpec


class Postprocessor(Protocol):
    """Per frame: the runtime's outputs and the preprocessing transform -> the result."""

    def __call__(self, outputs: list[np.ndarray], transform: Transform) -> InferenceResult: ...


class PostprocessorFactory(Protocol):
    """The constructor contract every task module's ``create`` (or postprocessor class) meets.

    ``labels`` are the manifest's labels in output order, ``outputs`` the model's real
    output tensors, ``defects`` the labels that count as defects.
    """

    def __call__(
        self,
        manifest: Manifest,
        labels: tuple[str, ...],
        outputs: tuple[TensorSpec, ...],
        defects: frozenset[str],
    ) -> Postprocessor: ...


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
