"""Anomaly outputs -> :class:`InferenceResult`: one score, or a per-pixel map whose maximum is the score.

The manifest's two labels name the outcomes (e.g. ``[normal, anomaly]``). The
score ``s`` (after the optional sigmoid) gives ``scores = {normal: 1 - s, anomaly: s}``;
the frame is a defect when ``s >= thresholds.anomaly``. The map (when there is one)
is kept in ``raw`` for heat-map overlays.
"""

from __future__ import annotations

import numpy as np

from agent.errors import ModelError
from agent.model.manifest import Manifest
from agent.model.postprocess.base import ACTIVATIONS, PostprocessorFactory, dequantize
from agent.model.preprocess import Transform
from agent.model.result import InferenceResult
from agent.runtimes.base import TensorSpec


class AnomalyPostprocessor:
    def __init__(
        self,
        manifest: Manifest,
        labels: tuple[str, ...],
        outputs: tuple[TensorSpec, ...],
        defects: frozenset[str],
    ) -> None:
        del defects  # the anomaly threshold decides, not a label list
        if len(labels) != 2:
            raise ModelError(
                f"an anomaly model needs exactly 2 labels (e.g. normal, anomaly), not {len(labels)}"
            )
        self.normal, self.anomalous = labels
        self.spec = outputs[0]
        fmt = manifest.output.format
        size = int(np.prod([d for d in self.spec.shape if d is not None] or [1]))
        if fmt == "score" and None not in self.spec.shape and size != 1:
            raise ModelError(
                f"output.format score needs a single value, the model outputs shape {self.spec.shape}"
            )
        if fmt not in ("auto", "score", "map"):
            raise ModelError(f"output.format {fmt!r} is not an anomaly format (use score or map)")
        if manifest.output.activation == "softmax":
            raise ModelError(
                "output.activation softmax makes no sense for an anomaly score (use none or sigmoid)"
            )
        self.activation = ACTIVATIONS[manifest.output.activation]
        self.threshold = manifest.thresholds.anomaly

    def __call__(self, outputs: list[np.ndarray], transform: Transform) -> InferenceResult:
        values = dequantize(outputs[0], self.spec)
        if values.size == 0:
            raise ModelError("anomaly model returned an empty output")
        if not np.all(np.isfinite(values)):
            raise ModelError("model output contains NaN or Inf")
        s = float(self.activation(np.asarray(values.max(), np.float32)))
        defect = s >= self.threshold
        return InferenceResult(
            label=self.anomalous if defect else self.normal,
            score=s if defect else 1.0 - s,
            scores={self.normal: 1.0 - s, self.anomalous: s},
            is_defect=defect,
            anomaly_score=s,
            raw=values,
        )


create: PostprocessorFactory = AnomalyPostprocessor
