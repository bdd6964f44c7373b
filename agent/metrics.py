"""Classification figures from (true, predicted) pairs, and binomial confidence intervals.

Plain Python and numpy: used by ``model evaluate``/``compare`` on a workstation and by
the collector's measured line accuracy, so nothing here imports a runtime.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when there are no trials.

    Chosen over the normal (Wald) interval because it stays inside [0, 1] and keeps its
    coverage for small samples and proportions near 0 or 1, which is where an accuracy
    of a few dozen reviewed frames lives.
    """
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One evaluated frame: what it is, what the model said, and whether it flagged a defect."""

    truth: str
    predicted: str
    truth_defect: bool
    flagged: bool

    @property
    def correct(self) -> bool:
        return self.truth == self.predicted


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def classification_report(outcomes: Sequence[Outcome], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, the confusion matrix and defect-vs-ok figures.

    A figure with no frames to compute it on (recall of a class with no images) is None,
    not 0: "not measured" and "always wrong" must not read the same.
    """
    extra = sorted({o.predicted for o in outcomes} - set(labels))
    names = [*labels, *extra]
    index = {k: i for i, k in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), np.int64)
    for o in outcomes:
        matrix[index[o.truth], index[o.predicted]] += 1
    per_class = {}
    for i, label in enumerate(labels):
        tp, support, said = int(matrix[i, i]), int(matrix[i].sum()), int(matrix[:, i].sum())
        precision, recall = _ratio(tp, said), _ratio(tp, support)
        f1 = (
            round(2 * precision * recall / (precision + recall), 4)
            if precision is not None and recall is not None and precision + recall > 0
            else None
        )
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    defects = [o for o in outcomes if o.truth_defect]
    flagged = [o for o in outcomes if o.flagged]
    n = len(outcomes)
    correct = sum(o.correct for o in outcomes)
    return {
        "samples": n,
        "accuracy": _ratio(correct, n),
        "accuracy_ci95": [round(v, 4) for v in wilson(correct, n)],
        "defect_recall": _ratio(sum(o.flagged for o in defects), len(defects)),
        "defect_precision": _ratio(sum(o.truth_defect for o in flagged), len(flagged)),
        "per_class": per_class,
        "confusion": {"labels": names, "matrix": matrix.tolist()},
    }
