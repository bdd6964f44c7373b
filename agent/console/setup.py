"""Setup aids for aiming a camera: focus (with the best value seen), exposure against the model's
reference, and clipping.

Focus, brightness and contrast are measured on the model's own view of the frame (its input size
and region, the same :func:`agent.imagestats.image_stats` the training script wrote into the
manifest's ``reference`` block), so "in range" means "looks like what the model was trained on".
Clipping is measured on the whole (preview-sized) frame: a blown-out corner matters even
outside the model's crop.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import cv2
import numpy as np

from agent.capture.base import Frame
from agent.imagestats import STAT_NAMES, image_stats

CLIP_LOW, CLIP_HIGH = 3, 252  # gray levels counted as crushed / blown out
CLIP_WARN = 0.02  # more than 2 % of the pixels at either end is worth a warning
Z_WARN = 2.0  # a statistic more than 2 reference std from the mean is out of range


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image.reshape(image.shape[:2])
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


class SetupMeter:
    """The latest setup figures; written by the preview thread, read by web requests (a dict swap)."""

    def __init__(self, reference: dict[str, Any] | None) -> None:
        self._lock = threading.Lock()
        self.best_focus = 0.0
        self.figures: dict[str, Any] = {}
        self._ref: dict[str, Any] = {}
        self.set_reference(reference)

    def set_reference(self, reference: dict[str, Any] | None) -> None:
        stats = (reference or {}).get("image_stats") or {}
        self._ref = {k: stats[k] for k in STAT_NAMES if isinstance(stats.get(k), dict)}
        self.reset_focus()

    def reset_focus(self) -> None:
        with self._lock:
            self.best_focus = 0.0

    def measure(self, frame: Frame, preview_bgr: np.ndarray) -> None:
        view = frame.view if frame.view is not None else preview_bgr
        brightness, contrast, sharpness = image_stats(_gray(view))
        small = _gray(preview_bgr)
        n = float(small.size)
        low = float(np.count_nonzero(small <= CLIP_LOW)) / n
        high = float(np.count_nonzero(small >= CLIP_HIGH)) / n
        with self._lock:
            self.best_focus = max(self.best_focus, sharpness)
            best = self.best_focus
        self.figures = {
            "focus": {"value": round(sharpness, 1), "best": round(best, 1),
                      "of_best": round(sharpness / best, 3) if best > 0 else None},
            "brightness": self._against("brightness", brightness),
            "contrast": self._against("contrast", contrast),
            "sharpness": self._against("sharpness", sharpness),
            "clipping": {"dark": round(low, 4), "bright": round(high, 4),
                         "warning": low > CLIP_WARN or high > CLIP_WARN},
            "frame": {"width": frame.image.shape[1], "height": frame.image.shape[0]},
        }  # fmt: skip

    def _against(self, name: str, value: float) -> dict[str, Any]:
        """The value, the reference mean and std, and a verdict (log scale for sharpness, as drift does)."""
        ref = self._ref.get(name)
        doc: dict[str, Any] = {"value": round(value, 2)}
        if ref is None:
            return {**doc, "reference": None, "verdict": "no reference"}
        mean, std = float(ref["mean"]), float(ref["std"])
        if name == "sharpness" and "log_mean" in ref and value > 0:
            z = (math.log(value) - float(ref["log_mean"])) / float(ref["log_std"])
        else:
            z = (value - mean) / std if std > 0 else 0.0
        verdict = "in range" if abs(z) <= Z_WARN else ("too low" if z < 0 else "too high")
        return {**doc, "reference": {"mean": mean, "std": std}, "z": round(z, 2), "verdict": verdict}
