"""Classification figures for a model card: accuracy, per-class P/R/F1, confusion, defect-vs-ok, int8 gap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

INT8_VARIANTS = ("tflite_int8", "onnx_int8")


def _ratio(num: float, den: float) -> float:
    return round(float(num) / float(den), 4) if den else 0.0


def defect_indices(names: Sequence[str], defect_labels: Sequence[str] | None) -> list[int]:
    """Which classes are defects: the given ones, else every label but "ok" (else but the first)."""
    if defect_labels is not None:
        return [names.index(n) for n in defect_labels if n in names]
    good = names.index("ok") if "ok" in names else 0
    return [c for c in range(len(names)) if c != good]


def metrics(
    probs: np.ndarray, labels: np.ndarray, names: Sequence[str], defects: Sequence[int] | None = None
) -> dict[str, Any]:
    """Accuracy, per-class P/R/F1, confusion (rows true, cols predicted), defect-vs-ok P/R (top-1)."""
    pred = probs.argmax(axis=1)
    k = len(names)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    per_class = {}
    for c, name in enumerate(names):
        p, r = _ratio(cm[c, c], cm[:, c].sum()), _ratio(cm[c, c], cm[c, :].sum())
        per_class[name] = {
            "precision": p,
            "recall": r,
            "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "support": int(cm[c, :].sum()),
        }
    defect = np.asarray(defect_indices(names, None) if defects is None else defects, np.int64)
    true_def, pred_def = np.isin(labels, defect), np.isin(pred, defect)
    return {
        "samples": len(labels),
        "accuracy": _ratio((pred == labels).sum(), len(labels)),
        "defect_recall": _ratio((true_def & pred_def).sum(), true_def.sum()),
        "defect_precision": _ratio((true_def & pred_def).sum(), pred_def.sum()),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def int8_drop(results: dict[str, Any]) -> float:
    """The largest accuracy lost by an int8 variant against the float model (negative: int8 did better)."""
    return round(float(max(results["float"]["accuracy"] - results[v]["accuracy"] for v in INT8_VARIANTS)), 4)
