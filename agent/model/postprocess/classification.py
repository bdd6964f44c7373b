"""Classification outputs -> :class:`InferenceResult`: one score per label, the best one decides."""

from __future__ import annotations

import numpy as np

from agent.errors import ModelError
from agent.model.manifest import Manifest
from agent.model.postprocess.base import ACTIVATIONS, PostprocessorFactory, Thresholder, dequantize
from agent.model.preprocess import Transform
from agent.model.result import InferenceResult
from agent.runtimes.base import TensorSpec


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


create: PostprocessorFactory = ClassificationPostprocessor
