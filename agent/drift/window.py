"""Per-frame accumulation into preallocated arrays, and the per-window verdict.

The recorder runs on the publish thread for every frame: a few stores into numpy
arrays, plus the image statistics on every Nth frame (a gray conversion and an
INTER_AREA resize to the model input, ~1.5 ms on a 640x480 frame, hence not on
every frame). A full window is copied out (once per window) for the evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from agent.config.observers import DriftConfig
from agent.drift.reference import LOG_STATS, OTHER, ClassFigures, Reference
from agent.drift.statistics import ks_mixture, psi
from agent.imagestats import STAT_NAMES, image_stats
from agent.model.manifest import InputSpec
from agent.model.result import InferenceResult


@dataclass(frozen=True, slots=True)
class Window:
    """One full window: top-1 confidences, label indices, image stats of the sampled frames."""

    index: int
    confidence: np.ndarray
    labels: np.ndarray
    image: np.ndarray  # (k, 3), k = frames sampled for image statistics
    first_ts: int
    last_ts: int
    image_labels: np.ndarray | None = None  # (k,) label index of each image row; None: pooled reference


REFERENCE_DECIMALS = 4


class WindowRecorder:
    """Fills one window of ``size`` frames; not thread-safe (the publish thread owns it)."""

    def __init__(
        self, size: int, image_every: int, input_size: tuple[int, int], view_color: str | None = None
    ) -> None:
        self.size = size
        self._every = image_every
        self._input = input_size  # (width, height) of the model input
        # The colour of the model's view of a frame when that view is usable for the statistics
        # (a stretched resize, as the reference was computed); None: always use the full frame.
        self._view_gray = {"GRAY": None, "RGB": cv2.COLOR_RGB2GRAY, "BGR": cv2.COLOR_BGR2GRAY}.get(
            view_color or ""
        )
        self._use_view = view_color is not None
        self._conf = np.zeros(size, np.float64)
        self._labels = np.zeros(size, np.int64)
        self._image = np.zeros((size // image_every + 1, len(STAT_NAMES)), np.float64)
        self._image_labels = np.zeros(size // image_every + 1, np.int64)
        self._i = self._k = 0
        self._first_ts = 0
        self.windows = 0

    def _small_gray(self, image: np.ndarray, view: np.ndarray | None) -> np.ndarray:
        """Gray at the model's input size: from the model's own view when usable (cheap), else resized."""
        if self._use_view and view is not None:
            if view.ndim == 2 or view.shape[2] == 1:
                return view.reshape(view.shape[0], view.shape[1])
            return cv2.cvtColor(view, self._view_gray) if self._view_gray is not None else view
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        return cv2.resize(gray, self._input, interpolation=cv2.INTER_AREA)

    def reset(self) -> None:
        self._i = self._k = 0

    def add(
        self, confidence: float, label: int, image: np.ndarray, ts: int, view: np.ndarray | None = None
    ) -> Window | None:
        """Record one frame; return the window it completed, if any."""
        i = self._i
        if i == 0:
            self._first_ts = ts
        self._conf[i] = confidence
        self._labels[i] = label
        if i % self._every == 0:
            self._image[self._k] = image_stats(self._small_gray(image, view))
            self._image_labels[self._k] = label
            self._k += 1
        self._i = i + 1
        if self._i < self.size:
            return None
        window = Window(
            self.windows,
            self._conf.copy(),
            self._labels.copy(),
            self._image[: self._k].copy(),
            self._first_ts,
            ts,
            self._image_labels[: self._k].copy(),
        )
        self.windows += 1
        self._i = self._k = 0
        return window


def recorder_for(spec: InputSpec, cfg: DriftConfig) -> WindowRecorder:
    """The recorder the monitor and ``drift calibrate`` both use, so a calibrated baseline and the
    line's windows are measured the same way (the model's own view when its resize allows)."""
    view_color = spec.color if spec.resize == "stretch" else None
    return WindowRecorder(cfg.window, cfg.image_every, (spec.width, spec.height), view_color)


def top1(result: InferenceResult) -> tuple[str, float]:
    """The label and confidence a window records: the highest raw score (the decision may differ)."""
    scores = result.scores
    if scores:
        label = max(scores, key=scores.__getitem__)
        return label, scores[label]
    return result.label, result.score


@dataclass(frozen=True, slots=True)
class Verdict:
    """The statistics of one window and which of them drifted."""

    window: Window
    ks_statistic: float
    ks_p_value: float
    psi: float
    mix: dict[str, float]
    image_mean: dict[str, float]
    image_z: dict[str, float]
    reasons: tuple[str, ...]

    @property
    def drifting(self) -> bool:
        return bool(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        """The ``statistics`` object of drift events and health (see drift.schema.json)."""
        return {
            "confidence_ks": {"statistic": round(self.ks_statistic, 4), "p_value": _sig(self.ks_p_value)},
            "class_psi": round(self.psi, 4),
            "class_mix": {k: round(v, 4) for k, v in self.mix.items()},
            "image": {
                k: {"mean": round(self.image_mean[k], 3), "z": round(self.image_z[k], 3)} for k in STAT_NAMES
            },
        }

    def window_dict(self) -> dict[str, Any]:
        w = self.window
        return {
            "index": w.index,
            "frames": len(w.confidence),
            "image_frames": len(w.image),
            "first_ts": w.first_ts,
            "last_ts": w.last_ts,
        }


def evaluate(window: Window, ref: Reference, cfg: DriftConfig) -> Verdict:
    """KS on confidence, PSI on the predicted class mix, z of each image-stat mean.

    Confidence and image statistics are tested against the reference *given the classes this
    window predicted*: a window of 80 % good parts is compared with the good parts' reference
    for 80 % of its frames. The class mix itself is PSI's question, not theirs, so an ordinary
    line mix does not read as a confidence or texture shift, while a change in how the frames
    look (light, focus) still moves every class's figures.
    """
    counts = np.bincount(window.labels, minlength=len(ref.mix)).astype(np.float64)
    d, p = _confidence_shift(window, ref, counts)
    index = psi(counts, ref.mix)
    means, z = _image_shift(window, ref)
    reasons: list[str] = []
    if p < cfg.ks_p_value and d > cfg.ks_min_statistic:
        reasons.append("confidence")
    if index > cfg.psi_threshold:
        reasons.append("class_mix")
    # A statistic drifts when its window mean is both significant (z in standard errors of the mean)
    # and large (effect in reference standard deviations): many frames make tiny shifts significant.
    n = max(1, len(window.image))
    effect = z / np.sqrt(n)
    reasons += [
        name
        for name, zi, ei in zip(STAT_NAMES, z, effect, strict=True)
        if abs(zi) > cfg.z_threshold and abs(ei) > cfg.effect_min
    ]
    shares = counts / max(1.0, counts.sum())
    return Verdict(
        window,
        d,
        p,
        index,
        {k: float(shares[i]) for i, k in enumerate((*ref.labels, OTHER)) if counts[i]},
        dict(zip(STAT_NAMES, map(float, means), strict=True)),
        dict(zip(STAT_NAMES, map(float, z), strict=True)),
        tuple(reasons),
    )


def _figures(ref: Reference) -> tuple[ClassFigures, ...]:
    """Per class index (+ OTHER) figures; a Reference built without them uses the pooled ones."""
    if ref.figures:
        return ref.figures
    mu, sd = ref.test_space
    return (ClassFigures(ref.confidence, mu, sd),) * len(ref.mix)


def _confidence_shift(window: Window, ref: Reference, counts: np.ndarray) -> tuple[float, float]:
    """KS of the window's top-1 confidences against the class references mixed as the window predicted."""
    # The reference is stored at 4 decimals; round the window the same way so that quantized outputs
    # (multiples of 1/256 for an int8 softmax) tie with their reference values instead of straddling them.
    sample = np.round(window.confidence, REFERENCE_DECIMALS)
    figures = _figures(ref)
    groups: dict[int, tuple[np.ndarray, float]] = {}  # classes sharing figures (the pooled ones) merge
    for i in np.flatnonzero(counts):
        conf = figures[i].confidence
        _, weight = groups.get(id(conf), (conf, 0.0))
        groups[id(conf)] = (conf, weight + float(counts[i]))
    refs = [g[0] for g in groups.values()]
    return ks_mixture(sample, refs, np.array([g[1] for g in groups.values()]))


def _image_shift(window: Window, ref: Reference) -> tuple[np.ndarray, np.ndarray]:
    """Window means (as written) and their z (in standard errors) against the reference, in the test space.

    Each frame is standardised against the figures of the class predicted for it, so the mean of
    the standardised values is 0 with standard error 1/sqrt(k) whatever the window's class mix.
    """
    image = window.image
    if not len(image):
        return ref.image_mean, np.zeros(len(STAT_NAMES))
    values = image.copy()
    for i in LOG_STATS:
        values[:, i] = np.log(np.maximum(values[:, i], 1e-6))
    figures = _figures(ref)
    rows = window.image_labels if window.image_labels is not None else np.full(len(image), len(ref.mix) - 1)
    mu = np.stack([figures[r].test_mean for r in rows])
    sd = np.stack([figures[r].test_std for r in rows])
    standardised = (values - mu) / sd
    return image.mean(axis=0), standardised.mean(axis=0) * np.sqrt(len(values))


def _sig(value: float) -> float:
    """Small p-values keep their significant digits."""
    return float(f"{value:.4g}")
