"""The one result contract every runtime and task produces.

Runtimes only run tensors; postprocessing turns their outputs into an
:class:`InferenceResult`. Everything downstream (payloads, sampling, drift,
health) reads this and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected object; the box is normalised to the original frame (0..1)."""

    label: str
    score: float
    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max


@dataclass(frozen=True, slots=True)
class InferenceResult:
    """What the model said about one frame.

    ``scores`` holds the raw per-label scores (probabilities after the manifest's
    activation) before any confidence floor, so the sampler sees every frame as
    the model saw it. ``label``/``score`` is the decision after thresholds.
    """

    label: str
    score: float
    scores: dict[str, float]
    is_defect: bool
    detections: tuple[Detection, ...] = ()
    anomaly_score: float | None = None
    raw: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def top2_margin(self) -> float:
        """Difference between the two best raw scores (1.0 when there is one label)."""
        values = sorted(self.scores.values(), reverse=True)
        if len(values) < 2:
            return 1.0
        return values[0] - values[1]
