"""The drift reference learned from the line itself (``drift.baseline: learn``).

A validation set is not the line: another camera, another light, another mix of parts. With
``learn``, the first ``drift.learn_windows`` windows after a model is activated are taken as
what "normal" looks like on this line: they become a reference block of the same format the
training script writes into the manifest (sorted top-1 confidence quantiles, the predicted class
mix, image-statistic mean/std, and the same per predicted class), so the same tests run against
it. The block is stored in ``{state.dir}/drift-baseline.json`` with the model it was learned
for (a restart keeps it; another model ignores and replaces it) and published retained on
``{root}/drift/baseline``.

Learning assumes the line is healthy while it learns: a baseline learned under bad light
would call bad light normal. That is why it is per model and visible (health, MQTT), and why
``rm drift-baseline.json`` (or a model swap) starts it over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent import fsutil
from agent.drift.reference import LOG_STATS, MIN_CLASS_SAMPLES, OTHER
from agent.drift.window import Window
from agent.imagestats import STAT_NAMES
from agent.protocol.payloads import ModelSummary

FILE = "drift-baseline.json"
QUANTILES = 512  # confidence quantiles kept (the manifest's reference keeps a few hundred)
_STD_FLOOR = 1e-6  # a perfectly constant statistic (a synthetic scene) still makes a valid reference


class Learner:
    """Collects the first ``windows`` full windows of one model into a reference block."""

    def __init__(self, labels: Sequence[str], windows: int) -> None:
        self.labels = (*labels, OTHER)  # the recorder's label indices (the last: a label it did not know)
        self.needed = windows
        self._windows: list[Window] = []

    @property
    def seen(self) -> int:
        return len(self._windows)

    def add(self, window: Window) -> dict[str, Any] | None:
        """Take one window; the reference block once ``windows`` were seen, else None."""
        self._windows.append(window)
        if len(self._windows) < self.needed:
            return None
        return build_block(self.labels, self._windows)


def build_block(labels: Sequence[str], windows: Sequence[Window]) -> dict[str, Any]:
    """A manifest-style ``reference`` block from windows (see docs/health.md for the format)."""
    conf = np.concatenate([w.confidence for w in windows])
    classes = np.concatenate([w.labels for w in windows])
    image = np.concatenate([w.image for w in windows])
    rows = np.concatenate([_image_labels(w) for w in windows])
    counts = np.bincount(classes, minlength=len(labels))
    by_class = {}
    for i, label in enumerate(labels[:-1]):
        mine = image[rows == i]
        if len(mine) >= MIN_CLASS_SAMPLES:
            by_class[label] = {
                "samples": len(mine),
                "top1_confidence": _quantiles(conf[classes == i]),
                "image_stats": _image_stats(mine),
            }
    return {
        "split": "learned",
        "samples": len(conf),
        "top1_confidence": _quantiles(conf),
        "class_mix": {k: round(float(counts[i]) / len(classes), 4) for i, k in enumerate(labels[:-1])},
        "image_stats": _image_stats(image),
        "by_class": by_class,
    }


def _image_labels(window: Window) -> np.ndarray:
    if window.image_labels is not None:
        return window.image_labels
    return np.full(len(window.image), -1, np.int64)


def _quantiles(values: np.ndarray) -> list[float]:
    points = np.quantile(values, np.linspace(0.0, 1.0, min(QUANTILES, len(values))))
    return [round(float(v), 4) for v in points]


def _image_stats(rows: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean and std per statistic, with the log-space figures for the log-tested ones."""
    out: dict[str, dict[str, float]] = {}
    for i, name in enumerate(STAT_NAMES):
        col = rows[:, i].astype(np.float64)
        out[name] = {"mean": float(col.mean()), "std": max(float(col.std()), _STD_FLOOR)}
        if i in LOG_STATS:
            logs = np.log(np.maximum(col, 1e-6))
            out[name].update(log_mean=float(logs.mean()), log_std=max(float(logs.std()), _STD_FLOOR))
    return out


def load(path: Path, model: ModelSummary) -> dict[str, Any] | None:
    """The stored block when it was learned for ``model`` (same version and sha256), else None."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        learned_for = doc["model"]
        block = doc["reference"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(learned_for, dict) or not isinstance(block, dict):
        return None
    if learned_for.get("sha256") != model["sha256"] or learned_for.get("version") != model["version"]:
        return None
    return block


def document(model: ModelSummary, block: dict[str, Any], windows: int) -> dict[str, Any]:
    """What is stored and published: the block, the model it belongs to, when and from how much."""
    return {
        "model": {"name": model["name"], "version": model["version"], "sha256": model["sha256"]},
        "learned_at": int(time.time() * 1000),
        "windows": windows,
        "reference": block,
    }


def save(path: Path, doc: dict[str, Any]) -> None:
    """Atomically (a crash leaves the old file or the new one); OSError is the caller's to report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_atomic(path, json.dumps(doc, separators=(",", ":")).encode())
